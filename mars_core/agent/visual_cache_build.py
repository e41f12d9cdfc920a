"""The index build's visual-token step: every catalogue image's visual tokens for the student,
computed once in batches and stored (`visual_cache.py`) for the agent to read at query time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from mars_core.agent.vision import image_digest
from mars_core.agent.visual_cache import VisualCache
from mars_core.config import StudentConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.skipped import Skipped
from mars_core.vision.images import load_image

if TYPE_CHECKING:
    from mars_core.agent.scorer import AgentScorer


@dataclass(frozen=True)
class VisualCacheReport:
    """What an index build's visual-token step did."""

    path: str
    fingerprint: str
    images: int  # catalogue images seen (after de-duplication by content)
    computed: int  # new entries this run
    entries: int  # entries in the file now
    bytes_per_product: float
    skipped: list[Skipped]  # images that could not be loaded


def build_visual_cache(
    scorer: AgentScorer,
    images: Iterable[tuple[str, Image.Image | Exception]],
    folder: Path | str,
    *,
    total: int | None = None,
) -> VisualCacheReport:
    """Compute the missing products' visual tokens in batches of `scorer.batch_size` and save.

    `images` yields (product key, loaded image or the error that stopped loading it), read
    one batch at a time; a bad image is reported, not fatal. Entries already in the file are
    kept and not recomputed.
    """
    cache = VisualCache.load(folder, scorer.vision_fingerprint)
    pending: dict[str, Image.Image] = {}
    skipped: list[Skipped] = []
    seen: set[str] = set()
    computed = 0

    def flush() -> None:
        features = scorer.encode_images(list(pending.values()))
        for digest, tensor in zip(pending, features, strict=True):
            cache.features[digest] = tensor.detach().cpu()
        pending.clear()

    for key, image in tqdm(images, total=total, desc="product visual tokens", unit="image"):
        if isinstance(image, Exception):
            skipped.append(Skipped.because(key, image))
            continue
        bounded = scorer.bound_product_image(image)
        digest = image_digest(bounded)
        seen.add(digest)
        if cache.get(digest) is None and digest not in pending:
            pending[digest] = bounded
            computed += 1
        if len(pending) >= scorer.batch_size:
            flush()
    if pending:
        flush()
    path = cache.save(folder)
    return VisualCacheReport(
        path=str(path),
        fingerprint=cache.fingerprint,
        images=len(seen),
        computed=computed,
        entries=len(cache),
        bytes_per_product=cache.bytes_per_product(),
        skipped=skipped,
    )


def cache_catalogue_tokens(
    catalogue: Path, student: StudentConfig, folder: Path, models_dir: Path, max_image_pixels: int
) -> VisualCacheReport:
    """The index build's step: every catalogue image's visual tokens for `student` (the
    model loads here, so importing the index tasks does not load the agent)."""
    from mars_core.agent.scorer import AgentScorer

    rows = pq.read_table(catalogue, columns=["key", "image_path"]).to_pylist()
    scorer = AgentScorer.from_config(student, models_dir)
    images = ((row["key"], _load(row["image_path"], max_image_pixels)) for row in rows)
    return build_visual_cache(scorer, images, folder, total=len(rows))


def _load(path: str, max_pixels: int) -> Image.Image | Exception:
    try:
        return load_image(path, max_pixels)
    except UserInputError as error:
        return error
