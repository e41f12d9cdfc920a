"""Beyond the query through the service: `alternatives` in the JSON API and a "Try instead" row
on the page (headless Chromium, with a search link per category), and a room with no query
(an empty query) grouped by category. The agent is the trained tiny student of
tests/support/trained_student.py, asked about a room it never saw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from live_service import running_service
from support.cdp import find_chromium, headless_page
from support.trained_student import student_overrides, unseen

from mars_core.app.compose import load_config

pytestmark = pytest.mark.slow
SEARCH_TIMEOUT_S = 300.0
CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def pool_room(indexed) -> Path:
    rows = unseen(pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist())
    return Path(next(r["path"] for r in rows if r["room_type"] == "pool"))


@pytest.fixture(scope="module")
def trained_service(indexed) -> Iterator[str]:
    with running_service(load_config(student_overrides(indexed.overrides))) as url:
        yield url


def post(url: str, photo: Path, query: str | None) -> dict:
    data = {} if query is None else {"query": query}
    files = {"room": ("room.png", photo.read_bytes(), "image/png")}
    answer = httpx.post(f"{url}/search", data=data, files=files, timeout=SEARCH_TIMEOUT_S)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_api_offers_alternatives_when_nothing_fits(trained_service, pool_room, cfg):
    body = post(trained_service, pool_room, "bed")
    assert body["nothing_fits"] and not body["room_only"]
    offered = body["alternatives"]
    assert 1 <= len(offered) <= cfg.funnel.alternatives
    budget = cfg.funnel.beyond_budget
    assert body["asked"].startswith(f"what fits instead: {budget} candidates of ")
    assert body["asked"].endswith(f"(budget {budget}), {len(offered)} offered")
    for alternative in offered:
        assert alternative["category"] != "BED" and alternative["query"]
        assert alternative["scores"]["agent"] >= cfg.funnel.min_fit_score
        assert alternative["rationale"] and alternative["image_url"].startswith("/products/")
        assert httpx.get(trained_service + alternative["image_url"]).status_code == 200


@pytest.mark.parametrize("query", [None, "", "   "])
def test_the_api_searches_a_room_with_no_query(trained_service, pool_room, cfg, query):
    body = post(trained_service, pool_room, query)
    assert body["room_only"] and body["category"] is None and body["alternatives"] == []
    assert body["stages_run"] == ["siglip", "agent"] == list(body["timings_ms"])
    assert body["asked"].startswith("the agent judged the room on ")
    categories = [p["category"] for p in body["products"]]
    assert len(set(categories)) >= 2
    grouped = list(dict.fromkeys(categories))  # each category's products together
    assert categories == sorted(categories, key=grouped.index)
    assert all(categories.count(c) <= cfg.funnel.per_category for c in grouped)
    assert all(p["scores"]["agent"] >= 0.5 for p in body["products"])
    firsts = [next(p for p in body["products"] if p["category"] == c) for c in grouped]
    assert all(p["rationale"] for p in firsts)  # each category's best says why it fits


SHOWN = """JSON.stringify({
  alternatives: [...document.querySelectorAll('#alternatives figure')].map(f => ({
    category: f.dataset.category,
    loaded: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0,
    link: f.querySelector('a.search-link').textContent})),
  groups: [...document.querySelectorAll('#products h3.category')].map(h => h.textContent),
  products: document.querySelectorAll('#products li.product').length,
  searched: [...document.querySelectorAll('#results p')].map(p => p.textContent)
    .find(t => t.startsWith('Searched') || t.startsWith('No query')),
  asked: document.querySelector('#results p.asked')?.textContent,
  status: document.getElementById('status').textContent})"""
DONE = "document.getElementById('status').textContent.endsWith('products.')"


def run_search(page, query: str) -> dict:
    page.evaluate("document.getElementById('status').textContent = ''")
    page.evaluate(f"document.getElementById('query').value = {json.dumps(query)}")
    page.evaluate("document.getElementById('go').click()")
    page.wait_for(DONE, SEARCH_TIMEOUT_S)
    page.wait_for("[...document.images].every(i => i.complete)", SEARCH_TIMEOUT_S)
    return json.loads(page.evaluate(SHOWN))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium")
def test_the_page_shows_try_instead_and_a_room_with_no_query(trained_service, pool_room, tmp_path):
    with headless_page(CHROMIUM, tmp_path / "chromium", f"{trained_service}/") as page:
        page.set_files("#photo", [pool_room])
        page.wait_for("document.getElementById('preview').style.display === 'block'", 30)
        shown = run_search(page, "bed")
        assert shown["alternatives"] and all(a["loaded"] for a in shown["alternatives"])
        assert all(a["link"].startswith("search “") for a in shown["alternatives"])
        assert shown["asked"].startswith("what fits instead: ")

        page.evaluate("document.querySelector('#alternatives a.search-link').click()")
        page.wait_for(DONE + " && document.getElementById('query').value !== 'bed'", 120)
        followed = json.loads(page.evaluate(SHOWN))
        query = page.evaluate("document.getElementById('query').value")
        assert followed["products"] > 0 and f"for “{query}”" in followed["searched"], followed

        room_only = run_search(page, "")
        assert len(room_only["groups"]) >= 2 and room_only["products"] >= 2
        assert room_only["searched"].startswith("No query")
        assert room_only["asked"].startswith("the agent judged the room on ")
        page.screenshot(tmp_path / "what-fits.png")
        assert page.errors == []
