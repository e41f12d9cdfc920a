"""`search`: one room photo and one query from the command line, a ranked table and a page.

    mars-search --room photo.jpg --query "bed" [hydra overrides...]
    mars-search --room photo.jpg [hydra overrides...]     # no query: what fits the room
    python -m mars_core.app.commands.search --room photo.jpg --query bed [hydra overrides...]

Runs the funnel in process (no Prefect engine: a person waits for it). Mistakes a user can
fix (a file that is not an image, an empty query, an unknown adapter, a bad override) end
in one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, run_app
from mars_core.app.steps import require_inputs
from mars_core.infra.errors import UserInputError
from mars_core.search.query import check_query
from mars_core.vision.images import check_image


def report_name(room: Path, query: str) -> str:
    """A file name for the page: `search-<room>-<query words>`."""
    words = "-".join(re.findall(r"[a-z0-9]+", query.lower()))[:40] or (
        "query" if query.strip() else "what-fits"
    )
    return f"search-{room.stem}-{words}"


def search(call: Invocation) -> None:
    """One search into a run folder of its own (`paths.reports/search/<timestamp>/`)."""
    room, query = Path(call.options["room"]), call.options["query"] or ""
    cfg = call.cfg
    # What the user typed and what the search reads, checked once, here, before the imports
    # below load the models' libraries: a misspelt photo path or a missing catalogue costs no
    # wait. The photo's header only; its pixels are decoded once, when it is searched.
    check_query(query, cfg.funnel)
    check_image(room, cfg.data.max_image_pixels)
    require_inputs(cfg, "search")
    from mars_core.app.batch_search import run_folder, search_requests
    from mars_core.app.results_page import result_table_text
    from mars_core.search.batch import RequestsFile, RequestSpec

    spec = RequestSpec(line=1, room=room, query=query, room_id=room.name)
    outcome = search_requests(
        cfg,
        RequestsFile(specs=[spec], bad_lines=[]),
        name=report_name(room, query),
        out_dir=run_folder(Path(cfg.paths.reports), "search"),
    )
    if outcome.failed:
        raise UserInputError(outcome.failed[0].reason)
    if outcome.notice:
        print(f"note: {outcome.notice}")
    print(result_table_text(outcome.results[0][1]))
    print(f"\nresults: {outcome.table}\nreport: {outcome.page}")


def main(argv: list[str] | None = None) -> None:
    run_app(APPS["search"], argv, search)
    sys.exit(0)


if __name__ == "__main__":
    main()
