"""`search`: one room photo and one query from the command line, a ranked table and a page.

    mars-search --room photo.jpg --query "bed" [hydra overrides...]
    python -m flows.search --room photo.jpg --query "bed" funnel.use_agent=false

Runs the funnel in process (no Prefect engine: a person waits for it). Mistakes a user can
fix (a file that is not an image, an empty query, an unknown adapter, a bad override) end
in one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from flows.config import load_config
from mars_core.errors import UserInputError
from mars_core.images import load_image
from mars_core.report import result_table_text
from mars_core.search.batch import RequestSpec
from mars_core.search.build import agent_notice, build_funnel
from mars_core.search.service import run_requests, write_outputs
from mars_core.search.vocabulary import query_words

USAGE_ERROR = 2


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


def search(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        print(f"error: bad configuration: {str(e).splitlines()[0]}", file=sys.stderr)
        return USAGE_ERROR
    spec = RequestSpec(line=0, room=args.room, query=args.query, room_id=args.room.name)
    try:
        # Check what the user typed before the models load: a typo should cost no wait.
        load_image(spec.room, cfg.funnel.max_input_pixels)
        query_words(spec.query)
        outcome = run_requests(
            build_funnel(cfg), [spec], max_input_pixels=cfg.funnel.max_input_pixels
        )
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_ERROR
    if outcome.failed:
        print(f"error: {outcome.failed[0].reason}", file=sys.stderr)
        return USAGE_ERROR
    notice = agent_notice(cfg)
    _, page = write_outputs(
        outcome,
        Path(cfg.paths.reports),
        name=report_name(args.room, args.query),
        notice=notice,
        max_input_pixels=cfg.funnel.max_input_pixels,
    )
    _, result = outcome.results[0]
    if notice:
        print(f"note: {notice}")
    print(result_table_text(result))
    print(f"\nreport: {page}")
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(search(parse_args(list(sys.argv[1:] if argv is None else argv))))


if __name__ == "__main__":
    main()
