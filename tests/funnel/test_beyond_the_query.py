"""Beyond the query on the generated world: what fits instead when nothing does, and a room
with no query, through the funnel, the `mars-search` command and the batch flow.

What the funnel does with a student's judgement is tested with a judge that scores as the
ground truth does (tests/support/fit_judge.py): the session's tiny student has random weights
and cannot say what fits. The agent's cost and the plumbing also run with that real student.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.fit_judge import GroundTruthJudge

from mars_core.app.batch_search import search_requests
from mars_core.app.commands.search import main as search_main
from mars_core.app.compose import load_config
from mars_core.catalogue.schema import GROUND_TRUTH_FILE, ROOMS_FILE, SPLITS_FILE
from mars_core.funnel.stages import build_funnel
from mars_core.search.batch import RequestsFile, RequestSpec
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.types import SearchRequest
from mars_core.vision.images import load_image
from mars_core.world.vocab import CATEGORIES, OUTDOOR_VERSIONS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rooms(indexed) -> list[dict]:
    return pq.read_table(indexed.out_dir / ROOMS_FILE).to_pylist()


@pytest.fixture(scope="module")
def category_fits(indexed) -> dict[tuple[str, str], bool]:
    """(room id, category) -> whether some product of the category fits the room."""
    catalogue = pq.read_table(indexed.out_dir / "catalogue.parquet", columns=["key", "category"])
    category_of = {row["key"]: row["category"] for row in catalogue.to_pylist()}
    fits: dict[tuple[str, str], bool] = {}
    for row in pq.read_table(indexed.out_dir / GROUND_TRUTH_FILE).to_pylist():
        pair = (row["room_id"], category_of[row["key"]])
        fits[pair] = fits.get(pair, False) or row["grade"] > 0
    return fits


@pytest.fixture(scope="module")
def judge(indexed, cfg) -> GroundTruthJudge:
    return GroundTruthJudge(indexed.out_dir, cfg.data.max_image_pixels)


def judging(patch: pytest.MonkeyPatch, judge: GroundTruthJudge) -> GroundTruthJudge:
    """Every agent the code opens from now on scores with the ground-truth judge."""
    patch.setattr("mars_core.agent.stage.open_scorer", lambda *args, **kwargs: judge)
    return judge


@pytest.fixture
def judged(judge, monkeypatch) -> GroundTruthJudge:
    return judging(monkeypatch, judge)


@pytest.fixture(scope="module")
def funnel(indexed, judge) -> Iterator[SearchFunnel]:
    with pytest.MonkeyPatch.context() as patch:
        judging(patch, judge)
        built = build_funnel(load_config(indexed.overrides))
    with built:
        yield built


def room_of(rooms: list[dict], room_type: str) -> tuple[str, Path]:
    row = next(r for r in rooms if r["room_type"] == room_type)
    return row["room_id"], Path(row["path"])


def search(funnel: SearchFunnel, rooms, room_type: str, query: str, cfg) -> SearchResult:
    room_id, path = room_of(rooms, room_type)
    image = load_image(path, cfg.data.max_image_pixels)
    return funnel.search(SearchRequest(image, query, room_id=room_id))


@pytest.mark.parametrize(("room_type", "query"), [("pool", "bed"), ("bedroom", "lounge chair")])
def test_nothing_fits_offers_categories_that_fit_the_room(
    funnel, rooms, judge, category_fits, cfg, room_type, query
):
    """A bed by the pool: what fits there instead (outdoor things: only they fit a pool); a
    lounge chair in a bedroom: indoor things. Each offered product fits by the ground truth,
    with the agent's score and reason; best first, at most `funnel.alternatives`."""
    result = search(funnel, rooms, room_type, query, cfg)
    room_id, asked = result.request.room_id, result.lock.category
    assert result.nothing_fits and result.alternatives
    assert len(result.alternatives) <= cfg.funnel.alternatives
    for alternative in result.alternatives:
        candidate = alternative.candidate
        assert alternative.category == candidate.product["category"] != asked
        assert category_fits[(room_id, alternative.category)]
        assert judge.grade[(room_id, candidate.key)] > 0  # this very product fits the room
        assert candidate.scores["agent"] >= cfg.funnel.min_fit_score and candidate.rationale
        assert alternative.query and "siglip" in candidate.scores
    categories = [a.category for a in result.alternatives]
    scores = [a.candidate.scores["agent"] for a in result.alternatives]
    assert scores == sorted(scores, reverse=True) and len(set(categories)) == len(categories)
    setting = {c.product_type: c.setting for c in CATEGORIES}
    wrong = "indoor" if room_type == "pool" else "outdoor"
    assert all(setting.get(c) != wrong or c in OUTDOOR_VERSIONS for c in categories)


def test_alternatives_cost_one_candidate_per_category_within_the_pool(funnel, rooms, judge, cfg):
    judge.scored.clear()
    result = search(funnel, rooms, "pool", "bed", cfg)
    own, *others = judge.scored
    assert own == ("bed", cfg.funnel.k2)  # the query's own candidates, then one per category
    assert 1 <= len(others) <= cfg.funnel.alternative_pool
    assert all(rows == 1 for _, rows in others)
    assert len({query for query, _ in others}) == len(others)
    details = result.details["alternatives"]
    assert details["scored"] == details["categories_asked"] == len(others)
    assert set(result.timings) == {"bm25", "siglip", "agent"} and details["seconds"] > 0


