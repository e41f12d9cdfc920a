"""A requests file's room paths stay inside its folder (or `funnel.request_roots`), and a
row with a wrong-typed field is a bad row, never a crash of the whole batch."""

from __future__ import annotations

import json

import pytest

from mars_core.search.batch import read_requests


def _jsonl(folder, rows) -> list:
    path = folder / "requests.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def layout(tmp_path):
    """requests/ (the file's folder, with a room), secret/ (a real file outside) and photos/
    (a folder a configured root lets in)."""
    for folder in ("requests", "secret", "photos"):
        (tmp_path / folder).mkdir()
    (tmp_path / "requests" / "room.png").write_bytes(b"x")
    (tmp_path / "secret" / "key.png").write_bytes(b"x")
    (tmp_path / "photos" / "room.png").write_bytes(b"x")
    (tmp_path / "requests" / "link.png").symlink_to(tmp_path / "secret" / "key.png")
    return tmp_path


def test_paths_leading_out_are_refused_alike_whether_a_file_is_there_or_not(layout):
    outside = [
        "../secret/key.png",  # exists
        "../secret/none.png",  # does not
        str(layout / "secret" / "key.png"),
        str(layout / "secret" / "none.png"),
        "/etc/passwd",
        "link.png",  # a symlink inside pointing out
    ]
    path = _jsonl(
        layout / "requests",
        [{"room": "room.png", "query": "bed"}]
        + [{"room": room, "query": "bed"} for room in outside],
    )
    parsed = read_requests(path)
    assert [s.room.name for s in parsed.specs] == ["room.png"]
    reasons = dict(parsed.bad_lines)
    assert sorted(reasons) == list(range(2, 2 + len(outside)))
    for line, room in enumerate(outside, start=2):
        assert reasons[line] == reasons[2].replace(repr(outside[0]), repr(room))
        assert "outside the requests file's folder" in reasons[line]
        assert "exist" not in reasons[line] and "not found" not in reasons[line]


def test_a_configured_root_lets_rooms_there_in(layout):
    path = _jsonl(
        layout / "requests",
        [
            {"room": "../photos/room.png", "query": "bed"},
            {"room": str(layout / "photos" / "room.png"), "query": "lamp"},
            {"room": "../secret/key.png", "query": "rug"},
        ],
    )
    parsed = read_requests(path, roots=[layout / "photos", ""])
    assert [s.line for s in parsed.specs] == [1, 2]
    assert [line for line, _ in parsed.bad_lines] == [3]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"room": 123, "query": "bed"}, "room is int, not text"),
        ({"room": ["a.png"], "query": "bed"}, "room is list, not text"),
        ({"room": {"p": "a.png"}, "query": "bed"}, "room is dict, not text"),
        ({"room": "a.png", "query": 7}, "query is int, not text"),
        ({"room": "a.png", "query": "bed", "room_id": ["x"]}, "room_id is list, not text"),
        ({"room": "a.png", "query": True}, "query is bool, not text"),
        ({"room": "a\u0000.png", "query": "bed"}, "room holds a NUL character"),
    ],
)
def test_a_wrong_typed_field_is_a_bad_row_and_the_others_stay(tmp_path, row, reason):
    path = _jsonl(tmp_path, [row, {"room": "a.png", "query": "bed"}])
    parsed = read_requests(path)
    assert parsed.bad_lines == [(1, reason)]
    assert [s.line for s in parsed.specs] == [2]
