"""The trained tiny students of tests/fixtures (make demo's champion, or a `bench.learning`
student, copied there by `python -m bench.trained_student_fixture`), for tests of what the
funnel does with a student that learned what fits a room: one cannot be trained within the
suite's budget (23 minutes on 2 cores). Each is asked only about the rooms it never saw: the
tests' world draws its rooms from the generator that made the student's, so the rest of them
were its training rooms.

* `trained_student`: the default generated world's;
* `trained_student_shared_types`: the world whose outdoor furniture exists only inside
  shared types (`data=shared_types`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.trained_student_fixture import DEFAULT_FIXTURE, fixture_paths

SHARED_TYPES_FIXTURE = "trained_student_shared_types"


@dataclass(frozen=True)
class TrainedStudent:
    """A fixture student: its model folder and its manifest (source, prompt version, the
    ordering and fit bar it was registered with, its world's held-out rooms)."""

    folder: Path
    served: dict

    @classmethod
    def load(cls, name: str) -> TrainedStudent:
        folder, manifest = fixture_paths(name)
        return cls(folder, json.loads(manifest.read_text()))

    def overrides(self, overrides: list[str]) -> list[str]:
        """`overrides` with this student, served as its registry version was (its ordering
        and fit bar, chosen on validation rooms)."""
        served = [f"{key}={value}" for key, value in self.served["served_with"].items()]
        return [*overrides, f"student.adapter={self.folder}", *served]

    def unseen(self, rooms: list[dict]) -> list[dict]:
        """The rooms (rows of rooms.parquet) the student was never trained on."""
        held_out = set(self.served["held_out_rooms"])
        return [room for room in rooms if room["room_id"] in held_out]


DEFAULT = TrainedStudent.load(DEFAULT_FIXTURE)
SERVED = DEFAULT.served
student_overrides = DEFAULT.overrides
unseen = DEFAULT.unseen
