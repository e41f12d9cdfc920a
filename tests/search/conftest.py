"""Fixtures of the stage tests over the session's built index."""

from __future__ import annotations

import pytest
from support.catalogue_factory import read_rows

from mars_core.funnel.stages import BM25
from mars_core.search.lexical import LexicalStage


@pytest.fixture(scope="module")
def rows(catalogue_world) -> list[dict]:
    return read_rows(catalogue_world.catalogue)


@pytest.fixture(scope="module")
def lexical(built) -> LexicalStage:
    stage = LexicalStage.open(built.snapshot, built.cfg, name=BM25)
    yield stage
    stage.close()
