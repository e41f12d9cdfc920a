"""Stage 2's vectors, aligned with the Lucene build: row i of `vectors.npy` is document i.

The re-index writes the matrix into the new Lucene build folder before that folder is renamed
into place, so the manifest that names the build names its vectors too: the alignment is
published atomically with it. Stage 1 hands each candidate its document number, and a re-rank
of a few hundred candidates is a gather from the memory-mapped matrix and one matrix-vector
product, whatever the catalogue size. LanceDB stays the store the re-index writes to (resumable
upserts, the ANN index); the matrix is a read-only copy of one of its versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from mars_core.index.lucene import read_products

VECTORS_FILE = "vectors.npy"


def write_aligned_vectors(
    batches: Iterable[tuple[list[str], np.ndarray]], keys: list[str], path: Path, dim: int
) -> None:
    """Write `(keys, vectors)` batches as an (n, dim) float32 matrix whose row i is `keys[i]`.

    Streams into a memory-mapped file (a million 1152-d vectors do not need to fit in memory).
    Keys the build does not hold are passed over; a build key that no batch has is an error,
    since stage 2 would otherwise score a row of zeros.
    """
    position = {key: i for i, key in enumerate(keys)}
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(keys), dim))
    filled = np.zeros(len(keys), dtype=bool)
    for batch_keys, vectors in batches:
        rows = np.array([position.get(key, -1) for key in batch_keys], dtype=np.int64)
        inside = rows >= 0
        matrix[rows[inside]] = vectors[inside]
        filled[rows[inside]] = True
    matrix.flush()
    del matrix
    if not filled.all():
        missing = [keys[i] for i in np.flatnonzero(~filled)[:3]]
        raise ValueError(
            f"{int((~filled).sum())} products of the build have no vector (e.g. {missing}): "
            "the vector table and the catalogue disagree; run the re-index again"
        )


class AlignedVectors:
    """The vectors of one Lucene build, gathered by document number."""

    def __init__(self, build: Path, file: str) -> None:
        self.path = build / file
        self.matrix = np.load(self.path, mmap_mode="r")
        self.keys = read_products(build)["key"]
        if len(self.keys) != self.matrix.shape[0]:
            raise ValueError(
                f"{self.path} holds {self.matrix.shape[0]} vectors for {len(self.keys)} "
                "products: the build is damaged; run the re-index again"
            )

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @cached_property
    def _row_of_key(self) -> dict[str, int]:
        """key -> row, built only when some candidate comes without its document number."""
        return {key: i for i, key in enumerate(self.keys.to_pylist())}

    def rows(self, keys: Sequence[str], hints: Sequence[int | None]) -> list[int | None]:
        """The row of each key: its hint (stage 1's document number) when that row holds the
        key, else a lookup by key; None for a key the build does not hold."""
        checked = [
            hint if hint is not None and 0 <= hint < len(self.keys) else None for hint in hints
        ]
        known = [i for i, hint in enumerate(checked) if hint is not None]
        stored = self.keys.take(pa.array([checked[i] for i in known], type=pa.int64()))
        for i, key in zip(known, stored.to_pylist(), strict=True):
            if key != keys[i]:
                checked[i] = None
        return [
            row if row is not None else self._row_of_key.get(key)
            for key, row in zip(keys, checked, strict=True)
        ]

    def gather(self, rows: Sequence[int]) -> np.ndarray:
        """The (len(rows), dim) vectors of `rows`, in that order."""
        return self.matrix[np.asarray(rows, dtype=np.int64)]
