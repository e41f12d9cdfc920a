"""What the agent tests score: a room photo and products whose images differ in size (so
different vision grids) and whose texts differ in length (so batches need padding)."""

from __future__ import annotations

from PIL import Image

from mars_core.agent.types import ProductView

ROOM = Image.new("RGB", (150, 100), (40, 90, 200))


def product_views(n: int, width_step: int = 14) -> list[ProductView]:
    """`n` products; image `i` is `56 + width_step * i` pixels wide."""
    return [
        ProductView(
            image=Image.new("RGB", (56 + width_step * i, 56 + 28 * (i % 2)), (200, 30 * i, 40)),
            text=f"Product {i} (category: BED)" + "; style: modern" * (i % 3),
        )
        for i in range(n)
    ]
