"""Beyond the query on the generated world: what fits instead when nothing does, and a room
with no query, through the funnel, the `mars-search` command and the batch flow.

The agent is a trained tiny student (tests/support/trained_student.py), asked only about rooms
it never saw and judged by the world's ground truth; the session's untrained student shows the
cost bound holds whatever the scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.trained_student import SERVED, student_overrides, unseen

from mars_core.app.batch_search import search_requests
from mars_core.app.commands.search import main as search_main
from mars_core.app.compose import load_config
from mars_core.catalogue.schema import GROUND_TRUTH_FILE, ROOMS_FILE
from mars_core.funnel.stages import AGENT, build_funnel
from mars_core.prompt import PROMPT_VERSION
from mars_core.search.batch import RequestsFile, RequestSpec
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.types import SearchRequest
from mars_core.vision.images import load_image
from mars_core.world.vocab import CATEGORIES, OUTDOOR_VERSIONS

pytestmark = pytest.mark.slow


def test_the_trained_student_was_trained_on_the_prompt_it_is_asked_with():
    assert SERVED["prompt_version"] == PROMPT_VERSION, (
        "the prompt moved on: make demo, then python -m bench.trained_student_fixture"
    )


@pytest.fixture(scope="module")
def unseen_rooms(indexed) -> list[dict]:
    """The world's rooms the trained student never saw (a dozen or more: the fixture's
    manifest names the held-out rooms of make demo's world, which this one's come from)."""
    rooms = unseen(pq.read_table(indexed.out_dir / ROOMS_FILE).to_pylist())
    assert len(rooms) >= 10, "re-run python -m bench.trained_student_fixture"
    return rooms


@pytest.fixture(scope="module")
def grades(indexed) -> dict[tuple[str, str], int]:
    """(room id, product key) -> the ground truth's grade."""
    rows = pq.read_table(indexed.out_dir / GROUND_TRUTH_FILE).to_pylist()
    return {(row["room_id"], row["key"]): row["grade"] for row in rows}


@pytest.fixture(scope="module")
def category_fits(indexed, grades) -> dict[tuple[str, str], bool]:
    """(room id, category) -> whether some product of the category fits the room."""
    catalogue = pq.read_table(indexed.out_dir / "catalogue.parquet", columns=["key", "category"])
    category_of = {row["key"]: row["category"] for row in catalogue.to_pylist()}
    fits: dict[tuple[str, str], bool] = {}
    for (room_id, key), grade in grades.items():
        pair = (room_id, category_of[key])
        fits[pair] = fits.get(pair, False) or grade > 0
    return fits


@pytest.fixture(scope="module")
def trained(indexed) -> list[str]:
    return student_overrides(indexed.overrides)


def agent_of(funnel: SearchFunnel):
    return next(s.stage for s in funnel.steps if s.stage and s.stage.name == AGENT)


class Counted:
    """The products of each `score_many` call of a funnel's agent, per category asked."""

    def __init__(self, funnel: SearchFunnel) -> None:
        self.calls: list[list[tuple[str, int]]] = []
        scorer = agent_of(funnel).scorer
        score_many = scorer.score_many

        def counted(jobs):
            self.calls.append([(query, len(products)) for _, query, products in jobs])
            return score_many(jobs)

        scorer.score_many = counted


def counted_funnel(overrides: list[str]) -> tuple[SearchFunnel, Counted]:
    funnel = build_funnel(load_config(overrides))
    return funnel, Counted(funnel)


@pytest.fixture(scope="module")
def funnel(trained) -> Iterator[SearchFunnel]:
    with build_funnel(load_config(trained)) as built:
        yield built


def room_of(rooms: list[dict], room_type: str) -> dict:
    return next(r for r in rooms if r["room_type"] == room_type)


def search(funnel: SearchFunnel, room: dict, query: str, cfg) -> SearchResult:
    image = load_image(room["path"], cfg.data.max_image_pixels)
    return funnel.search(SearchRequest(image, query, room_id=room["room_id"]))


@pytest.mark.parametrize(("room_type", "query"), [("pool", "bed"), ("bedroom", "lounge chair")])
def test_nothing_fits_offers_categories_that_fit_the_room(
    funnel, unseen_rooms, grades, category_fits, cfg, room_type, query
):
    """A bed by the pool: what fits there instead (outdoor things: only they fit a pool); a
    lounge chair in a bedroom: indoor things. Each offered product fits by the ground truth,
    with the agent's score and reason; best first, at most `funnel.alternatives`."""
    result = search(funnel, room_of(unseen_rooms, room_type), query, cfg)
    room_id, asked = result.request.room_id, result.lock.category
    assert result.nothing_fits and result.alternatives
    assert len(result.alternatives) <= cfg.funnel.alternatives
    bar = funnel_bar(funnel)
    for alternative in result.alternatives:
        candidate = alternative.candidate
        assert alternative.category == candidate.product["category"] != asked
        assert category_fits[(room_id, alternative.category)]
        assert grades[(room_id, candidate.key)] > 0  # this very product fits the room
        assert candidate.scores[AGENT] >= bar and candidate.rationale
        assert alternative.query and "siglip" in candidate.scores
    categories = [a.category for a in result.alternatives]
    scores = [a.candidate.scores[AGENT] for a in result.alternatives]
    assert scores == sorted(scores, reverse=True) and len(set(categories)) == len(categories)
    setting = {c.product_type: c.setting for c in CATEGORIES}
    wrong = "indoor" if room_type == "pool" else "outdoor"
    assert all(setting.get(c) != wrong or c in OUTDOOR_VERSIONS for c in categories)


def funnel_bar(funnel: SearchFunnel) -> float:
    """The fit bar the funnel's agent serves with."""
    return agent_of(funnel).ordering.min_fit_score


