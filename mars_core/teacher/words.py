"""Whole words and phrases found in listing text: the setting words and colour words the
offline teacher reads, matched the same way."""

from __future__ import annotations

import re


def phrase(text: str) -> str:
    """`text` as a phrase is compared: lower case, single spaces."""
    return " ".join(text.lower().split())


def word_pattern(words: list[str]) -> re.Pattern[str] | None:
    """Whole words or phrases, case-insensitive, longest first (so `indoor use only` wins over
    `indoor`); None for no words."""
    phrases = sorted({phrase(w) for w in words if w.strip()}, key=len, reverse=True)
    if not phrases:
        return None
    alternatives = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in phrases)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)
