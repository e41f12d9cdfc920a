"""A ranked search result with two products, their pictures, a lock, a left-out product and
the agent's "nothing fits": what the results page and the results table are checked on."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from mars_core.infra.skipped import Skipped
from mars_core.search.funnel import SearchResult
from mars_core.search.types import Candidate, CategoryLock, SearchRequest


def sample_result(folder: Path) -> SearchResult:
    """The result, its product pictures written into `folder`."""
    products = []
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        path = folder / f"p{i}.png"
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
