"""Beyond the query on a catalogue shaped like real ABO outdoors (`data=shared_types`): no
lounge chairs, patio tables or umbrellas of their own, only the outdoor versions of chairs,
tables, sofas, lamps and rugs (and planters). By the pool a category's closest products are
its indoor look-alikes, so what fits instead and a room with no query must find the fitting
variant inside the category, within the request's agent budget.

The agent is the trained tiny student of that world (tests/fixtures/
trained_student_shared_types, `python -m bench.trained_student_fixture --fixture
trained_student_shared_types data=shared_types`), asked only about rooms it never saw and
judged by the world's ground truth.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.trained_student import SHARED_TYPES_FIXTURE, TrainedStudent

from mars_core.app.compose import load_config
from mars_core.catalogue.ingest import ingest
from mars_core.catalogue.schema import CATALOGUE_FILE, GROUND_TRUTH_FILE, ROOMS_FILE
from mars_core.catalogue.splits import write_splits
from mars_core.funnel.stages import build_funnel
from mars_core.index.reindex import reindex
from mars_core.prompt import PROMPT_VERSION
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.types import SearchRequest
from mars_core.vision.images import load_image
from mars_core.world.generate import generate_world
from mars_core.world.vocab import OUTDOOR_VERSIONS

pytestmark = pytest.mark.slow
AGENT = "agent"
STUDENT = TrainedStudent.load(SHARED_TYPES_FIXTURE)


def test_the_trained_student_was_trained_on_the_prompt_it_is_asked_with():
    refresh = STUDENT.served["refresh"]
    assert STUDENT.served["prompt_version"] == PROMPT_VERSION, f"the prompt moved on: {refresh}"


@pytest.fixture(scope="module")
def shared_world(session_overrides, embedder, tmp_path_factory) -> list[str]:
    """The shared-type world at the tests' size, generated, ingested and indexed in an
    artifacts folder of its own; the overrides under which the funnel finds it."""
    artifacts = tmp_path_factory.mktemp("shared-types")
    overrides = [*session_overrides, "data=shared_types", f"paths.artifacts={artifacts}"]
    cfg = load_config(overrides)
    generate_world(cfg.data)
    ingest(cfg.data)
    write_splits(Path(cfg.data.out_dir), cfg.data.test_fraction, cfg.data.seed)
    reindex(Path(cfg.data.out_dir) / CATALOGUE_FILE, cfg.index, embedder)
    return overrides


@pytest.fixture(scope="module")
def world_cfg(shared_world):
    return load_config(STUDENT.overrides(shared_world))


@pytest.fixture(scope="module")
def truth(world_cfg) -> tuple[dict[tuple[str, str], int], dict[str, str]]:
    """(room id, product key) -> grade, and product key -> category."""
    out = Path(world_cfg.data.out_dir)
    grades = {
        (row["room_id"], row["key"]): row["grade"]
        for row in pq.read_table(out / GROUND_TRUTH_FILE).to_pylist()
    }
    catalogue = pq.read_table(out / CATALOGUE_FILE, columns=["key", "category"]).to_pylist()
    return grades, {row["key"]: row["category"] for row in catalogue}


@pytest.fixture(scope="module")
def outdoor_rooms(world_cfg) -> list[dict]:
    """The held-out pool and patio photos (the student never saw them)."""
    rows = pq.read_table(Path(world_cfg.data.out_dir) / ROOMS_FILE).to_pylist()
    rooms = [room for room in STUDENT.unseen(rows) if room["room_type"] in ("pool", "patio")]
    assert len([r for r in rooms if r["room_type"] == "pool"]) >= 2, STUDENT.served["refresh"]
    return rooms


class Counted:
    """The candidates of each `score_many` call of a funnel's agent, per category asked."""

    def __init__(self, funnel: SearchFunnel) -> None:
        self.calls: list[list[int]] = []
        scorer = next(s.stage for s in funnel.steps if s.stage and s.stage.name == AGENT).scorer
        score_many = scorer.score_many

        def counted(jobs):
            self.calls.append([len(products) for _, _, products in jobs])
            return score_many(jobs)

        scorer.score_many = counted


