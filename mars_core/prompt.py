"""The one prompt: how a (room, product, query) pair is asked and how the answer is written.

The teacher, the SFT data and the agent all build their chat messages here, so a student is
always scored with exactly the prompt it was trained on. Change anything a model sees (system
text, order of parts, answer format) and bump `PROMPT_VERSION`; every artifact that embeds a
prompt records it.

Message layout (Qwen2-VL chat format, images as `{"type": "image"}` placeholders; the images
themselves go to the processor in `IMAGE_ORDER`):

    system     SYSTEM_PROMPT
    user       [room image] "Query: ...\\n<instruction>\\n" [product image] "Product: ..."
    assistant  {"score": 0.7, "rationale": "<one sentence>"}

Everything a query's candidates have in common comes first (system text, room image, query,
instruction), so that it is one prefix the agent computes once per query; a candidate adds
only its product image and text. Scores are written with one decimal: the agent's fast score
reads exactly those digits from the model's next-token distribution (see
`mars_core.agent.expected_score`).

Training may also ask a room photo alone what kind of room it shows (`room_type_messages`,
`mars_core.training.room_type`); the agent and the teacher never ask it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROMPT_VERSION = "room-fit-v2"

SYSTEM_PROMPT = (
    "You are an interior design assistant. Look at the room and the product. "
    "Judge how well the product fits the room and the query."
)
INSTRUCTION = 'Answer in JSON {"score": 0.0, "rationale": "one sentence"}, score from 0 to 1.'
IMAGE_ORDER = ("room", "product")
ROOM_TYPE_QUESTION = "What kind of room is this?"

SCORE_DECIMALS = 1
# The answer opens with this text; the score's digits follow it directly.
ANSWER_PREFIX = '{"score": '

# The product's description is cut to this many characters: a catalogue row of any length
# costs the model a bounded prompt. Part of the prompt (teacher, SFT data and agent must cut
# alike, so it is no per-run knob): change it and bump PROMPT_VERSION. Ingest's own limits
# (data.max_name_chars, ...) keep the rows it writes under it.
MAX_PRODUCT_CHARS = 1000
# Product fields worth showing the model besides name and category, in this order.
_PRODUCT_ATTRIBUTES = ("color", "material", "style")
# Qwen chat-control and vision markers, which must never come from user or catalogue text.
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")

# A teacher's `score: 0.7` / `**Rationale**: ...` line, when it answers without JSON.
_LABELLED_LINE = re.compile(
    r"^[\s*#>-]*(?P<label>score|rationale)[\s*]*[:=-]\s*(?P<value>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
# A score written as a string: "0.7", "0.7/1", "7/10", "7 / 10".
_FRACTION = re.compile(r"(?P<num>[-+]?\d+(?:\.\d+)?)(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?")


class MalformedAnswerError(ValueError):
    """A model's answer is not the JSON object the prompt asks for."""


@dataclass(frozen=True)
class Answer:
    """A parsed answer: the score clamped to [0, 1] and the one-sentence rationale."""

    score: float
    rationale: str


def product_text(product: Mapping[str, Any]) -> str:
    """The product's description in the prompt: name, category and its known attributes,
    at most `MAX_PRODUCT_CHARS` characters."""
    parts = [f"{product['name']} (category: {product['category']})"]
    parts += [f"{field}: {product[field]}" for field in _PRODUCT_ATTRIBUTES if product.get(field)]
    return "; ".join(parts)[:MAX_PRODUCT_CHARS]


def prompt_messages(query: str, product: str) -> list[dict[str, Any]]:
    """System and user messages for one pair; `product` is `product_text(row)`.

    Pass the images to the processor in `IMAGE_ORDER` (room, then product).
    """
    shared = f"Query: {_plain(query)}\n{INSTRUCTION}\n"
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": shared},
                {"type": "image"},
                {"type": "text", "text": f"Product: {_plain(product)}"},
            ],
        },
    ]


def room_type_messages() -> list[dict[str, Any]]:
    """System and user messages asking what kind of room the one image (the room photo)
    shows: the pair prompt's system text and room image, then `ROOM_TYPE_QUESTION`."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": ROOM_TYPE_QUESTION}],
        },
    ]


def room_type_answer(room_type: str) -> dict[str, Any]:
    """The assistant message naming a room type in words (`living_room`: "living room")."""
    return {"role": "assistant", "content": [{"type": "text", "text": room_type.replace("_", " ")}]}


def format_score(score: float) -> str:
    """The score as the answer writes it: clamped to [0, 1], `SCORE_DECIMALS` decimals."""
    return f"{_clamp(score):.{SCORE_DECIMALS}f}"


def answer_text(score: float, rationale: str) -> str:
    """The assistant's answer for a (score, rationale) label, e.g. SFT targets and teachers."""
    sentence = json.dumps(" ".join(rationale.split()), ensure_ascii=False)
    return f"{_before_rationale(score)}{sentence}}}"


