"""The evaluation tests reuse the index tests' world and index, built once per session."""

from tests.index.conftest import built, embedder, index_cfg, world  # noqa: F401