@pytest.fixture(scope="module")
def funnel(world_cfg):
    with build_funnel(world_cfg) as built:
        yield built, Counted(built)


def search(funnel: SearchFunnel, room: dict, query: str, cfg) -> SearchResult:
    image = load_image(room["path"], cfg.data.max_image_pixels)
    return funnel.search(SearchRequest(image, query, room_id=room["room_id"]))


def test_a_bed_by_the_pool_offers_outdoor_furniture_found_inside_shared_types(
    funnel, outdoor_rooms, truth, world_cfg
):
    """Every held-out pool photo: nothing fits a bed, and at least two other categories are
    offered, each with a product that fits the pool by the ground truth; one at least is a
    shared type (chairs, tables, sofas, lamps, rugs), whose closest products are indoor."""
    built, counted = funnel
    grades, _ = truth
    for room in [r for r in outdoor_rooms if r["room_type"] == "pool"]:
        counted.calls.clear()
        result = search(built, room, "bed", world_cfg)
        assert result.nothing_fits, room["room_id"]
        offered = result.alternatives
        assert len(offered) >= 2, (room["room_id"], result.details["alternatives"])
        assert all(grades[(room["room_id"], a.candidate.key)] > 0 for a in offered)
        assert any(a.category in OUTDOOR_VERSIONS for a in offered)
        beyond = sum(counted.calls[-1])  # the scored rows of the alternatives' one pass
        assert beyond == result.details["alternatives"]["scored"]
        assert beyond <= world_cfg.funnel.beyond_budget


def test_a_pool_with_no_query_shows_several_fitting_categories(
    funnel, outdoor_rooms, truth, world_cfg
):
    """Room-only search of every held-out pool and patio photo: two or more categories shown,
    every shown product fitting, never a false "nothing fits"; within the budget."""
    built, counted = funnel
    grades, category = truth
    for room in outdoor_rooms:
        counted.calls.clear()
        result = search(built, room, "", world_cfg)
        assert not result.nothing_fits, room["room_id"]
        fitting = {category[c.key] for c in result.results if grades[(room["room_id"], c.key)] > 0}
        assert len(fitting) >= 2 and len(fitting) == len(result.groups()), room["room_id"]
        (rows,) = counted.calls
        assert sum(rows) == result.details[AGENT]["scored"] <= world_cfg.funnel.beyond_budget


def test_closeness_alone_loses_the_fitting_variants(shared_world, outdoor_rooms, truth):
    """The shape's trap, with the same budget: asking each category's closest candidates only
    (`funnel.beyond_diversity=0`) finds fewer of the shared types that fit outdoors."""
    grades, category = truth

    def shared_types_found(overrides: list[str]) -> int:
        cfg = load_config(STUDENT.overrides([*shared_world, *overrides]))
        found = 0
        with build_funnel(cfg) as built:
            for room in outdoor_rooms:
                result = search(built, room, "", cfg)
                shown = [c for c in result.results if grades[(room["room_id"], c.key)] > 0]
                found += len({category[c.key] for c in shown} & set(OUTDOOR_VERSIONS))
        return found

    assert shared_types_found(["funnel.beyond_diversity=0"]) < shared_types_found([])


def test_a_small_budget_is_never_exceeded(shared_world, outdoor_rooms):
    """A budget under the categories asked: that many candidates in all, one per category."""
    cfg = load_config(STUDENT.overrides([*shared_world, "funnel.beyond_budget=5"]))
    with build_funnel(cfg) as built:
        counted = Counted(built)
        result = search(built, outdoor_rooms[0], "bed", cfg)
        room_only = search(built, outdoor_rooms[0], "", cfg)
    assert counted.calls[-2] == [1] * 5 and counted.calls[-1] == [1] * 5
    assert result.details["alternatives"]["scored"] == 5
    assert room_only.details[AGENT]["scored"] == 5
