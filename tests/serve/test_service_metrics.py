"""`/metrics` parses with Prometheus' own text parser, and moves by one per request."""

from __future__ import annotations

import httpx
from live_service import scrape

SEARCH_200 = ("mars_requests_total", (("route", "/search"), ("status", "200")))
IMAGE_404 = ("mars_requests_total", (("route", "/products/{key}/image"), ("status", "404")))
SEARCH_TIME = ("mars_request_duration_seconds_count", (("route", "/search"),))


def stage_count(stage: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("mars_stage_duration_seconds_count", (("stage", stage),))


def test_metrics_parse_and_move_by_one_per_request(live_service, room_photo, cfg):
    before = scrape(live_service)
    files = {"room": ("room.png", room_photo, "image/png")}
    search = httpx.post(f"{live_service}/search", data={"query": "bed"}, files=files, timeout=300)
    assert search.status_code == 200, search.text
    assert httpx.get(f"{live_service}/products/no-such-key/image").status_code == 404
    after = scrape(live_service)

    def moved(key: tuple) -> float:
        return after[key] - before.get(key, 0.0)

    assert moved(SEARCH_200) == 1 and moved(IMAGE_404) == 1 and moved(SEARCH_TIME) == 1
    assert all(moved(stage_count(stage)) == 1 for stage in cfg.funnel.stages)
    assert after[("mars_searches_in_flight", ())] == 0

    health = httpx.get(f"{live_service}/health").json()
    version = health["student"]["version"]
    (serving,) = [labels for name, labels in after if name == "mars_serving_info"]
    assert dict(serving) == {
        "index_build": health["index_build"],
        "products": str(health["products"]),
        "student": health["student"]["name"],
        "student_version": "" if version is None else str(version),
    }
    for counter in ("mars_reindexes_total", "mars_promotions_total"):
        assert after[(counter, ())] == 0
    assert after[("process_resident_memory_bytes", ())] > 0
