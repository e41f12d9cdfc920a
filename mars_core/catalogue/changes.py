"""What a product's content is (`content_hash`) and what changed between two catalogues.

Ingest counts the changes since its last run and the re-index decides what to embed again
from the same diff, in the same words: a product is *added*, *changed* (new content hash),
*removed* or *unchanged*.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mars_core.catalogue.schema import CATALOGUE_SCHEMA

# Columns that say where things are rather than what they are: moving the data folder must
# not make every product look changed.
UNHASHED = ("content_hash", "image_path", "source")


def content_hash(row: Mapping[str, Any], image_sha256: str) -> str:
    """sha256 over the row's content columns (a column it lacks counts as null) and the
    image bytes' sha256."""
    content = {name: row.get(name) for name in CATALOGUE_SCHEMA.names if name not in UNHASHED}
    payload = json.dumps(content, sort_keys=True, ensure_ascii=False) + image_sha256
    return hashlib.sha256(payload.encode()).hexdigest()


def key_hashes(catalogue: pa.Table) -> dict[str, str]:
    """key -> content_hash of a catalogue table."""
    return dict(
        zip(catalogue["key"].to_pylist(), catalogue["content_hash"].to_pylist(), strict=True)
    )


@dataclass(frozen=True)
class KeyChanges:
    """Keys added, changed (another hash), removed, and how many kept their hash."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
        }


def diff_hashes(old: Mapping[str, str], new: Mapping[str, str]) -> KeyChanges:
    """Compare two key -> content hash maps; lists keep `new`'s (or `old`'s) key order."""
    added = [key for key in new if key not in old]
    changed = [key for key, value in new.items() if key in old and old[key] != value]
    return KeyChanges(
        added=added,
        changed=changed,
        removed=[key for key in old if key not in new],
        unchanged=len(new) - len(added) - len(changed),
    )
