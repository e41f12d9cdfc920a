"""Funnel stages by name: the registry, stage lists checked when the config composes, and a
stage added through the registry alone."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from PIL import Image

from mars_core.app.batch_search import BatchOutcome, write_outputs
from mars_core.app.compose import load_config
from mars_core.app.serve.app import result_json
from mars_core.funnel import stages as registry
from mars_core.funnel.stages import (
    BM25,
    StageSpec,
    build_funnel,
    check_stages,
    known_stages,
    register_stage,
)
from mars_core.infra.errors import ConfigError
from mars_core.search.types import SearchRequest, StageOutput


def test_the_registry_lists_the_three_stages_in_funnel_order():
    assert known_stages() == ["bm25", "siglip", "agent"]


def test_a_stage_name_registers_once():
    with pytest.raises(ValueError, match="'bm25' is already registered"):
        register_stage(
            StageSpec("bm25", lambda funnel: funnel.k1, lambda cfg, snapshot, models: None)
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("funnel.stages=[bm25,clip]", "unknown stage 'clip' in [bm25, clip]; known stages: bm25"),
        ("funnel.stages=[siglip,agent]", "must start with 'bm25'"),
        ("funnel.stages=[bm25,agent,siglip]", "in the order bm25, siglip, agent"),
        ("funnel.stages=[bm25,bm25]", "list each stage once"),
        ("eval.ablations=[[bm25],[bm25,vibes]]", "eval.ablations[1]: unknown stage 'vibes'"),
    ],
)
def test_a_bad_stage_list_is_one_config_error_naming_the_key(session_overrides, override, message):
    with pytest.raises(ConfigError, match=r"^[^\n]+$") as raised:
        load_config([*session_overrides, override])
    assert message in str(raised.value)


def test_an_ablation_is_checked_like_the_funnel():
    assert check_stages(["bm25", "agent"]) == ["bm25", "agent"]
    with pytest.raises(ConfigError, match=r"eval\.ablations\[0\]"):
        check_stages([], key="eval.ablations[0]")


class ShelfStage:
    """A stage of a test's own: keeps the earlier stage's order, scores each product by it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def rank(self, request, candidates, k):
        kept = (candidates or [])[:k]
        for position, candidate in enumerate(kept):
            candidate.scores[self.name] = 1.0 / (position + 1)
        return StageOutput(kept)


def test_a_stage_registered_alone_shows_in_the_results_table_page_and_json(
    indexed, cfg, tmp_path, monkeypatch
):
    """Adding a stage is its module plus one `register_stage`: the funnel runs it by name and
    the parquet, the page and the service's JSON show its score with no other change."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # restored after
    shelf = register_stage(
        StageSpec(
            "shelf",
            lambda funnel: funnel.k3,
            lambda cfg, snapshot, models: ShelfStage("shelf"),
            score="its place on the shelf",
        )
    ).name
    with build_funnel(cfg, [BM25, shelf]) as funnel:
        result = funnel.search(SearchRequest(Image.new("RGB", (64, 64)), "bed", "room"))
    assert result.stages_run == [BM25, shelf] and result.results
    outcome = write_outputs(
        BatchOutcome(results=[(1, result)], failed=[]),
        tmp_path,
        name="shelf",
        max_image_pixels=cfg.data.max_image_pixels,
    )
    table = pq.read_table(outcome.table)
    assert {shelf, f"seconds_{shelf}"} <= set(table.column_names)
    assert table.column(shelf).to_pylist()[0] == 1.0
    page = outcome.page.read_text()
    assert f"<th>{shelf}</th>" in page and f"{shelf} = its place on the shelf" in page
    body = result_json(result, k=cfg.funnel.k3, notice=None)
    assert body["stages_run"] == [BM25, shelf] and shelf in body["timings_ms"]
    assert body["products"][0]["scores"][shelf] == 1.0
