"""`search`: one room photo and one query from the command line, a ranked table and a page.

    mars-search --room photo.jpg --query "bed" [hydra overrides...]
    python -m flows.search --room photo.jpg --query "bed" 'funnel.stages=[bm25,siglip]'

Runs the funnel in process (no Prefect engine: a person waits for it). Mistakes a user can
fix (a file that is not an image, an empty query, an unknown adapter, a bad override) end
in one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mars_core.cli import run_cli
from mars_core.compose import load_config
from mars_core.errors import UserInputError
from mars_core.images import load_image
from mars_core.index.vocabulary import query_words
from mars_core.report import result_table_text
from mars_core.search.batch import RequestsFile, RequestSpec
from mars_core.search_service import search_requests


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mars-search", description="Find catalogue products that fit a room photo."
    )
    parser.add_argument("--room", required=True, type=Path, help="room photo (JPEG, PNG, ...)")
    parser.add_argument("--query", required=True, help='what to look for, e.g. "bed"')
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. funnel.k3=10")
    return parser.parse_args(argv)


def report_name(room: Path, query: str) -> str:
    """A file name for the page: `search-<room>-<query words>`."""
    words = "-".join(re.findall(r"[a-z0-9]+", query.lower()))[:40] or "query"
    return f"search-{room.stem}-{words}"


def search(args: argparse.Namespace) -> None:
    cfg = load_config(args.overrides)
    # Check what the user typed before the models load: a typo should cost no wait.
    load_image(args.room, cfg.data.max_image_pixels)
    query_words(args.query)
    spec = RequestSpec(line=0, room=args.room, query=args.query, room_id=args.room.name)
    outcome = search_requests(
        cfg, RequestsFile(specs=[spec], bad_lines=[]), name=report_name(args.room, args.query)
    )
    if outcome.failed:
        raise UserInputError(outcome.failed[0].reason)
    if outcome.notice:
        print(f"note: {outcome.notice}")
    print(result_table_text(outcome.results[0][1]))
    print(f"\nreport: {outcome.page}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    run_cli(lambda: search(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
