"""Stage 2's LanceDB table: one row per product, its catalogue fields and image vector.

Besides the catalogue's `content_hash` (text and image: a change means a new vector) each row
carries `row_hash`, a digest of all its catalogue fields, so a row whose other fields changed
(an image moved to another folder) is rewritten with its old vector instead of going stale.

The writer (`VectorTable`) upserts by key and deletes by key; every write is a new table
version. The reader (`VectorIndex`) is pinned to the version a manifest names, so writes of a
running re-index stay invisible to it until the manifest moves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import Bitmap, BTree, IvfPq

from mars_core.catalogue.schema import CATALOGUE_SCHEMA
from mars_core.config import IndexConfig
from mars_core.infra.batching import batched

VECTOR = "vector"
ROW_HASH = "row_hash"
DISTANCE = "_distance"
IN_LIST_CHUNK = 1000  # keys per SQL IN (...) list
PRODUCT_COLUMNS = CATALOGUE_SCHEMA.names


def table_schema(dim: int) -> pa.Schema:
    """The catalogue schema plus the row digest and a fixed-size float32 vector."""
    return CATALOGUE_SCHEMA.append(pa.field(ROW_HASH, pa.string(), nullable=False)).append(
        pa.field(VECTOR, pa.list_(pa.float32(), dim), nullable=False)
    )


def row_hashes(rows: pa.Table) -> list[str]:
    """A digest of every catalogue field of each row."""
    return [
        hashlib.blake2b(
            json.dumps(row, sort_keys=True, default=str).encode(), digest_size=16
        ).hexdigest()
        for row in rows.select(PRODUCT_COLUMNS).to_pylist()
    ]


def sql_in(column: str, values: Sequence[str]) -> str:
    """`column IN ('a', 'b')` with quotes escaped (keys are data, not SQL)."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


def with_vectors(rows: pa.Table, vectors: np.ndarray) -> pa.Table:
    """Catalogue rows with their digests and vectors appended, cast to the table schema."""
    dim = vectors.shape[1]
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).ravel()), dim)
    table = rows.select(PRODUCT_COLUMNS).append_column(ROW_HASH, pa.array(row_hashes(rows)))
    return table.append_column(VECTOR, column).cast(table_schema(dim))


def vector_matrix(rows: pa.Table) -> np.ndarray:
    """The vector column as an (n, dim) float32 array."""
    column = rows[VECTOR].combine_chunks()
    return column.flatten().to_numpy().reshape(rows.num_rows, column.type.list_size)


def key_hashes(table: Any) -> dict[str, tuple[str, str]]:
    """key -> (content_hash, row_hash) of every row of a (possibly checked-out) table."""
    n = table.count_rows()
    if n == 0:
        return {}
    data = table.search().select(["key", "content_hash", ROW_HASH]).limit(n).to_arrow()
    pairs = zip(data["content_hash"].to_pylist(), data[ROW_HASH].to_pylist(), strict=True)
    return dict(zip(data["key"].to_pylist(), pairs, strict=True))


