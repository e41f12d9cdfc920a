"""The product end to end on the generated world: funnel, `search` CLI and inference flow."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest

from mars_core.app.commands.search import main as search_main
from mars_core.app.compose import load_config
from mars_core.funnel.stages import UNTRAINED_NOTICE, build_funnel
from mars_core.search.types import SearchRequest
from mars_core.vision.images import load_image

PRODUCT_FIELDS = {"key", "name", "category", "image_path"}


@pytest.fixture(scope="session")
def pool_room(indexed) -> Path:
    rows = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    return Path(next(r["path"] for r in rows if r["room_type"] == "pool"))


def _funnel(indexed, *overrides):
    return build_funnel(load_config([*indexed.overrides, *overrides]))


@pytest.mark.slow
def test_the_funnel_returns_k3_results_with_every_field(indexed, pool_room, cfg):
    funnel = _funnel(indexed)
    request = SearchRequest(load_image(pool_room, 10**7), "bed", room_id="pool")
    result = funnel.search(request)
    assert len(result.results) == cfg.funnel.k3
    assert result.stages_run == ["bm25", "siglip", "agent"]
    assert set(result.timings) == {"bm25", "siglip", "agent"}
    assert result.locked and result.lock.category == "BED"
    for candidate in result.results:
        assert set(candidate.product) >= PRODUCT_FIELDS
        assert candidate.product["category"] == "BED"
        assert set(candidate.scores) == {"bm25", "siglip", "agent"}
        assert 0.0 <= candidate.scores["agent"] <= 1.0
    agent = [c.scores["agent"] for c in result.results]
    assert agent == sorted(agent, reverse=True)
    assert result.details["agent"]["rationales"] == cfg.funnel.rationale_top_n


@pytest.mark.slow
@pytest.mark.parametrize(
    ("switches", "stages"),
    [
        (["funnel.stages=[bm25,siglip]"], ["bm25", "siglip"]),
        (["funnel.stages=[bm25,agent]"], ["bm25", "agent"]),
        (["funnel.stages=[bm25]"], ["bm25"]),
    ],
)
def test_stages_are_chosen_by_name(indexed, pool_room, cfg, switches, stages):
    result = _funnel(indexed, *switches).search(SearchRequest(load_image(pool_room, 10**7), "bed"))
    assert result.stages_run == stages
    assert len(result.results) == cfg.funnel.k3
    assert all(set(c.scores) == set(stages) for c in result.results)
    last = stages[-1]
    ordered = [c.scores[last] for c in result.results]
    assert ordered == sorted(ordered, reverse=True)


@pytest.mark.slow
def test_search_cli_prints_a_table_and_writes_the_page(indexed, pool_room, capsys, cfg):
    with pytest.raises(SystemExit) as done:
        search_main(["--room", str(pool_room), "--query", "bed", *indexed.overrides])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "category locked to BED" in out and "agent" in out
    assert UNTRAINED_NOTICE in out
    page = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert page.is_file() and page.suffix == ".html" and "data:image/jpeg" in page.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("room", "query", "extra", "message"),
    [
        ("README.md", "bed", [], "is not an image"),
        ("missing.jpg", "bed", [], "missing.jpg"),
        (None, "the", [], "no searchable words"),
        (None, "bed", ["student.adapter=/no/such/adapter"], "adapter '/no/such/adapter'"),
        (None, "bed", ["funnel.k1=lots"], "bad configuration"),
        (None, "bed", ["data.max_image_pixels=100"], "pixels"),
    ],
)
def test_user_mistakes_end_in_one_line_and_status_2(
    indexed, pool_room, capsys, room, query, extra, message
):
    room = str(Path(__file__).parents[2] / room) if room else str(pool_room)
    with pytest.raises(SystemExit) as done:
        search_main(["--room", room, "--query", query, *indexed.overrides, *extra])
    assert done.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err  # (model loading bars may precede)
    assert err.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in err


@pytest.mark.slow
def test_inference_flow_writes_results_and_page_and_names_bad_requests(
    indexed, pool_room, tmp_path, prefect_harness
):
    from flows.inference import inference

    requests = tmp_path / "requests.jsonl"
    (tmp_path / "notes.txt").write_text("not an image")
    lines = [
        {"room": str(pool_room), "query": "bed"},
        {"room": str(pool_room), "query": "something blue"},
        {"room": "notes.txt", "query": "lamp"},
    ]
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = inference(str(requests), [*indexed.overrides, "funnel.stages=[bm25,siglip]"])
    assert (out.searched, out.failed) == (2, 1)
    assert Path(out.results).name == "requests.parquet" and Path(out.page).name == "requests.html"
    rows = pq.read_table(out.results).to_pylist()
    assert {r["request"] for r in rows} == {1, 2}
    assert {r["category_locked"] for r in rows if r["request"] == 2} == {False}
    page = Path(out.page).read_text()
    assert "Requests that could not run" in page and "is not an image" in page
    assert "request 3" in page and "request 3" in out.summary()
    assert "unlocked" in page and "agent = the student model" in page
    assert out.latency_ms["bm25.p95"] >= out.latency_ms["bm25.p50"] > 0
    runs = mlflow.search_runs(experiment_names=["mars"], filter_string="run_name = 'inference'")
    assert runs.iloc[0]["metrics.failed"] == 1


@pytest.mark.slow
def test_two_batches_keep_both_results_and_zero_hits_are_said(
    indexed, pool_room, tmp_path, prefect_harness
):
    from flows.inference import inference

    overrides = [*indexed.overrides, "funnel.stages=[bm25,siglip]"]
    outs = []
    for name, query in (("first", "bed"), ("second", "spaceship")):
        requests = tmp_path / f"{name}.jsonl"
        requests.write_text(json.dumps({"room": str(pool_room), "query": query}) + "\n")
        outs.append(inference(str(requests), overrides))
    assert [Path(out.results).stem for out in outs] == ["first", "second"]
    assert all(Path(out.results).is_file() and Path(out.page).is_file() for out in outs)
    said = "no products matched 'spaceship'; all categories searched"
    assert said in outs[1].summary() and html.escape(said) in Path(outs[1].page).read_text()
    assert pq.read_table(outs[0].results).num_rows > 0


def test_the_untrained_notice_goes_away_with_an_adapter_or_without_the_agent(cfg):
    from mars_core.funnel.stages import agent_notice

    assert agent_notice(cfg) == UNTRAINED_NOTICE
    trained = dataclasses.replace(cfg, student=dataclasses.replace(cfg.student, adapter="x"))
    assert agent_notice(trained) is None
    no_agent = dataclasses.replace(
        cfg, funnel=dataclasses.replace(cfg.funnel, stages=["bm25", "siglip"])
    )
    assert agent_notice(no_agent) is None
