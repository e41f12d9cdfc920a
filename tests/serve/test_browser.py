"""The web page in a real browser: headless Chromium against the service on 127.0.0.1.

It uploads a room photo through the page's file input (as a user choosing a file), searches,
waits for the results, saves a screenshot under the test's tmp dir (its path is printed and
recorded as the test's `screenshot` property) and checks what rendered: product cards with
loaded pictures and every stage's score, and the time each stage took. Then it picks one of
the page's sample rooms and searches again. `.ci/run` installs Debian's `chromium`; under CI
(`CI` set) a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.cdp import Page, find_chromium, headless_page

SEARCH_TIMEOUT_S = 300.0
STAGES = ["bm25", "siglip", "agent"]

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="no chromium here: `apt-get install chromium` (.ci/run does)",
    ),
]

# What the page shows, read back as JSON: the cards, their pictures and scores, the timings.
RENDERED = """JSON.stringify({
  status: document.getElementById("status").textContent,
  error: document.querySelector("#results .error")?.textContent ?? null,
  searched: document.querySelector("#results p:not(.notice)")?.textContent ?? "",
  products: [...document.querySelectorAll("#products li.product")].map((card) => ({
    name: card.querySelector("strong").textContent,
    image: {
      src: card.querySelector("img").getAttribute("src"),
      width: card.querySelector("img").naturalWidth,
    },
    scores: Object.fromEntries([...card.querySelectorAll(".scores span")].map(
      (span) => [span.dataset.stage, Number(span.textContent.split(" ").pop())])),
  })),
  timings: Object.fromEntries([...document.querySelectorAll("#timings tr")].map(
    (row) => [row.dataset.stage, row.querySelector("td").textContent])),
})"""
DONE = (
    "!document.getElementById('go').disabled"
    " && /products\\.$/.test(document.getElementById('status').textContent)"
)
IMAGES_LOADED = (
    "[...document.querySelectorAll('#products img')].every((img) => img.complete)"
    " && document.querySelectorAll('#products img').length > 0"
)


def search(page: Page, query: str) -> dict:
    """Type the query, press Search, wait for the cards and their pictures; what rendered."""
    page.evaluate("document.getElementById('status').textContent = ''")
    page.evaluate(f"document.getElementById('query').value = {json.dumps(query)}")
    page.evaluate("document.getElementById('go').click()")
    page.wait_for(f"{DONE} || document.querySelector('#results .error') !== null", SEARCH_TIMEOUT_S)
    page.wait_for(IMAGES_LOADED, SEARCH_TIMEOUT_S)
    return json.loads(page.evaluate(RENDERED))


def check_rendered(shown: dict, query: str, k: int) -> None:
    assert shown["error"] is None, shown["error"]
    assert shown["status"] == f"{k} products."
    assert f"“{query}”" in shown["searched"]
    assert len(shown["products"]) == k
    for rank, product in enumerate(shown["products"], start=1):
        assert product["name"].startswith(f"{rank}. ")
        assert product["image"]["src"].startswith("/products/") and product["image"]["width"] > 0
        assert list(product["scores"]) == STAGES
        assert all(isinstance(value, float | int) for value in product["scores"].values())
        assert 0.0 <= product["scores"]["agent"] <= 1.0
    assert list(shown["timings"]) == STAGES
    assert all(text.endswith(" ms") for text in shown["timings"].values())


def test_the_page_searches_an_uploaded_room_and_a_sample_room(
    live_service, indexed, cfg, tmp_path, record_property
):
    rooms = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    pool = Path(next(row["path"] for row in rooms if row["room_type"] == "pool"))
    with headless_page(CHROMIUM, tmp_path / "chromium", f"{live_service}/") as page:
        page.wait_for("document.querySelectorAll('#sample option').length > 1", 60)
        page.set_files("#photo", [pool])
        page.wait_for("document.getElementById('preview').style.display === 'block'", 30)

        shown = search(page, "bed")
        screenshot = page.screenshot(tmp_path / "mars-search.png")
        record_property("screenshot", str(screenshot))
        print(f"screenshot: {screenshot}")
        check_rendered(shown, "bed", cfg.funnel.k3)
        assert screenshot.stat().st_size > 10_000

        uploaded = page.evaluate("document.getElementById('preview').src")
        page.evaluate(
            "(() => { const s = document.getElementById('sample');"
            " s.selectedIndex = 1; s.dispatchEvent(new Event('change')); })()"
        )
        page.wait_for(f"document.getElementById('preview').src !== {json.dumps(uploaded)}", 30)
        assert page.evaluate("document.getElementById('photo').files.length") == 0
        check_rendered(search(page, "a lamp"), "a lamp", cfg.funnel.k3)
        assert page.errors == []
