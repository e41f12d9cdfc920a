"""The teacher-side parse of the one prompt module: takes what real models write, refuses
what is wrong (the agent's lenient parse is unchanged: see tests/prompt/test_prompt.py)."""

from __future__ import annotations

import pytest

from mars_core.prompt import (
    Answer,
    MalformedAnswerError,
    answer_text,
    parse_answer,
    parse_teacher_answer,
)
from mars_core.teacher.base import label_with_retries


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 0.7, "rationale": "Fits the bedroom."}', Answer(0.7, "Fits the bedroom.")),
        ('```json\n{"score": 0.3, "rationale": "Too big."}\n```', Answer(0.3, "Too big.")),
        ('Here you go: {"score": "0.7/1", "rationale": "ok"} Hope it helps!', Answer(0.7, "ok")),
        ('{"score": "7/10", "rationale": "fine"}', Answer(0.7, "fine")),
        ('{"score": "7 / 10", "rationale": "fine"}', Answer(0.7, "fine")),
        (
            "Score: 0.7\nRationale: A teak lounger suits the pool.",
            Answer(0.7, "A teak lounger suits the pool."),
        ),
        ("**Score:** 7/10\n**Rationale:** matches the palette", Answer(0.7, "matches the palette")),
        ('{"score": 1, "rationale": "  spaced   out "}', Answer(1.0, "spaced out")),
        (answer_text(0.4, "round trip"), Answer(0.4, "round trip")),
    ],
)
def test_teacher_parse_takes_what_models_write(text, expected):
    assert parse_teacher_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("I think it fits nicely.", "no score"),
        ('{"rationale": "fits"}', "no score"),
        ('{"score": 1.4, "rationale": "great"}', "outside"),
        ('{"score": -0.1, "rationale": "bad"}', "outside"),
        ('{"score": "12/10", "rationale": "x"}', "outside"),
        ('{"score": "high", "rationale": "x"}', "not a number"),
        ('{"score": "1/0", "rationale": "x"}', "not a number"),
        ('{"score": 0.5, "rationale": "   "}', "rationale"),
        ('{"score": 0.5}', "rationale"),
        ("score: 0.7", "rationale"),
        ("", "no score"),
    ],
)
def test_teacher_parse_refuses_what_is_wrong(text, problem):
    with pytest.raises(MalformedAnswerError, match=problem):
        parse_teacher_answer(text)


def test_agent_parse_still_clamps():
    assert parse_answer('{"score": 1.4, "rationale": "great"}') == Answer(1.0, "great")


def test_retries_stop_at_max_attempts_and_keep_the_last_raw_text():
    answers = {
        0: ['{"score": 0.8, "rationale": "ok"}'],
        1: ["garbage", '{"score": "3/10", "rationale": "second try"}'],
        2: ["garbage", "more garbage", "still garbage"],
    }
    asked = []

    def ask(indices, attempt):
        asked.append((indices, attempt))
        return [answers[i][attempt - 1] for i in indices]

    labels = label_with_retries(3, ask, max_attempts=3)
    assert asked == [([0, 1, 2], 1), ([1, 2], 2), ([2], 3)]
    assert [(lb.status, lb.attempts, lb.score) for lb in labels] == [
        ("ok", 1, 0.8), ("ok", 2, 0.3), ("failed", 3, None)
    ]  # fmt: skip
    assert labels[2].raw == "still garbage" and labels[2].rationale is None
