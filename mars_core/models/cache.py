"""A build cache of model folders keyed by recipe hash, written atomically.

A recipe change (any field, or `BUILDER_VERSION`) gives a new cache folder, so a stale tiny
model is never loaded by mistake.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from mars_core.config.recipes import TinyClipRecipe, TinyVLMRecipe
from mars_core.infra.io import remove_stale_staging, staging_folder

COMPLETE_MARKER = ".complete"
BUILDER_VERSION = 1  # bump when the tiny builders change what a recipe produces


def recipe_hash(recipe: TinyVLMRecipe | TinyClipRecipe) -> str:
    """A short stable digest of a recipe and the builder version."""
    payload = json.dumps(
        {"kind": type(recipe).__name__, "builder": BUILDER_VERSION, **asdict(recipe)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def cached_build(folder: Path, build: Callable[[Path], None]) -> Path:
    """Return `folder`, building it with `build(tmp)` first unless a complete build is there.

    The build writes into a sibling temporary folder that is renamed into place, so a crash
    mid-build never leaves a half-written model that a later run would load.
    """
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    remove_stale_staging(folder.parent, f".{folder.name}-")
    tmp = staging_folder(folder.parent, f".{folder.name}-")
    try:
        build(tmp)
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        tmp.rename(folder)
    except OSError:
        if not (folder / COMPLETE_MARKER).is_file():
            raise
        # Another process finished the same build first: keep its folder, drop ours.
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
