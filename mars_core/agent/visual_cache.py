"""Cached product visual tokens: the vision tower's output per catalogue image, computed once.

The student's vision tower is frozen in SFT (only the language model gets LoRA / full
updates), so the merger's output for a catalogue image is the same for every query and every
adapter of one base model. The index build computes it once per image (batched, progress
bar); the agent feeds it to the language model (`mm_encoder_outputs`) instead of re-running
the tower for every candidate of every query.

Entries are keyed by `image_digest` (a hash of the bounded pixels the processor sees) and
live in one parquet file per `vision_fingerprint`: the vision config, the processor's image
settings, the product pixel bound and the tower's weights. A different student (or bound)
has another fingerprint, so it never reads tokens that are not its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from tqdm import tqdm

from mars_core.config import StudentConfig
from mars_core.errors import UserInputError
from mars_core.images import load_image
from mars_core.io import atomic_write_parquet

if TYPE_CHECKING:
    from mars_core.agent.scorer import AgentScorer

VISUAL_TOKENS_DIR = "visual_tokens"
VISUAL_TOKENS_SCHEMA = pa.schema(
    [
        ("image_sha256", pa.string()),
        ("tokens", pa.int32()),
        ("hidden", pa.int32()),
        ("dtype", pa.string()),
        ("features", pa.binary()),
    ]
)


def image_digest(image: Image.Image) -> str:
    """SHA-256 of an image's mode, size and pixels (what the processor is given)."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def vision_fingerprint(vision: torch.nn.Module, vision_config: Any, image_settings: dict) -> str:
    """Hash of what decides a product's visual tokens: the tower's config and weights and the
    processor's image settings (patching, normalisation, pixel bounds)."""
    digest = hashlib.sha256(vision_config.to_json_string(use_diff=False).encode())
    digest.update(json.dumps(image_settings, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vision.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_file(folder: Path | str, fingerprint: str) -> Path:
    return Path(folder) / f"{fingerprint}.parquet"


@dataclass
class VisualCache:
    """In-memory product visual tokens of one student's vision tower."""

    fingerprint: str
    features: dict[str, torch.Tensor]

    def get(self, digest: str) -> torch.Tensor | None:
        return self.features.get(digest)

    def __len__(self) -> int:
        return len(self.features)

    def bytes_per_product(self) -> float:
        """Mean stored bytes of one product's tokens (the storage cost the bench reports)."""
        sizes = [t.numel() * t.element_size() for t in self.features.values()]
        return sum(sizes) / len(sizes) if sizes else 0.0

    @classmethod
    def load(cls, folder: Path | str, fingerprint: str) -> VisualCache:
        """The cache of `fingerprint` in `folder` (empty when none was built yet)."""
        path = cache_file(folder, fingerprint)
        if not path.is_file():
            return cls(fingerprint, {})
        return cls(fingerprint, dict(_rows_to_features(pq.read_table(path).to_pylist())))

    def save(self, folder: Path | str) -> Path:
        """Write every entry atomically to `folder/<fingerprint>.parquet`."""
        rows = [_feature_row(digest, t) for digest, t in sorted(self.features.items())]
        table = pa.Table.from_pylist(rows, schema=VISUAL_TOKENS_SCHEMA)
        return atomic_write_parquet(cache_file(folder, self.fingerprint), table)


@dataclass(frozen=True)
class VisualCacheReport:
    """What an index build's visual-token step did."""

    path: str
    fingerprint: str
    images: int  # catalogue images seen (after de-duplication by content)
    computed: int  # new entries this run
    entries: int  # entries in the file now
    bytes_per_product: float
    skipped: list[dict[str, str]]  # {"key", "reason"} for images that could not be loaded


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
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    computed = 0

    def flush() -> None:
        features = scorer.encode_images(list(pending.values()))
        for digest, tensor in zip(pending, features, strict=True):
            cache.features[digest] = tensor.detach().cpu()
        pending.clear()

    for key, image in tqdm(images, total=total, desc="product visual tokens", unit="image"):
        if isinstance(image, Exception):
            skipped.append({"key": key, "reason": f"{type(image).__name__}: {image}"})
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
    """The index build's step: every catalogue image's visual tokens for `student`."""
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


def _feature_row(digest: str, tensor: torch.Tensor) -> dict[str, Any]:
    tokens, hidden = tensor.shape
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    dtype = str(tensor.dtype).removeprefix("torch.")
    return {
        "image_sha256": digest,
        "tokens": tokens,
        "hidden": hidden,
        "dtype": dtype,
        "features": raw,
    }


def _rows_to_features(rows: list[dict[str, Any]]) -> Iterator[tuple[str, torch.Tensor]]:
    for row in rows:
        raw = torch.frombuffer(bytearray(row["features"]), dtype=torch.uint8)
        tensor = raw.view(getattr(torch, row["dtype"])).reshape(row["tokens"], row["hidden"])
        yield row["image_sha256"], tensor
