"""`serve`: the search service and web page, one command.

    mars-serve [hydra overrides...]
    python -m mars_core.app.commands.serve serve.port=8080

Checks the config, the catalogue and the index before anything loads (a mistake is one
`error:` line, exit status 2), prints the URL to open, then runs uvicorn until Ctrl-C or
SIGTERM. The funnel loads when the server starts and follows newly published index builds
and champions between requests (`mars_core/app/serve/follow.py`). SIGTERM drains the service
(`mars_core/app/serve/shutdown.py`): new requests get 503, those in flight finish within
`serve.drain_s`, and it exits 0; a drain cut short (time up, or a second SIGTERM) exits 1 at
once, saying how many requests it left unfinished.
"""

from __future__ import annotations

import os
import sys

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, run_app

EXIT_CUT = 1  # the drain ended with requests still in flight


def serve(call: Invocation) -> None:
    """Run the service for the composed config until interrupted or drained."""
    import uvicorn

    from mars_core.app.serve.app import create_app
    from mars_core.app.serve.shutdown import DrainingServer
    from mars_core.app.steps import require_search_inputs

    cfg = call.cfg
    require_search_inputs(cfg)
    app = create_app(cfg)
    print(
        f"MARS search: open http://{cfg.serve.host}:{cfg.serve.port}/ "
        f"(API docs at /docs); loading the funnel ({', '.join(cfg.funnel.stages)})...",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=cfg.serve.host,
        port=cfg.serve.port,
        log_level="info" if call.verbose else "warning",
    )
    server = DrainingServer(config, drain=app.state.drain, drain_s=cfg.serve.drain_s)
    server.run()
    if server.cut:
        print(
            f"mars-serve: stopped with {app.state.drain.in_flight} request(s) unfinished "
            f"(serve.drain_s={cfg.serve.drain_s:g}, or a second SIGTERM)",
            file=sys.stderr,
            flush=True,
        )
        # At once: a worker thread still computing a cut request would hold up a normal exit.
        os._exit(EXIT_CUT)


def main(argv: list[str] | None = None) -> None:
    run_app(APPS["serve"], argv, serve)
    sys.exit(0)


if __name__ == "__main__":
    main()