def test_alternatives_spend_the_budget_over_the_pool_in_one_pass(trained, unseen_rooms, cfg):
    """With a pool smaller than the catalogue's categories, exactly that many are asked about,
    each one at least, the whole budget over them, in one batched pass after the query's own
    candidates."""
    funnel, counted = counted_funnel([*trained, "funnel.alternative_pool=4"])
    with funnel:
        result = search(funnel, room_of(unseen_rooms, "pool"), "bed", cfg)
    (own,), others = counted.calls[0], counted.calls[1]
    assert own == ("bed", cfg.funnel.k2)
    assert len(others) == 4 and len({query for query, _ in others}) == len(others)
    rows = [count for _, count in others]
    assert sum(rows) == cfg.funnel.beyond_budget and min(rows) >= 1
    details = result.details["alternatives"]
    assert details["scored"] == sum(rows) and details["categories_asked"] == len(others)
    assert details["budget"] == cfg.funnel.beyond_budget
    assert set(result.timings) == {"bm25", "siglip", AGENT} and details["seconds"] > 0


def test_no_rationales_asked_means_none_for_alternatives_either(trained, unseen_rooms, cfg):
    """`funnel.rationale_top_n=0` (as the evaluation runs: no metric reads a reason) decodes
    no reason for the offered categories either."""
    with build_funnel(load_config([*trained, "funnel.rationale_top_n=0"])) as funnel:
        result = search(funnel, room_of(unseen_rooms, "pool"), "bed", cfg)
    assert result.nothing_fits and result.alternatives
    assert all(a.candidate.rationale is None for a in result.alternatives)


def test_an_untrained_student_is_asked_the_same_and_offers_nothing_under_the_bar(
    indexed, unseen_rooms, cfg
):
    """The session's tiny student (random weights) with a bar nothing reaches
    (`min_fit_score=1.0`): the same budget over the same categories, in one call."""
    funnel, counted = counted_funnel([*indexed.overrides, "funnel.min_fit_score=1.0"])
    with funnel:
        result = search(funnel, room_of(unseen_rooms, "pool"), "bed", cfg)
    assert result.nothing_fits and result.alternatives == []  # none reaches 1.0
    alternatives = counted.calls[-1]
    assert 1 <= len(alternatives) <= cfg.funnel.alternative_pool
    rows = [count for _, count in alternatives]
    assert sum(rows) == result.details["alternatives"]["scored"] <= cfg.funnel.beyond_budget
    assert min(rows) >= 1  # every category asked gets its closest candidate at least


@pytest.fixture(scope="module")
def pool_room(unseen_rooms) -> Path:
    return Path(room_of(unseen_rooms, "pool")["path"])


def test_a_room_with_no_query_gets_several_fitting_categories(
    trained, unseen_rooms, category_fits, cfg
):
    funnel, counted = counted_funnel(trained)
    good = []
    with funnel:
        for room in unseen_rooms:
            counted.calls.clear()
            result = search(funnel, room, "", cfg)
            assert result.room_only and result.lock.category is None and not result.locked
            assert result.stages_run == ["siglip", AGENT]
            assert set(result.timings) == {"siglip", AGENT}
            (asked,) = counted.calls  # one batched pass over the categories
            assert len(asked) <= cfg.funnel.alternative_pool
            rows = [count for _, count in asked]
            assert sum(rows) == result.details[AGENT]["scored"] <= cfg.funnel.beyond_budget
            groups = result.groups()
            assert all(len(group) <= cfg.funnel.per_category for _, group in groups)
            best = [group[0].scores[AGENT] for _, group in groups]
            assert best == sorted(best, reverse=True)
            assert all(group[0].rationale for _, group in groups)  # a reason per category
            fitting = all(category_fits[(room["room_id"], category)] for category, _ in groups)
            good.append(len(groups) >= 2 and fitting and not result.nothing_fits)
    assert sum(good) / len(good) >= 0.9, good


def test_the_command_line_searches_a_room_with_no_query(trained, pool_room, capsys):
    with pytest.raises(SystemExit) as done:
        search_main(["--room", str(pool_room), *trained])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "no query: the categories that fit the room" in out and "\n-- " in out
    assert "the agent judged the room on " in out and "candidates of " in out
    page = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert "what-fits" in page.name and "What fits room" in page.read_text()


def test_the_command_line_says_what_to_try_instead(trained, pool_room, capsys):
    with pytest.raises(SystemExit) as done:
        search_main(["--room", str(pool_room), "--query", "bed", *trained])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "Nothing in the catalogue fits this room" in out and "try instead:" in out
    assert "what fits instead: " in out and " offered" in out
    page = Path(out.strip().splitlines()[-1].removeprefix("report: ")).read_text()
    assert "Try instead:" in page and 'class="search-link"' in page
    assert 'class="meta asked">what fits instead: ' in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", "the"], "no searchable words"),
        (["--query", "bed " * 60], "over the limit"),
        (["--room", "missing.jpg"], "missing.jpg"),
        (["funnel.per_category=0"], "funnel.per_category"),
        (["funnel.alternative_pool=0"], "funnel.alternative_pool"),
        (["funnel.beyond_budget=0"], "funnel.beyond_budget"),
        (["funnel.beyond_diversity=2"], "funnel.beyond_diversity"),
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


def test_the_batch_flow_writes_both_features(trained, pool_room, tmp_path):
    specs = [
        RequestSpec(line=1, room=pool_room, query="bed", room_id="pool"),
        RequestSpec(line=2, room=pool_room, query="", room_id="pool"),
    ]
    outcome = search_requests(
        load_config(trained),
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
