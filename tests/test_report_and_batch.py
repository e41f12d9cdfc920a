"""The HTML report and the batch request/results files."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from mars_core.app.results_page import render_report
from mars_core.infra.io import atomic_write_parquet
from mars_core.infra.skipped import Skipped
from mars_core.search.batch import FailedRequest, RequestsFileError, read_requests, results_table
from mars_core.search.funnel import NOTHING_FITS, SearchResult
from mars_core.search.types import Candidate, CategoryLock, SearchRequest


@pytest.fixture
def result(tmp_path) -> SearchResult:
    products = []
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        path = tmp_path / f"p{i}.png"
        Image.new("RGB", (32, 32), colour).save(path)
        products.append(
            Candidate(
                key=f"B0{i}@amazon.com",
                product={"name": f"Bed <{i}>", "category": "BED", "image_path": str(path)},
                scores={"bm25": 3.5 - i, "siglip": 0.8, "agent": 0.3},
                rationale="indoor furniture in an outdoor setting" if i == 0 else None,
            )
        )
    request = SearchRequest(
        room=Image.new("RGB", (64, 48), (0, 90, 200)), query="bed", room_id="pool_01"
    )
    return SearchResult(
        request=request,
        results=products,
        stages_run=["bm25", "siglip", "agent"],
        timings={"bm25": 0.002, "siglip": 0.01, "agent": 0.2},
        lock=CategoryLock("BED"),
        skipped=[Skipped("B0GONE@amazon.com", "BadImageError", "no file at gone.jpg")],
        nothing_fits=True,
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_shows_room_products_scores_rationales_and_failures(result):
    page = render_report(
        [result],
        notice="The agent is untrained: its scores are noise.",
        failed=[FailedRequest(room="x.txt", query="lamp", reason="not an image")],
        max_pixels=10**6,
    )
    parsed = _Collector()
    parsed.feed(page)
    text = " ".join(parsed.text)
    assert len(parsed.images) == 3 and all(
        s.startswith("data:image/jpeg;base64,") for s in parsed.images
    )
    assert "Bed <0>" in text  # escaped in HTML, intact as text
    assert "indoor furniture in an outdoor setting" in text
    assert NOTHING_FITS in text and "untrained" in text and "not an image" in text
    assert "BED" in text and "0.300" in text and "2.500" in text
    assert "left out B0GONE@amazon.com: no file at gone.jpg" in text


def test_results_table_has_a_row_per_ranked_product(result, tmp_path):
    table = results_table([(0, result)])
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


def test_a_bad_or_oversized_product_image_leaves_a_blank_thumbnail(result, tmp_path):
    """An unreadable file, or one over the pixel limit (a bomb), must not break the page."""
    Path(result.results[0].product["image_path"]).write_bytes(b"not an image")
    page = render_report([result], max_pixels=32 * 32)
    parsed = _Collector()
    parsed.feed(page)
    room, broken, fine = parsed.images
    assert room.startswith("data:image/jpeg") and fine.startswith("data:image/jpeg")
    assert broken == ""
    assert render_report([result], max_pixels=100).count('src=""') == 2
