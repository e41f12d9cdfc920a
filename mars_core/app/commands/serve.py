"""`serve`: the search service and web page, one command.

    mars-serve [hydra overrides...]
    python -m mars_core.app.commands.serve serve.port=8080

Checks the config, the catalogue and the index before anything loads (a mistake is one
`error:` line, exit status 2), prints the URL to open, then runs uvicorn until Ctrl-C. The
funnel loads when the server starts and follows newly published index builds and champions
between requests (`mars_core/app/serve/follow.py`).
"""

from __future__ import annotations

import sys

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, run_app


def serve(call: Invocation) -> None:
    """Run the service for the composed config until interrupted."""
    import uvicorn

    from mars_core.app.serve.app import create_app
    from mars_core.app.steps import require_search_inputs

    cfg = call.cfg
    require_search_inputs(cfg)
    app = create_app(cfg)
    print(
        f"MARS search: open http://{cfg.serve.host}:{cfg.serve.port}/ "
        f"(API docs at /docs); loading the funnel ({', '.join(cfg.funnel.stages)})...",
        flush=True,
    )
    uvicorn.run(
        app,
        host=cfg.serve.host,
        port=cfg.serve.port,
        log_level="info" if call.verbose else "warning",
    )


def main(argv: list[str] | None = None) -> None:
    run_app(APPS["serve"], argv, serve)
    sys.exit(0)


if __name__ == "__main__":
    main()
