"""The index build flow runs as a real Prefect flow and logs counts, sizes and timings to MLflow."""

from __future__ import annotations

import mlflow
import pytest
from support.catalogue_factory import change_products, read_rows

from mars_core.index.lance import VectorTable
from mars_core.index.store import IndexSnapshot


@pytest.mark.slow
def test_index_flow_builds_then_updates_and_logs_to_mlflow(
    own_world, session_overrides, prefect_harness, tmp_path, capsys
):
    from flows.index import build_index, main

    overrides = [
        *session_overrides,
        f"data.out_dir={own_world.folder}",
        f"index.dir={tmp_path / 'index'}",
    ]
    first = build_index(overrides)
    n = len(read_rows(own_world.catalogue))
    assert (first.added, first.embedded, first.published) == (n, n, True)
    assert IndexSnapshot.current(tmp_path / "index").manifest.rows == n

    rows = read_rows(own_world.catalogue)
    change_products(own_world.catalogue, [row["key"] for row in rows[:5]])
    main(overrides)
    printed = capsys.readouterr().out
    assert "index published: added 0, changed 5, removed 0, unchanged 295" in printed
    assert "embedded 5 images" in printed

    runs = mlflow.search_runs(
        experiment_names=["mars"],
        filter_string="attributes.run_name = 'index'",
        order_by=["attributes.start_time DESC"],
    )
    latest = runs.iloc[0]
    assert latest["metrics.changed"] == 5 and latest["metrics.embedded"] == 5
    assert latest["metrics.unchanged"] == n - 5
    assert latest["metrics.lucene_bytes"] > 0 and latest["metrics.lance_bytes"] > 0
    assert "metrics.seconds_total" in latest  # logged; its value is not asserted
    # The agent's product visual tokens: the 5 new images only, the rest kept from the first run.
    assert latest["metrics.visual_tokens_computed"] == 5
    assert latest["metrics.visual_tokens_bytes_per_product"] > 0
    assert len(list((tmp_path / "index" / "visual_tokens").glob("*.parquet"))) == 1
    assert latest["params.index.name"] == "tiny"

    # The Prefect UI saw the embedding's progress: the artifact ended at every product.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["reindex-embedding"]))
        )
    assert artifacts and {artifact.data for artifact in artifacts} == {100.0}


@pytest.mark.slow
def test_embedding_shards_on_a_two_worker_dask_cluster_publish_the_same_index(
    own_world, session_overrides, prefect_harness, tmp_path
):
    """`pipeline.runner=dask`: each shard of `index.upsert_rows` products is an `embed-shard`
    task run on the cluster, and the published build is the threads' byte for byte."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    from flows.index import build_index

    shard_rows = 64
    base = [
        *session_overrides,
        f"data.out_dir={own_world.folder}",
        f"index.upsert_rows={shard_rows}",
        "student.visual_cache=false",
    ]
    threads = build_index([*base, f"index.dir={tmp_path / 'threads'}"])
    state = build_index(
        [
            *base,
            f"index.dir={tmp_path / 'dask'}",
            "pipeline.runner=dask",
            "pipeline.dask_workers=2",
        ],
        return_state=True,
    )
    on_dask = state.result()

    n = len(read_rows(own_world.catalogue))
    assert threads.embedded == on_dask.embedded == n
    builds = [IndexSnapshot.current(tmp_path / name) for name in ("threads", "dask")]
    for name in ("products.arrow", "vectors.npy"):
        first, second = (build.lucene_path / name for build in builds)
        assert first.read_bytes() == second.read_bytes()
    tables = [
        VectorTable(b.lance_uri, b.manifest.table, b.manifest.dim).table.to_arrow().sort_by("key")
        for b in builds
    ]
    assert tables[0].equals(tables[1])

    with get_client(sync_client=True) as client:
        shard_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            ),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="embed-shard")),
        )
    assert len(shard_runs) == -(-n // shard_rows)
    assert all(run.state.is_completed() for run in shard_runs)
