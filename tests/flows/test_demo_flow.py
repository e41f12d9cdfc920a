"""The README's main job runs the whole offline pipeline as real Prefect flows."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest


@pytest.mark.slow
def test_demo_runs_ingest_index_and_searches_ending_in_a_page(session_overrides, prefect_harness):
    from flows.demo import demo

    out = demo(session_overrides)
    assert out["products"] > 0 and out["indexed"] > 0
    assert (out["searched"], out["failed"]) == (4, 0)
    page = Path(out["report"]).read_text()
    assert page.count('alt="room photo"') == 4 and "untrained" in page
    rows = pq.read_table(out["results"]).to_pylist()
    assert {r["query"] for r in rows} >= {"bed", "lounge chair"}
    runs = mlflow.search_runs(experiment_names=["mars"])
    assert {"demo", "ingest", "index-build", "inference"} <= set(runs["tags.mlflow.runName"])
