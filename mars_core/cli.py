"""How command-line entry points report mistakes a user can fix: one line, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from mars_core.errors import ConfigError, UserInputError

USAGE_ERROR = 2


def run_cli(command: Callable[[], object]) -> None:
    """Run `command`; a user's mistake ends in `error: ...` on stderr instead of a traceback."""
    try:
        command()
    except ConfigError as e:
        _fail(f"bad configuration: {e}")
    except UserInputError as e:
        _fail(str(e))


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)
