"""What a step left out, and why: a product whose image would not load (index build, visual
tokens, the agent stage), a room that could not be mined. Such items are reported, never
dropped silently, and in one shape everywhere: the index and mining reports (and their JSON),
the search result and its API, the command output and the results page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Skipped:
    """One item left out: what it was, why, and the particulars."""

    key: str  # what: a product key or a room id
    reason: str  # why, short enough to count by: the error's type ("BadImageError") or a phrase
    detail: str = ""  # the error's message: which file, what is wrong

    @classmethod
    def because(cls, key: str, error: Exception) -> Skipped:
        """`key` left out for `error`: its type is the reason, its message the detail."""
        return cls(key, type(error).__name__, str(error))

    def __str__(self) -> str:
        """`key: reason: detail` (or `key: reason`): one line for logs and command output."""
        return ": ".join(part for part in (self.key, self.reason, self.detail) if part)
