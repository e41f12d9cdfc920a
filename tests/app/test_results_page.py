"""The HTML page of search results."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.results import sample_result

from mars_core.app.results_page import render_report
from mars_core.search.batch import FailedRequest
from mars_core.search.funnel import NOTHING_FITS, SearchResult


@pytest.fixture
def result(tmp_path) -> SearchResult:
    return sample_result(tmp_path)


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
