"""The catalogue's parquet tables: read with a column check, written atomically, and
left alone when unchanged.

A table is written to a temporary file beside its target and renamed into place, so a crash
never leaves half a catalogue. A file whose content would not change is not rewritten: its
modification time stays, and "nothing changed" is visible to whoever watches the folder.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.infra.io import atomic_write_parquet


def same_table(path: Path, table: pa.Table) -> bool:
    """True when `path` holds exactly `table` (schema and rows); False if unreadable."""
    if not path.is_file():
        return False
    try:
        old = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return False
    return old.schema.equals(table.schema) and old.equals(table)


def write_table(table: pa.Table, path: Path) -> bool:
    """Write `table` to `path` atomically unless it already holds it; True when written."""
    path = Path(path)
    if same_table(path, table):
        return False
    atomic_write_parquet(path, table)
    return True


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """A table written by ingest, checked to carry at least `schema`'s columns."""
    table = pq.read_table(path)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; re-run ingest to rebuild it")
    return table
