"""One limit on a query's size, checked before any stage and before models load.

A 100,000-character query once drove a process to 23 GB in the agent's prompt path; the
command line, each batch row and the service refuse it up front, where it comes in, and the
funnel behind them takes it as checked.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from mars_core.app.compose import load_config
from mars_core.config import FunnelConfig
from mars_core.infra.errors import EmptyQueryError, QueryTooLongError
from mars_core.prompt import MAX_PRODUCT_CHARS, product_text, prompt_messages
from mars_core.search.funnel import FunnelStep, NoQueryError, SearchFunnel
from mars_core.search.query import check_query
from mars_core.search.types import SearchRequest, StageOutput

HUGE = "bed " + "the " * 25_000  # 100,004 characters, almost all stop words
LIMITS = FunnelConfig()


def test_a_huge_query_is_refused_by_characters():
    with pytest.raises(QueryTooLongError, match=r"100,004 characters.*funnel\.max_query_chars"):
        check_query(HUGE, LIMITS)


def test_stop_words_count_toward_the_word_limit():
    query = "bed " + "the " * LIMITS.max_query_words
    assert len(query) <= LIMITS.max_query_chars
    with pytest.raises(QueryTooLongError, match=r"funnel\.max_query_words"):
        check_query(query, LIMITS)
    assert check_query("a bed for the guest room", LIMITS) == "a bed for the guest room"
    assert check_query("   ", LIMITS) == check_query("", LIMITS) == ""  # a room with no query
    with pytest.raises(EmptyQueryError):
        check_query(None, LIMITS)


class CountingStage:
    """A first stage that only counts how often it was asked."""

    name = "bm25"

    def __init__(self) -> None:
        self.calls = 0

    def rank(self, request, candidates, k):
        self.calls += 1
        return StageOutput([])


def test_the_funnel_sends_a_blank_query_to_the_room_search_and_names_what_it_needs():
    stage = CountingStage()
    funnel = SearchFunnel(
        [FunnelStep(stage, k=5)], final_k=5, room_search_needs=("siglip", "agent")
    )
    funnel.search(SearchRequest(room=Image.new("RGB", (8, 8)), query="bed"))
    assert stage.calls == 1
    with pytest.raises(NoQueryError, match="needs stages siglip and agent"):
        funnel.search(SearchRequest(room=Image.new("RGB", (8, 8)), query=" "))
    assert stage.calls == 1


def test_the_product_text_in_the_prompt_is_capped():
    product = {"name": "bed " * 50_000, "category": "BED", "color": "blue " * 1000}
    text = product_text(product)
    assert len(text) == MAX_PRODUCT_CHARS
    prompt = prompt_messages("bed", text)[1]["content"][-1]["text"]
    assert len(prompt) < MAX_PRODUCT_CHARS + 200


def test_the_command_line_refuses_a_huge_query_before_anything_loads(tmp_path, capsys):
    """No index exists under this config: the query's error comes first, so nothing
    (index, models) was touched before it."""
    from mars_core.app.commands.search import main as search_main

    with pytest.raises(SystemExit) as done:
        search_main(
            [
                "--room",
                str(tmp_path / "missing.jpg"),
                "--query",
                HUGE,
                f"paths.artifacts={tmp_path}",
            ]
        )
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "funnel.max_query_chars" in err[0] and len(err[0]) < 300


@pytest.mark.slow
def test_a_batch_row_over_the_limit_is_refused_and_the_others_run(indexed, tmp_path):
    from mars_core.app.batch_search import search_file

    rows = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    shutil.copy(rows[0]["path"], tmp_path / "room.png")
    requests = tmp_path / "limits.jsonl"
    lines = [{"room": "room.png", "query": query} for query in ("bed", HUGE, "lamp")]
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cfg = load_config([*indexed.overrides, "funnel.stages=[bm25]"])
    outcome = search_file(cfg, requests, out_dir=tmp_path)
    assert [line for line, _ in outcome.results] == [1, 3]
    (refused,) = outcome.failed
    assert refused.request == 2 and "funnel.max_query_chars" in refused.reason
    assert len(refused.query) == cfg.funnel.max_query_chars  # not copied whole into the page
    report = outcome.report()
    assert (report.searched, report.failed) == (2, 1)
    assert "funnel.max_query_chars" in Path(report.page).read_text()


def test_the_service_uses_the_same_limit(cfg):
    from mars_core.app.serve.validation import UNPROCESSABLE, status_of
    from mars_core.app.serve.validation import check_query as serve_check

    tight = dataclasses.replace(cfg.funnel, max_query_chars=10)
    with pytest.raises(QueryTooLongError) as refused:
        serve_check("a bed for the guest room", tight)
    assert status_of(refused.value) == UNPROCESSABLE
