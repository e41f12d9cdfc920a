"""The labelling artifact: `labels.parquet` (from `pairs.parquet`) and `heldout_labels.parquet`
(from `heldout_pairs.parquet`), beside the catalogue.

Every pair column, then the label. A pair whose answer could not be parsed after the
configured retries keeps a row with `status="failed"`, null score and rationale, and the raw
text, so nothing vanishes. Columns are only ever added, never renamed or removed.
"""

from __future__ import annotations

import pyarrow as pa

from mars_core.mining.schema import PAIRS_SCHEMA

LABELS_FILE = "labels.parquet"
HELDOUT_LABELS_FILE = "heldout_labels.parquet"

STATUSES = ("ok", "failed")

LABELS_SCHEMA = pa.schema(
    [
        *PAIRS_SCHEMA,
        pa.field("score", pa.float32()),  # in [0, 1]; null when failed
        pa.field("rationale", pa.string()),  # one sentence; null when failed
        pa.field("raw", pa.string(), nullable=False),  # the teacher's raw output
        pa.field("status", pa.string(), nullable=False),  # one of STATUSES
        pa.field("attempts", pa.int32(), nullable=False),  # answers asked for this pair
        pa.field("teacher", pa.string(), nullable=False),  # teacher.name
        pa.field("prompt_version", pa.string(), nullable=False),  # prompt.PROMPT_VERSION
    ]
)
