"""The evaluation set: (room, query) requests with graded judgments, test split only.

Rooms and products come from the test split (`splits.parquet`), so nothing the student was
trained on is measured. Judgments come from the generated world's ground truth when there is
one (grade 0 misfit .. 3 fits with style and colour), else from the teacher's labels of the
held-out pairs (`heldout_labels.parquet`), graded from the score. Every test room is asked
for every category of the test products, so requests whose category has no place in the
room (a bed by the pool) are in the set, and the right answer to them is "nothing fits".
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    GROUND_TRUTH_FILE,
    ROOMS_FILE,
    SPLITS_FILE,
)
from mars_core.config import EvalConfig, VocabularyConfig
from mars_core.index.vocabulary import category_query
from mars_core.infra.errors import UserInputError
from mars_core.teacher.schema import HELDOUT_LABELS_FILE

EVAL_SET_FILE = "eval_set.parquet"
EVAL_SET_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),  # f"{room_id}|{category}"
        pa.field("room_id", pa.string(), nullable=False),
        pa.field("room_type", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),  # a judged test-split product
        pa.field("grade", pa.int8(), nullable=False),  # 0 misfit .. 3 best fit
    ]
)
TOP_GRADE = 3


class EvalDataMissingError(UserInputError):
    """Neither a ground truth nor held-out teacher labels to judge with."""


@dataclass(frozen=True)
class EvalRequest:
    """One (room, query) request and the grade of every judged test product."""

    room_id: str
    room_type: str
    room_path: str
    category: str
    query: str
    grades: dict[str, int] = field(default_factory=dict)
    # judged products whose colour matches the room's, where a ground truth says (else empty)
    colour_matches: frozenset[str] = frozenset()

    @property
    def request_id(self) -> str:
        return f"{self.room_id}|{self.category}"

    @property
    def answerable(self) -> bool:
        """Some product of the asked category fits the room."""
        return any(grade > 0 for grade in self.grades.values())


@dataclass(frozen=True)
class EvalSet:
    """The requests, the test-split products searches may return, and where grades came from."""

    requests: list[EvalRequest]
    test_keys: frozenset[str]
    source: str  # "ground_truth" or "teacher"
    # every judged request before `eval.max_queries` sampled them: what is known of each room
    judged: list[EvalRequest] = field(default_factory=list)

    def table(self) -> pa.Table:
        rows = [
            {
                "request_id": r.request_id,
                "room_id": r.room_id,
                "room_type": r.room_type,
                "category": r.category,
                "query": r.query,
                "key": key,
                "grade": grade,
            }
            for r in self.requests
            for key, grade in sorted(r.grades.items())
        ]
        return pa.Table.from_pylist(rows, schema=EVAL_SET_SCHEMA)


def teacher_grade(score: float, fit_threshold: float) -> int:
    """A teacher score as a grade: under the fit threshold 0, above it 1..3 by how far."""
    if score < fit_threshold:
        return 0
    span = max(1.0 - fit_threshold, 1e-9)
    return 1 + min(TOP_GRADE - 1, round((TOP_GRADE - 1) * (score - fit_threshold) / span))


def build_eval_set(
    data_dir: Path, cfg: EvalConfig, vocabulary: VocabularyConfig, *, seed: int
) -> EvalSet:
    """Requests from the ground truth if `data_dir` has one, else from held-out labels."""
    splits = pq.read_table(data_dir / SPLITS_FILE).to_pylist()
    test = {(row["kind"], row["id"]) for row in splits if row["split"] == "test"}
    catalogue = pq.read_table(data_dir / CATALOGUE_FILE, columns=["key", "category"]).to_pylist()
    category_of = {
        row["key"]: row["category"] for row in catalogue if ("product", row["key"]) in test
    }
    rooms = {
        row["room_id"]: row
        for row in pq.read_table(data_dir / ROOMS_FILE).to_pylist()
        if ("room", row["room_id"]) in test
    }
    truth, labels = data_dir / GROUND_TRUTH_FILE, data_dir / HELDOUT_LABELS_FILE
    colour_matches: frozenset[tuple[str, str]] = frozenset()
    if truth.is_file():
        grades, source = _truth_grades(truth, category_of), "ground_truth"
        colour_matches = _truth_colour_matches(truth)
    elif labels.is_file():
        grades, source = _label_grades(labels, category_of, cfg.fit_threshold), "teacher"
    else:
        raise EvalDataMissingError(
            f"nothing to judge with in {data_dir}: no {GROUND_TRUTH_FILE} (generated world: "
            f"`python -m flows.ingest`) and no {HELDOUT_LABELS_FILE} (teacher labels of the "
            "held-out pairs)"
        )
    requests = [
        EvalRequest(
            room_id=room_id,
            room_type=room["room_type"],
            room_path=room["path"],
            category=category,
            query=category_query(category, vocabulary),
            grades=grades.get((room_id, category), {}),
            colour_matches=frozenset(
                key
                for key in grades.get((room_id, category), {})
                if (room_id, key) in colour_matches
            ),
        )
        for room_id, room in sorted(rooms.items())
        for category in sorted(set(category_of.values()))
        if source == "ground_truth" or (room_id, category) in grades
    ]
    judged = requests
    if cfg.max_queries and len(requests) > cfg.max_queries:
        chosen = sorted(random.Random(seed).sample(range(len(requests)), cfg.max_queries))
        requests = [requests[i] for i in chosen]
    return EvalSet(requests, frozenset(category_of), source, judged)


def _truth_grades(path: Path, category_of: dict[str, str]) -> dict[tuple[str, str], dict[str, int]]:
    grades: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for row in pq.read_table(path, columns=["room_id", "key", "grade"]).to_pylist():
        if row["key"] in category_of:
            grades[(row["room_id"], category_of[row["key"]])][row["key"]] = int(row["grade"])
    return grades


def _truth_colour_matches(path: Path) -> frozenset[tuple[str, str]]:
    """(room, product) pairs whose colour the truth says matches the room's."""
    rows = pq.read_table(path, columns=["room_id", "key", "color_match"]).to_pylist()
    return frozenset((row["room_id"], row["key"]) for row in rows if row["color_match"])


def _label_grades(
    path: Path, category_of: dict[str, str], fit_threshold: float
) -> dict[tuple[str, str], dict[str, int]]:
    grades: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    columns = ["room_id", "key", "score", "status"]
    for row in pq.read_table(path, columns=columns).to_pylist():
        if row["status"] == "ok" and row["key"] in category_of:
            grade = teacher_grade(row["score"], fit_threshold)
            grades[(row["room_id"], category_of[row["key"]])][row["key"]] = grade
    return grades