def test_no_rationales_asked_means_none_for_alternatives_either(indexed, judged, rooms, cfg):
    """`funnel.rationale_top_n=0` (as the evaluation runs: no metric reads a reason) decodes
    no reason for the offered categories either."""
    with build_funnel(load_config([*indexed.overrides, "funnel.rationale_top_n=0"])) as funnel:
        result = search(funnel, rooms, "pool", "bed", cfg)
    assert result.nothing_fits and result.alternatives
    assert all(a.candidate.rationale is None for a in result.alternatives)


def test_the_real_student_is_asked_one_batched_pass_over_the_pool(indexed, pool_room, cfg):
    """With the session's tiny student (random weights), a funnel whose bar nothing reaches
    (`min_fit_score=1.0`): every category of the pool goes through the real agent, one
    candidate each, in one `score_many` call."""
    overrides = [*indexed.overrides, "funnel.min_fit_score=1.0"]
    with build_funnel(load_config(overrides)) as funnel:
        agent = next(s.stage for s in funnel.steps if s.stage and s.stage.name == "agent")
        calls: list[list[int]] = []
        score_many = agent.scorer.score_many

        def counted(jobs):
            calls.append([len(products) for _, _, products in jobs])
            return score_many(jobs)

        agent.scorer.score_many = counted
        image = load_image(pool_room, cfg.data.max_image_pixels)
        result = funnel.search(SearchRequest(image, "bed", room_id="pool"))
    assert result.nothing_fits and result.alternatives == []  # none reaches 1.0
    alternatives = calls[-1]
    assert 1 <= len(alternatives) <= cfg.funnel.alternative_pool
    assert set(alternatives) == {1}
    assert result.details["alternatives"]["scored"] == len(alternatives)


@pytest.fixture(scope="module")
def pool_room(rooms) -> Path:
    return room_of(rooms, "pool")[1]


@pytest.fixture(scope="module")
def held_out_rooms(indexed, rooms) -> list[dict]:
    splits = pq.read_table(indexed.out_dir / SPLITS_FILE).to_pylist()
    test = {row["id"] for row in splits if row["kind"] == "room" and row["split"] == "test"}
    return [room for room in rooms if room["room_id"] in test]


def test_a_room_with_no_query_gets_several_fitting_categories(
    funnel, held_out_rooms, judge, category_fits, cfg
):
    good = []
    for room in held_out_rooms:
        image = load_image(room["path"], cfg.data.max_image_pixels)
        judge.scored.clear()
        result = funnel.search(SearchRequest(image, "", room_id=room["room_id"]))
        assert result.room_only and result.lock.category is None and not result.locked
        assert result.stages_run == ["siglip", "agent"] and set(result.timings) == {
            "siglip",
            "agent",
        }
        assert len(judge.scored) <= cfg.funnel.alternative_pool  # one call per category
        assert all(rows <= cfg.funnel.per_category for _, rows in judge.scored)
        groups = result.groups()
        assert all(len(group) <= cfg.funnel.per_category for _, group in groups)
        best = [group[0].scores["agent"] for _, group in groups]
        assert best == sorted(best, reverse=True)
        assert all(c.rationale for c in result.results)
        fitting = all(category_fits[(room["room_id"], category)] for category, _ in groups)
        good.append(len(groups) >= 2 and fitting and not result.nothing_fits)
    assert held_out_rooms and sum(good) / len(good) >= 0.9, good


def test_the_command_line_searches_a_room_with_no_query(indexed, judged, pool_room, capsys):
    with pytest.raises(SystemExit) as done:
        search_main(["--room", str(pool_room), *indexed.overrides])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "no query: the categories that fit the room" in out and "\n-- " in out
    page = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert "what-fits" in page.name and "What fits room" in page.read_text()


def test_the_command_line_says_what_to_try_instead(indexed, judged, pool_room, capsys):
    with pytest.raises(SystemExit) as done:
        search_main(["--room", str(pool_room), "--query", "bed", *indexed.overrides])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "Nothing in the catalogue fits this room" in out and "try instead:" in out
    page = Path(out.strip().splitlines()[-1].removeprefix("report: ")).read_text()
    assert "Try instead:" in page and 'class="search-link"' in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", "the"], "no searchable words"),
        (["--query", "bed " * 60], "over the limit"),
        (["--room", "missing.jpg"], "missing.jpg"),
        (["funnel.per_category=0"], "funnel.per_category"),
        (["funnel.alternative_pool=0"], "funnel.alternative_pool"),
    ],
)
def test_bad_input_ends_in_one_line_and_status_2(indexed, pool_room, capsys, argv, message):
    room = [] if "--room" in argv else ["--room", str(pool_room)]
    with pytest.raises(SystemExit) as done:
        search_main([*room, *argv, *indexed.overrides])
    assert done.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err


def test_the_batch_flow_writes_both_features(indexed, judged, pool_room, tmp_path):
    specs = [
        RequestSpec(line=1, room=pool_room, query="bed", room_id="pool"),
        RequestSpec(line=2, room=pool_room, query="", room_id="pool"),
    ]
    outcome = search_requests(
        load_config(indexed.overrides),
        RequestsFile(specs=specs, bad_lines=[]),
        name="beyond",
        out_dir=tmp_path,
    )
    rows = pq.read_table(outcome.table).to_pylist()
    offered = [r for r in rows if r["alternative"]]
    assert offered and all(r["request"] == 1 and r["agent"] >= 0.5 for r in offered)
    assert [r["rank"] for r in offered] == list(range(1, len(offered) + 1))
    room_only = [r for r in rows if r["request"] == 2]
    assert room_only and all(r["query"] == "" and not r["alternative"] for r in room_only)
    assert len({r["category"] for r in room_only}) >= 2
    page = outcome.page.read_text()
    assert "Try instead:" in page and 'class="group"' in page and "What fits room" in page
