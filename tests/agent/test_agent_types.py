"""The agent's shared types: light to import, and one `Scorer` every kind of agent implements."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from mars_core.agent.batching import AgentBatcher
from mars_core.agent.remote import RemoteAgentScorer
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.types import Scorer

HEAVY = ("torch", "transformers")
METHODS = ["score", "generate", "for_concurrent_requests", "close"]


def test_the_shared_types_import_neither_torch_nor_transformers():
    code = (
        "import sys, mars_core.agent.types; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", [AgentScorer, AgentBatcher, RemoteAgentScorer])
@pytest.mark.parametrize("name", METHODS)
def test_every_scorer_takes_what_the_protocol_passes(kind, name):
    """Each of the protocol's parameters is one of the scorer's, of the same kind; whatever
    else the scorer takes has a default."""
    wanted = inspect.signature(getattr(Scorer, name)).parameters
    given = inspect.signature(getattr(kind, name)).parameters
    for parameter in wanted.values():
        assert parameter.name in given, f"{kind.__name__}.{name} lacks {parameter.name}"
        assert given[parameter.name].kind == parameter.kind
    extra = [p for p in given.values() if p.name not in wanted]
    assert all(p.default is not inspect.Parameter.empty for p in extra), extra
