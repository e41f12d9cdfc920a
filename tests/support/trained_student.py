"""The trained tiny student of tests/fixtures (a make demo champion, copied there by
`python -m bench.trained_student_fixture`), for tests of what the funnel does with a student
that learned what fits a room: one cannot be trained within the suite's budget (23 minutes on
2 cores). It is asked only about the rooms it never saw: the tests' world draws its rooms from
the generator that made the student's, so the rest of them were its training rooms.
"""

from __future__ import annotations

import json

from bench.trained_student_fixture import FOLDER, MANIFEST

SERVED = json.loads(MANIFEST.read_text())


def student_overrides(overrides: list[str]) -> list[str]:
    """`overrides` with the trained student, served as its registry version was (its ordering
    and fit bar, chosen on validation rooms)."""
    served = [f"{key}={value}" for key, value in SERVED["served_with"].items()]
    return [*overrides, f"student.adapter={FOLDER}", *served]


def unseen(rooms: list[dict]) -> list[dict]:
    """The rooms (rows of rooms.parquet) the student was never trained on."""
    held_out = set(SERVED["held_out_rooms"])
    return [room for room in rooms if room["room_id"] in held_out]
