"""Refresh the trained tiny student the tests judge beyond-the-query with.

    python -m bench.trained_student_fixture [--registry mars-student] [--alias champion]
        [--fixture trained_student] [hydra overrides...]

A student that learned what fits a room takes 23 minutes to train on 2 cores, more than the
test suite's budget, so the tests load one that `make demo` (or `python -m bench.learning`)
trained: this copies the registry's version (by default make demo's champion, under the
MARS_HOME it ran with) into tests/fixtures/trained_student/ and writes
tests/fixtures/trained_student.json beside it: where it came from, its prompt version, the
ordering and fit bar it was registered with, and the room ids of the world's test split. The
tests ask it only about those rooms (the tests' world draws its rooms from the same
generator; the others were training rooms). Re-run after a change to the prompt, the
tiny student's recipe or the generated world; the tests name this command when the prompt
moved on. `--fixture trained_student_shared_types data=shared_types` refreshes the student of
the world whose outdoor furniture exists only inside shared types (its world's test split).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
DEFAULT_FIXTURE = "trained_student"
SERVED_WITH = ("funnel.order", "funnel.siglip_blend", "funnel.min_fit_score")


def fixture_paths(name: str) -> tuple[Path, Path]:
    """A fixture's model folder and its manifest beside it."""
    return FIXTURES / name, FIXTURES / f"{name}.json"


def refresh_args(args: argparse.Namespace) -> list[str]:
    """The command-line arguments that refresh this fixture again (beyond the defaults)."""
    named = ["--fixture", args.fixture] if args.fixture != DEFAULT_FIXTURE else []
    return [*named, *args.overrides]


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
    parser.add_argument(
        "--fixture", default=DEFAULT_FIXTURE, help="its folder (and manifest) in tests/fixtures"
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides of the world it learned")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.agent.adapter import resolve_adapter
    from mars_core.app.compose import load_config
    from mars_core.infra.registry import registry_version, version_tags, version_uri
    from mars_core.prompt import PROMPT_VERSION

    cfg = load_config(args.overrides)
    folder, manifest_file = fixture_paths(args.fixture)
    found = registry_version(f"models:/{args.registry}@{args.alias}")
    if found is None:
        missing = f"{args.registry}@{args.alias}"
        print(f"error: no {missing} in the registry; run make demo first", file=sys.stderr)
        raise SystemExit(2)
    uri = version_uri(*found)
    tags = version_tags(*found)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(resolve_adapter(uri), folder)
    manifest = {
        "source": uri,
        "description": f"seed {tags.get('seed')}, {tags.get('steps')} steps, "
        f"stopped by {tags.get('stopped_by')}, data sha256 {tags.get('dataset_hash')}",
        "prompt_version": PROMPT_VERSION,
        "served_with": {key: tags[key] for key in SERVED_WITH if key in tags},
        "held_out_rooms": held_out_rooms(Path(cfg.data.out_dir)),
        "refresh": " ".join(["python -m bench.trained_student_fixture", *refresh_args(args)]),
    }
    manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{uri} -> {folder}: {len(manifest['held_out_rooms'])} held-out rooms")


if __name__ == "__main__":
    main()