class VectorTable:
    """The writer's handle on the product table (created on first use)."""

    def __init__(self, uri: str, name: str, dim: int) -> None:
        self.db = lancedb.connect(uri)
        self.name = name
        self.dim = dim
        if name in self.db.list_tables().tables:
            self.table = self.db.open_table(name)
            stored = self.table.schema.field(VECTOR).type.list_size
            if stored != dim:
                raise ValueError(
                    f"LanceDB table {name} at {uri} holds {stored}-d vectors, the embedder "
                    f"gives {dim}-d: build into another index.dir for this embedder"
                )
        else:
            self.table = self.db.create_table(name, schema=table_schema(dim))

    @property
    def version(self) -> int:
        return int(self.table.version)

    def hashes(self, version: int | None = None) -> dict[str, tuple[str, str]]:
        """key -> (content_hash, row_hash) at `version` (default: the latest, unpublished
        writes included)."""
        if version is None:
            return key_hashes(self.table)
        pinned = self.db.open_table(self.name)
        pinned.checkout(version)
        return key_hashes(pinned)

    def upsert(self, rows: pa.Table) -> None:
        """Insert new keys, overwrite existing ones: one commit, one new table version."""
        merge = self.table.merge_insert("key").when_matched_update_all()
        merge.when_not_matched_insert_all().execute(rows)

    def vectors(self, keys: Sequence[str]) -> np.ndarray:
        """The stored vectors of `keys`, in that order (all must exist)."""
        parts = [
            self.table.search()
            .where(sql_in("key", part))
            .select(["key", VECTOR])
            .limit(IN_LIST_CHUNK)
            .to_arrow()
            for part in batched(keys, IN_LIST_CHUNK)
        ]
        rows = pa.concat_tables(parts)
        position = {key: i for i, key in enumerate(rows["key"].to_pylist())}
        return vector_matrix(rows)[[position[key] for key in keys]]

    def iter_vectors(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """(keys, vectors) of every row at the latest version, streamed in LanceDB's batches."""
        n = max(self.table.count_rows(), 1)
        for batch in self.table.search().select(["key", VECTOR]).limit(n).to_batches():
            rows = pa.Table.from_batches([batch])
            yield rows["key"].to_pylist(), vector_matrix(rows)

    def delete(self, keys: Sequence[str]) -> None:
        for part in batched(keys, IN_LIST_CHUNK):
            self.table.delete(sql_in("key", part))

    def indexed_columns(self) -> set[str]:
        return {column for ix in self.table.list_indices() for column in ix.columns}

    def has_ann(self) -> bool:
        return VECTOR in self.indexed_columns()

    def ensure_indexes(self, cfg: IndexConfig, *, pinned_version: int | None) -> None:
        """Scalar indexes on key and category; an ANN index once the table is large enough.

        Existing indexes take in new rows through `optimize`, whose clean-up spares every
        version from the pinned (published) one on.
        """
        indexed = self.indexed_columns()
        if "key" not in indexed:
            self.table.create_index("key", config=BTree())
        if "category" not in indexed:
            self.table.create_index("category", config=Bitmap())
        if VECTOR not in indexed and self.table.count_rows() >= cfg.ann_min_rows:
            self.table.create_index(VECTOR, config=self._ann_config(cfg))
        self.table.optimize(cleanup_older_than=self._cleanup_age(cfg, pinned_version))

    def _ann_config(self, cfg: IndexConfig) -> IvfPq:
        return IvfPq(
            distance_type="cosine",
            num_partitions=cfg.ann_partitions or None,
            num_sub_vectors=cfg.ann_sub_vectors or None,
        )

    def _cleanup_age(self, cfg: IndexConfig, pinned_version: int | None) -> timedelta:
        """`keep_versions_days`, stretched so the published version is never cleaned up."""
        keep = timedelta(days=cfg.keep_versions_days)
        if pinned_version is None:
            return keep
        stamps = {v["version"]: v["timestamp"] for v in self.table.list_versions()}
        pinned_at = stamps.get(pinned_version)
        if pinned_at is None:
            return keep
        # Version timestamps are naive; a day of margin covers any time-zone offset.
        return max(keep, datetime.now() - pinned_at + timedelta(days=1))


class VectorIndex:
    """The reader's handle: the product table at a published version."""

    def __init__(self, uri: str, name: str, version: int, *, nprobes: int, refine: int) -> None:
        self.table = lancedb.connect(uri).open_table(name)
        self.table.checkout(version)
        self.dim = self.table.schema.field(VECTOR).type.list_size
        self.nprobes = nprobes
        self.refine = refine

    @cached_property
    def offsets(self) -> dict[str, int]:
        """key -> row offset at the pinned version (read on first use: stage 2's re-rank
        gathers from the build's aligned vectors and never needs it)."""
        keys = self.table.search().select(["key"]).limit(max(self.count(), 1)).to_arrow()
        return {key: i for i, key in enumerate(keys["key"].to_pylist())}

    def rows(self, keys: Sequence[str]) -> pa.Table:
        """The rows (vectors included) of `keys`, in table order; unknown keys are absent.

        Rows are taken by offset: a pinned version never moves its rows, and a take is a
        fraction of the cost of an `IN (...)` filter over a few hundred keys.
        """
        offsets = sorted(self.offsets[key] for key in set(keys) if key in self.offsets)
        if not offsets:
            return self.table.schema.empty_table()
        return self.table.take_offsets(offsets).select([*PRODUCT_COLUMNS, VECTOR]).to_arrow()

    def nearest(self, vector: np.ndarray, k: int, *, where: str | None = None) -> pa.Table:
        """The `k` rows closest to `vector` by cosine (ANN when indexed), `where` applied first.

        The result carries `_distance` (cosine distance, 1 - cosine similarity).
        """
        query = (
            self.table.search(vector.astype(np.float32), vector_column_name=VECTOR)
            .distance_type("cosine")
            .nprobes(self.nprobes)
            .refine_factor(self.refine)
            .limit(k)
            .select([*PRODUCT_COLUMNS, VECTOR, DISTANCE])
        )
        if where is not None:
            query = query.where(where, prefilter=True)
        return query.to_arrow()

    def count(self) -> int:
        return int(self.table.count_rows())
