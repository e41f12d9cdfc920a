"""Refresh the trained tiny student the tests judge beyond-the-query with.

    python -m bench.trained_student_fixture [--registry mars-student] [--alias champion]

A student that learned what fits a room takes 23 minutes to train on 2 cores, more than the
test suite's budget, so the tests load one that `make demo` (or `python -m bench.learning`)
trained: this copies the registry's version (by default make demo's champion, under the
MARS_HOME it ran with) into tests/fixtures/trained_student/ and writes
tests/fixtures/trained_student.json beside it: where it came from, its prompt version, the
ordering and fit bar it was registered with, and the room ids of the world's test split. The
tests ask it only about those rooms (the tests' world draws its rooms from the same
generator; the others were training rooms). Re-run after a change to the prompt, the
tiny student's recipe or the generated world; the tests name this command when the prompt
moved on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
FOLDER, MANIFEST = FIXTURES / "trained_student", FIXTURES / "trained_student.json"
SERVED_WITH = ("funnel.order", "funnel.siglip_blend", "funnel.min_fit_score")


def held_out_rooms(out_dir: Path) -> list[str]:
    """The room ids of the test split of the world at `out_dir`: the generator names a room
    the same (`Pool/pool_001.jpg`) in a world of any size, so they name the same photos in
    the tests' smaller world."""
    import pyarrow.parquet as pq

    from mars_core.catalogue.schema import SPLITS_FILE

    splits = pq.read_table(out_dir / SPLITS_FILE).to_pylist()
    return sorted(row["id"] for row in splits if row["kind"] == "room" and row["split"] == "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default="mars-student", help="registered model name")
    parser.add_argument("--alias", default="champion", help="which version of it")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.agent.adapter import resolve_adapter
    from mars_core.app.compose import load_config
    from mars_core.infra.registry import registry_version, version_tags, version_uri
    from mars_core.prompt import PROMPT_VERSION

    cfg = load_config([])
    found = registry_version(f"models:/{args.registry}@{args.alias}")
    if found is None:
        missing = f"{args.registry}@{args.alias}"
        print(f"error: no {missing} in the registry; run make demo first", file=sys.stderr)
        raise SystemExit(2)
    uri = version_uri(*found)
    tags = version_tags(*found)
    shutil.rmtree(FOLDER, ignore_errors=True)
    shutil.copytree(resolve_adapter(uri), FOLDER)
    manifest = {
        "source": uri,
        "description": f"seed {tags.get('seed')}, {tags.get('steps')} steps, "
        f"stopped by {tags.get('stopped_by')}, data sha256 {tags.get('dataset_hash')}",
        "prompt_version": PROMPT_VERSION,
        "served_with": {key: tags[key] for key in SERVED_WITH if key in tags},
        "held_out_rooms": held_out_rooms(Path(cfg.data.out_dir)),
        "refresh": "python -m bench.trained_student_fixture",
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{uri} -> {FOLDER}: {len(manifest['held_out_rooms'])} held-out rooms")


if __name__ == "__main__":
    main()
