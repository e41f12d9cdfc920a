"""Embedding in shards: the one way products' images become vectors, for the re-index and for
the check and repair of stored vectors alike.

A shard is a unit of work (one task run on a mapped runner, one LanceDB commit) that carries
its products' keys and image paths, so a worker on another machine needs the images but not
the catalogue table. A product whose image cannot be loaded gets no vector and is reported
with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from mars_core.index.lance import VectorTable, with_vectors
from mars_core.infra.batching import batched
from mars_core.infra.errors import UserInputError
from mars_core.infra.skipped import Skipped
from mars_core.vision.embedder import ImageEmbedder

Progress = Callable[[int, int], None]  # (done, total)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedShard:
    """Rows of a table to embed as one unit of work, with their keys and image paths."""

    rows: list[int]
    keys: list[str]
    paths: list[str]


@dataclass
class ShardVectors:
    """A shard's vectors, row by row, and the products whose image could not be loaded."""

    rows: list[int]  # the shard's rows of `vectors`, in order (its rows less the skipped)
    vectors: np.ndarray  # (len(rows), dim) float32 unit vectors
    skipped: list[Skipped]


# Embeds the shards, possibly on other workers; yields their results in shard order, each as
# soon as it is there (so it is committed while later shards still run).
EmbedShards = Callable[[list[EmbedShard]], Iterable[ShardVectors]]


def shard_of(table: pa.Table, rows: list[int]) -> EmbedShard:
    """The products at `rows` of `table` (a catalogue, or rows read back from LanceDB)."""
    keys = table["key"].take(rows).to_pylist()
    return EmbedShard(rows, keys, table["image_path"].take(rows).to_pylist())


def embed_shards_of(catalogue: pa.Table, rows: list[int], shard_rows: int) -> list[EmbedShard]:
    """`rows` cut into shards of `shard_rows`, in catalogue order."""
    return [shard_of(catalogue, part) for part in batched(rows, shard_rows)]


def embed_shard(shard: EmbedShard, embedder: ImageEmbedder) -> ShardVectors:
    """The shard's vectors; an image that cannot be loaded is skipped with its reason (it
    gets no row, so a later run tries it again)."""
    skipped: list[Skipped] = []
    bad: set[int] = set()

    def skip(position: int, error: UserInputError) -> None:
        bad.add(position)
        skipped.append(Skipped.because(shard.keys[position], error))

    batches = list(embedder.iter_images(shard.paths, progress=False, on_bad=skip))
    rows = [row for position, row in enumerate(shard.rows) if position not in bad]
    vectors = np.concatenate(batches) if batches else np.zeros((0, embedder.dim), np.float32)
    return ShardVectors(rows=rows, vectors=vectors, skipped=skipped)


def embed_in_process(embedder: ImageEmbedder) -> EmbedShards:
    """Shards embedded one after another by this process, lazily (each is committed before
    the next is embedded)."""

    def embed(shards: list[EmbedShard]) -> Iterator[ShardVectors]:
        return (embed_shard(shard, embedder) for shard in shards)

    return embed


def store_shards(
    table: VectorTable,
    catalogue: pa.Table,
    shards: list[EmbedShard],
    embed: EmbedShards,
    progress: Progress | None = None,
) -> tuple[int, list[Skipped]]:
    """Embed the shards and upsert each one's vectors as it arrives, one commit a shard.

    Returns how many were embedded and the products skipped. A crash loses at most the
    shards not yet committed: the next run plans only what the table still lacks.
    """
    total = sum(len(shard.rows) for shard in shards)
    if total == 0:
        return 0, []
    done, skipped = 0, []
    with tqdm(total=total, desc="embed products") as bar:
        for shard, result in zip(shards, embed(shards), strict=True):
            if result.rows:
                table.upsert(with_vectors(catalogue.take(result.rows), result.vectors))
            for entry in result.skipped:
                log.warning("skipping product %s", entry)
            done += len(result.rows)
            skipped.extend(result.skipped)
            bar.update(len(shard.rows))
            if progress is not None:
                progress(done + len(skipped), total)
    return done, skipped
