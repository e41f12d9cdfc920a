"""Rejected input, with a reason code and where it came from: never fatal, never silent.

A record that cannot become a catalogue row, a room or a ground-truth row is raised as
`Rejected(reason, detail)` where the problem is found and collected here by the loop that
reads it, which knows the source shard or folder and the line. The table is written as
`quarantine.parquet` (`QUARANTINE_SCHEMA`) and its counts per reason are logged and sent to
MLflow by the ingest flow.
"""

from __future__ import annotations

import logging
from collections import Counter
from enum import StrEnum

import pyarrow as pa

from mars_core.catalogue.schema import QUARANTINE_SCHEMA

log = logging.getLogger(__name__)


class Reason(StrEnum):
    """Why a record was quarantined (the `reason` column)."""

    # listings shards
    MALFORMED_JSON = "malformed_json"  # the line is not valid JSON (or not UTF-8)
    MALFORMED_RECORD = "malformed_record"  # not an object, or no item_id / domain_name string
    SHARD_UNREADABLE = "shard_unreadable"  # the gzip stream broke: the rest of the shard is lost
    DUPLICATE_KEY = "duplicate_key"  # item_id@domain_name seen before; the first one is kept
    NO_NAME = "no_name"  # no item_name value in any language
    NO_CATEGORY = "no_category"  # no product_type
    UNMAPPED_CATEGORY = "unmapped_category"  # product_type not in data.category_map
    NO_IMAGE = "no_image"  # no main_image_id
    IMAGE_NOT_INDEXED = "image_not_indexed"  # main_image_id missing from images.csv.gz
    IMAGE_FILE_MISSING = "image_file_missing"  # listed in images.csv.gz, no file on disk
    IMAGE_UNDECODABLE = "image_undecodable"  # the file is not a readable image
    IMAGE_TOO_LARGE = "image_too_large"  # over data.max_image_pixels, or a decompression bomb
    # images/metadata/images.csv.gz
    BAD_IMAGE_ROW = "bad_image_row"  # a row without id, path or integer width/height
    # room photos
    # a class folder in neither data.room_class_map nor data.extra_room_classes
    UNKNOWN_ROOM_CLASS = "unknown_room_class"
    ROOM_UNDECODABLE = "room_undecodable"  # the file is not a readable image
    ROOM_TOO_LARGE = "room_too_large"  # over data.max_image_pixels, or a decompression bomb
    # ground truth of the generated world
    TRUTH_ORPHAN = "truth_orphan"  # names a product or room that is not in the tables


class Rejected(Exception):
    """A record that cannot be used, and why (raised where the problem is found)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class Quarantine:
    """Collects rejected records; becomes `quarantine.parquet`."""

    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def add(
        self,
        source: str,
        reason: Reason,
        *,
        line: int | None = None,
        record_id: str | None = None,
        detail: str = "",
    ) -> None:
        self.rows.append(
            {
                "source": source,
                "line": line,
                "record_id": record_id,
                "reason": str(reason),
                "detail": detail[:500],
            }
        )

    def reject(
        self, source: str, error: Rejected, *, line: int | None = None, record_id: str | None = None
    ) -> None:
        self.add(source, error.reason, line=line, record_id=record_id, detail=error.detail)

    def counts(self) -> dict[str, int]:
        """Rows per reason code, most frequent first."""
        return dict(Counter(str(row["reason"]) for row in self.rows).most_common())

    def table(self) -> pa.Table:
        """The rows in a stable order (source, line, record), so re-runs write the same file."""
        rows = sorted(
            self.rows,
            key=lambda r: (r["source"], r["line"] or 0, r["record_id"] or "", r["reason"]),
        )
        return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)

    def log_counts(self) -> None:
        if not self.rows:
            log.info("quarantine: nothing rejected")
            return
        summary = ", ".join(f"{reason} {n}" for reason, n in self.counts().items())
        log.warning("quarantine: %d records rejected (%s)", len(self.rows), summary)
