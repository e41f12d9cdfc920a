"""The agent's score as the expected value of what it would write, from digit log-odds.

The answer is forced open as `{"score": 0.`. At the first-digit position only `0` and `1`
are valid (renormalised over those two), giving p(1); at the tenths position the expectation
over `0`..`9` (renormalised) gives E[tenths | "0."]. The score is
p(1) * 1.0 + p(0) * E[tenths] / 10: the expected value of a one-decimal answer (`1.` can only
continue with `0`). The in-process scorer reads the inputs from its logits (at the digits'
token ids, `score_token_ids`), the served agent from a server's `top_logprobs`: both call
`expected_scores`, so they agree by construction.
"""

from __future__ import annotations

from typing import Any

import torch

from mars_core.agent.types import SCORE_PROBE
from mars_core.prompt import ANSWER_PREFIX

DIGITS = 10


def expected_scores(first: torch.Tensor, tenths: torch.Tensor) -> torch.Tensor:
    """Expected scores in [0, 1], one per row.

    `first` is (rows, 2): logits or log-probabilities of `0` and `1` at the first digit;
    `tenths` is (rows, 10): those of `0`..`9` after `0.`. Only differences within a row
    matter (a softmax renormalises), so full-vocabulary log-probabilities and raw logits give
    the same score; `-inf` marks a digit the server did not list (probability 0).
    """
    p_first = first.float().softmax(-1)
    p_tenths = tenths.float().softmax(-1)
    digits = torch.arange(DIGITS, device=tenths.device, dtype=p_tenths.dtype)
    expected_tenths = (p_tenths * digits).sum(-1) / DIGITS
    return (p_first[:, 1] + p_first[:, 0] * expected_tenths).clamp(0, 1)


def score_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids of digits `0`/`1` (first digit) and `0`..`9` (tenths).

    Checks that the tokenizer writes the score as the fast path reads it: each digit one
    token and `SCORE_PROBE` ending in the tokens `0`, `.` right after `ANSWER_PREFIX`.
    """
    digits = [tokenizer.encode(str(d), add_special_tokens=False) for d in range(DIGITS)]
    if any(len(ids) != 1 for ids in digits):
        raise ValueError(
            "the tokenizer does not encode each digit as one token; fast score needs it"
        )
    digit_ids = [ids[0] for ids in digits]
    prefix = tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)
    probe = tokenizer.encode(SCORE_PROBE, add_special_tokens=False)
    dot = tokenizer.encode(".", add_special_tokens=False)
    if probe != [*prefix, digit_ids[0], *dot] or len(dot) != 1:
        raise ValueError(f"the tokenizer splits {SCORE_PROBE!r} unlike the fast score expects")
    return digit_ids[:2], digit_ids