def answer_opening(score: float) -> str:
    """An answer up to the first character of its rationale, for a score already known: the
    agent that explains its top candidates forces this and writes only the sentence."""
    return f'{_before_rationale(score)}"'


def answer_openings(scores: Sequence[float] | None, n: int) -> list[str]:
    """What each of `n` answers opens with: its known score written out, or nothing."""
    if scores is None:
        return [""] * n
    if len(scores) != n:
        raise ValueError(f"{len(scores)} scores for {n} products")
    return [answer_opening(score) for score in scores]


def _before_rationale(score: float) -> str:
    return f'{ANSWER_PREFIX}{format_score(score)}, "rationale": '


def answer_message(score: float, rationale: str) -> dict[str, Any]:
    """The assistant message holding `answer_text` (the SFT completion)."""
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": answer_text(score, rationale)}],
    }


def parse_answer(text: str) -> Answer:
    """Read the first JSON object with `score` and `rationale` in a model's output.

    Tolerates what chat models add around JSON (code fences, a lead-in sentence, other JSON,
    trailing text) and a score written as a string. Out-of-range scores are clamped to
    [0, 1]. Raises `MalformedAnswerError` naming what is missing otherwise.
    """
    obj = _answer_object(text)
    if obj is None:
        raise MalformedAnswerError(f"no JSON object in answer {_preview(text)}")
    if "score" not in obj or "rationale" not in obj:
        raise MalformedAnswerError(f"answer lacks 'score' or 'rationale': {_preview(text)}")
    score = _as_number(obj["score"])
    if score is None:
        raise MalformedAnswerError(f"score {obj['score']!r} is not a number in [0, 1]")
    rationale = obj["rationale"]
    if not isinstance(rationale, str):
        raise MalformedAnswerError(f"rationale {rationale!r} is not a string")
    return Answer(score=_clamp(score), rationale=" ".join(rationale.split()))


def try_parse_answer(text: str) -> Answer | None:
    """`parse_answer`, or None when the answer is malformed (callers count these)."""
    try:
        return parse_answer(text)
    except MalformedAnswerError:
        return None


def parse_teacher_answer(text: str) -> Answer:
    """Read a teacher's answer strictly: a label is only kept when it is clearly meant.

    Takes what real chat models write: the JSON anywhere in the text (code fences, lead-in),
    a score as a number or a string such as "0.7", "0.7/1" or "7/10", and, without any JSON,
    labelled lines such as `score: 0.7` and `rationale: ...`. Unlike `parse_answer` (the
    agent's, which clamps) it refuses a score outside [0, 1], a missing score and an empty
    rationale, raising `MalformedAnswerError` naming which: a teacher's mistake must become a
    retry or a `failed` row, never a silently bent label.
    """
    obj = _answer_object(text)
    if obj is None or "score" not in obj:
        obj = _labelled_fields(text)
    if "score" not in obj:
        raise MalformedAnswerError(f"no score in answer {_preview(text)}")
    score = _as_fraction(obj["score"])
    if score is None:
        raise MalformedAnswerError(f"score {obj['score']!r} is not a number")
    if not 0.0 <= score <= 1.0:
        raise MalformedAnswerError(f"score {obj['score']!r} is outside [0, 1]")
    rationale = obj.get("rationale")
    if not isinstance(rationale, str) or not rationale.strip():
        raise MalformedAnswerError(f"empty or missing rationale in answer {_preview(text)}")
    return Answer(score=score, rationale=" ".join(rationale.split()))


def _answer_object(text: str) -> dict[str, Any] | None:
    """The first JSON object holding a score, else the first JSON object, else None."""
    decoder = json.JSONDecoder()
    objects = []
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            if "score" in obj:
                return obj
            objects.append(obj)
    return objects[0] if objects else None


def _labelled_fields(text: str) -> dict[str, str]:
    """`score: 0.7` / `Rationale - ...` lines (markdown emphasis allowed), for answers without
    JSON; the first of each label wins."""
    fields: dict[str, str] = {}
    for match in _LABELLED_LINE.finditer(text):
        fields.setdefault(match["label"].lower(), match["value"].strip().strip("*\"'"))
    return fields


def _as_fraction(value: Any) -> float | None:
    """A number, or a string "0.7", "0.7/1" or "7/10" (a score out of its denominator)."""
    if isinstance(value, str):
        match = _FRACTION.fullmatch(value.strip())
        if match is None:
            return None
        denominator = float(match["den"]) if match["den"] else 1.0
        if denominator <= 0:
            return None
        return float(match["num"]) / denominator
    return _as_number(value)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _plain(text: str) -> str:
    """User and catalogue text with chat-control markers (`<|image_pad|>`, `<|im_end|>`, ...)
    removed: the processor would read them as real special tokens, breaking the prompt."""
    return " ".join(_SPECIAL_TOKEN.sub(" ", text).split())


def _clamp(score: float) -> float:
    return min(1.0, max(0.0, float(score)))


def _preview(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")
