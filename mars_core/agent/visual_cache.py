"""Cached product visual tokens: the vision tower's output per catalogue image, stored.

The student's vision tower is frozen in SFT (only the language model gets LoRA / full
updates), so the merger's output for a catalogue image is the same for every query and every
adapter of one base model. The index build computes it once per image
(`visual_cache_build.py`); the agent feeds it to the language model (`mm_encoder_outputs`)
instead of re-running the tower for every candidate of every query.

Entries are keyed by `vision.image_digest` (a hash of the bounded pixels the processor sees)
and live in one parquet file per `vision.vision_fingerprint`: the vision config, the
processor's image settings, the product pixel bound and the tower's weights. A different
student (or bound) has another fingerprint, so it never reads tokens that are not its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mars_core.infra.io import atomic_write_parquet

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
