"""The `Teacher` contract: labelling requests in, one `Label` per request out, in order.

A teacher never raises for one bad pair: an answer that cannot be parsed is asked again (up to
`teacher.max_attempts`) and then returned with status `failed` and its raw text, so a run
never crashes and never drops a pair silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mars_core.prompt import MalformedAnswerError, parse_teacher_answer


@dataclass(frozen=True)
class LabelRequest:
    """One pair as a teacher sees it: the pair row, its room photo and its catalogue row."""

    pair: Mapping[str, Any]  # a PAIRS_SCHEMA row
    room_path: str  # rooms.parquet `path`
    product: Mapping[str, Any]  # a CATALOGUE_SCHEMA row


@dataclass(frozen=True)
class Label:
    """A teacher's verdict on one pair (the label columns of LABELS_SCHEMA)."""

    score: float | None
    rationale: str | None
    raw: str
    status: str  # "ok" or "failed"
    attempts: int


class Teacher(ABC):
    """Labels pairs; `name` and `PROMPT_VERSION` go into every label row."""

    name: str

    @abstractmethod
    def label(self, requests: Sequence[LabelRequest]) -> list[Label]:
        """One label per request, in the same order."""

    def close(self) -> None:  # noqa: B027 (most teachers hold nothing to release)
        """Release what the teacher holds (clients, models); labelling calls it when done."""


# Answers for the requests at `indices`, asked as attempt number `attempt` (1-based).
AskFn = Callable[[list[int], int], list[str]]


def label_with_retries(count: int, ask: AskFn, max_attempts: int) -> list[Label]:
    """Ask for all `count` answers, re-ask the unparseable ones, give up after `max_attempts`.

    A model teacher's whole retry policy lives here, so every backend counts attempts and
    records failures the same way.
    """
    labels: list[Label | None] = [None] * count
    pending = list(range(count))
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        answers = ask(pending, attempt)
        still_pending = []
        for index, raw in zip(pending, answers, strict=True):
            try:
                answer = parse_teacher_answer(raw)
            except MalformedAnswerError:
                if attempt == max_attempts:
                    labels[index] = Label(None, None, raw, "failed", attempt)
                else:
                    still_pending.append(index)
                continue
            labels[index] = Label(answer.score, answer.rationale, raw, "ok", attempt)
        pending = still_pending
    # Every index is settled by the last attempt: an ok label or a failed one.
    return [label for label in labels if label is not None]
