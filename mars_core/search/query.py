"""The one check of a query's size, made before any stage runs and before models load.

Each place a query comes in calls `check_query` once, before anything heavy loads: the command
line (`mars-search`), every row of a requests file (`search_file`) and the service's form. So
a query is refused by the same limits (`funnel.max_query_chars`, `funnel.max_query_words`)
wherever it comes from, and the funnel behind them takes it as checked: a 100,000-character
query once drove a process to 23 GB in the agent's prompt.
"""

from __future__ import annotations

import re

from mars_core.config import FunnelConfig
from mars_core.index.vocabulary import query_words
from mars_core.infra.errors import QueryTooLongError

# Every word counts, stop words included (BM25 drops them, the agent's prompt does not).
_ANY_WORD = re.compile(r"\w+")


def check_query(query: str, limits: FunnelConfig) -> str:
    """The query, when it has words in it and is within both limits; raises otherwise. An
    empty or blank query is a room with no query: it comes back as ""."""
    if isinstance(query, str) and not query.strip():
        return ""
    if isinstance(query, str) and len(query) > limits.max_query_chars:
        raise QueryTooLongError(
            f"the query is {len(query):,} characters, over the limit of "
            f"{limits.max_query_chars} (funnel.max_query_chars); say what you look for in a "
            "few words"
        )
    query_words(query)
    words = len(_ANY_WORD.findall(query))
    if words > limits.max_query_words:
        raise QueryTooLongError(
            f"the query has {words} words, over the limit of {limits.max_query_words} "
            "(funnel.max_query_words); say what you look for in a few words"
        )
    return query
