"""The server teacher over real HTTP against a local OpenAI-compatible server, including one
that answers garbage, times out or drops the connection."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from pairs_factory import small_pairs
from support.chat_server import ChatServer

from mars_core.app.compose import load_config
from mars_core.teacher.labelling import consolidate, label_shard, plan_shards

PAIRS = 6


def server_teacher(session_overrides, url: str, *extra: str):
    """A vLLM teacher at `url`. Its 30 s timeout is never reached by a server that answers: on a
    loaded box a short one expired mid-answer, and the re-sent request was counted twice."""
    overrides = [
        "teacher=vllm",
        f"teacher.server.endpoint={url}",
        "teacher.pretrained=test-model",
        "teacher.max_attempts=2",
        "teacher.server.timeout=30",
        "teacher.server.retries=1",
        "teacher.server.backoff=0.01",
        "teacher.server.concurrency=3",
        "teacher.batch_size=4",
    ]
    return load_config([*session_overrides, *overrides, *extra]).teacher


def run(pairs, world, teacher, cache) -> list[dict]:
    for shard in plan_shards(pairs, teacher):
        label_shard(pairs, shard, world.out_dir, teacher, cache, world.data.max_image_pixels)
    report = consolidate(pairs, teacher)
    assert report.missing == 0 and report.duplicates == 0
    return pq.read_table(report.path).to_pylist()


def test_server_teacher_labels_every_pair(world, pairs_table, tmp_path, session_overrides):
    pairs = small_pairs(pairs_table, tmp_path, PAIRS)
    with ChatServer("ok") as server:
        teacher = server_teacher(session_overrides, server.url)
        labels = run(pairs, world, teacher, tmp_path)
    assert [row["status"] for row in labels] == ["ok"] * PAIRS
    assert all(row["attempts"] == 1 and row["teacher"] == "vllm" for row in labels)
    assert all(row["score"] * 10 == pytest.approx(round(row["score"] * 10)) for row in labels)
    assert all(row["rationale"] == "Judged from the text." for row in labels)
    assert len(server.requests) == PAIRS
    first = server.requests[0]
    assert first["model"] == "test-model" and first["temperature"] == 0.0
    assert first["messages"][0]["role"] == "system"


def test_replicas_share_the_work_with_bounded_concurrency_and_the_same_labels(
    world, pairs_table, tmp_path, session_overrides
):
    pairs = small_pairs(pairs_table, tmp_path / "one", 12)
    with ChatServer("ok") as server:
        alone = run(pairs, world, server_teacher(session_overrides, server.url), tmp_path / "one")
    spread = small_pairs(pairs_table, tmp_path / "two", 12)
    with ChatServer("ok", delay_s=0.05) as first, ChatServer("ok", delay_s=0.05) as second:
        teacher = server_teacher(
            session_overrides,
            first.url,
            f"teacher.server.replicas=[{second.url}]",
            "teacher.batch_size=12",
        )
        labels = run(spread, world, teacher, tmp_path / "two")
    assert [row["score"] for row in labels] == [row["score"] for row in alone]
    assert len(first.requests) + len(second.requests) == 12
    assert first.requests and second.requests
    assert max(first.most_in_flight, second.most_in_flight) <= teacher.server.concurrency


def test_transient_failures_are_resent_with_back_off(
    world, pairs_table, tmp_path, session_overrides
):
    pairs = small_pairs(pairs_table, tmp_path, PAIRS)
    with ChatServer("flaky") as server:
        server.failures = 3
        teacher = server_teacher(session_overrides, server.url, "teacher.server.retries=3")
        labels = run(pairs, world, teacher, tmp_path)
    assert [row["status"] for row in labels] == ["ok"] * PAIRS
    assert len(server.requests) == PAIRS + 3


@pytest.mark.parametrize(
    ("mode", "raw"),
    [
        ("garbage", "lorem ipsum"),
        ("not_json", "502 Bad Gateway"),
        ("slow", "ReadTimeout"),
        ("drop", "RemoteProtocolError"),
    ],
)
def test_a_misbehaving_server_gives_failed_labels_not_a_crash(
    mode, raw, world, pairs_table, tmp_path, session_overrides
):
    pairs = small_pairs(pairs_table, tmp_path, 2)
    with ChatServer(mode, slow_s=1.0) as server:
        timeout = ["teacher.server.timeout=0.5"] if mode == "slow" else []
        teacher = server_teacher(session_overrides, server.url, *timeout)
        labels = run(pairs, world, teacher, tmp_path)
    assert [row["status"] for row in labels] == ["failed", "failed"]
    assert all(raw in row["raw"] and row["attempts"] == 2 for row in labels)
    assert all(row["score"] is None and row["rationale"] is None for row in labels)
    sends = 1 if mode in ("garbage", "not_json") else 2  # timeouts and drops are re-sent once
    assert len(server.requests) == 2 * 2 * sends  # pairs x attempts x sends
    # The second attempt samples: greedy would repeat the same answer.
    assert {body["temperature"] for body in server.requests} == {0.0, 0.7}
