"""The batch request files and the results table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.results import sample_result

from mars_core.funnel.stages import known_stages
from mars_core.infra.io import atomic_write_parquet
from mars_core.search.batch import RequestsFileError, read_requests, results_table
from mars_core.search.funnel import SearchResult


@pytest.fixture
def result(tmp_path) -> SearchResult:
    return sample_result(tmp_path)


def test_results_table_has_a_row_per_ranked_product(result, tmp_path):
    table = results_table([(0, result)], known_stages())
    path = atomic_write_parquet(tmp_path / "results.parquet", table)
    rows = pq.read_table(path).to_pylist()
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["agent"] == pytest.approx(0.3) and rows[0]["nothing_fits"] is True
    assert rows[1]["rationale"] is None and rows[0]["seconds_agent"] == pytest.approx(0.2)
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


def test_requests_from_csv_and_jsonl_resolve_rooms_beside_the_file(tmp_path):
    (tmp_path / "r.csv").write_text("room,query\nrooms/a.png,bed\n/abs/b.png,lamp\n")
    (tmp_path / "r.jsonl").write_text(
        json.dumps({"room": "a.png", "query": "rug", "room_id": "A"}) + "\n\n"
    )
    csv_file = read_requests(tmp_path / "r.csv", roots=["/abs"])
    folder = tmp_path.resolve()
    assert [s.room for s in csv_file.specs] == [folder / "rooms/a.png", Path("/abs/b.png")]
    assert csv_file.specs[0].room_id == "a" and csv_file.bad_lines == []
    (spec,) = read_requests(tmp_path / "r.jsonl").specs
    assert (spec.query, spec.room_id) == ("rug", "A")


def test_bad_lines_are_named_and_the_good_ones_kept(tmp_path):
    lines = [
        '{"room": "a.png", "query": "bed"}',
        "{not json}",
        '["a.png", "bed"]',
        '{"query": "bed"}',
    ]
    (tmp_path / "r.jsonl").write_text("\n".join(lines))
    parsed = read_requests(tmp_path / "r.jsonl")
    assert [s.line for s in parsed.specs] == [1]  # requests are numbered from 1, as in the file
    reasons = dict(parsed.bad_lines)
    assert reasons[2].startswith("not JSON") and "not a JSON object" in reasons[3]
    assert reasons[4] == "lacks room"


def test_a_row_without_a_query_asks_what_fits_the_room(tmp_path):
    (tmp_path / "r.csv").write_text("room,query\na.png,\nb.png,lamp\n")
    (tmp_path / "r.jsonl").write_text('{"room": "a.png"}\n')
    parsed = read_requests(tmp_path / "r.csv")
    assert parsed.bad_lines == [] and [s.query for s in parsed.specs] == ["", "lamp"]
    assert [s.query for s in read_requests(tmp_path / "r.jsonl").specs] == [""]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("r.txt", b"", "must be a .csv or .jsonl"),
        ("r.csv", b"room,query\n\xff\xfe,bed\n", "not UTF-8"),
        ("missing.jsonl", None, "no such requests file"),
    ],
)
def test_unusable_requests_files_are_named(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(RequestsFileError, match=message):
        read_requests(tmp_path / name)
