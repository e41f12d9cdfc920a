"""Metrics beyond the query, judged like the rest (ground truth, else the teacher's labels):

* `alternatives_precision`: of the categories offered instead when nothing fits, the share that
  truly fits the room (some held-out product of it fits); `alternatives_offered` is how many
  were offered in all, so a precision over none reads as what it is;
* for a room with no query, searched once per held-out room: `room_only.precision_at_k` (share
  of the top k that fit the room) and `room_only.fitting_categories_at_k` (distinct categories
  among those that fit), and `room_only.all_categories_fit` (share of rooms whose every shown
  category fits, with at least two shown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from mars_core.evaluation.requests import EvalRequest, EvalSet
from mars_core.infra.errors import UserInputError
from mars_core.search.funnel import SearchFunnel
from mars_core.search.types import SearchRequest
from mars_core.vision.images import load_image


@dataclass(frozen=True)
class RoomTruth:
    """What the set knows of one room: its photo, each judged category's fit, each product's
    grade."""

    room_id: str
    room_path: str
    category_fits: dict[str, bool]
    grades: dict[str, int]


@dataclass(frozen=True)
class RoomOnlyResult:
    """A room-only search's products (best first) and their categories."""

    room: RoomTruth
    keys: list[str]
    categories: list[str]


def room_truths(requests: list[EvalRequest]) -> dict[str, RoomTruth]:
    """Each room of `requests` with the fit of every category judged there and its grades."""
    fits: dict[str, dict[str, bool]] = defaultdict(dict)
    grades: dict[str, dict[str, int]] = defaultdict(dict)
    paths: dict[str, str] = {}
    for request in requests:
        fits[request.room_id][request.category] = request.answerable
        grades[request.room_id] |= request.grades
        paths[request.room_id] = request.room_path
    return {
        room_id: RoomTruth(room_id, paths[room_id], fits[room_id], grades[room_id])
        for room_id in sorted(paths)
    }


def alternatives_metrics(offered: list[tuple[str, list[str]]], rooms: dict[str, RoomTruth]):
    """Precision of the categories offered instead, as (room id, categories) per request;
    a category the set never judged in that room is left out."""
    judged = [
        rooms[room_id].category_fits[category]
        for room_id, categories in offered
        for category in categories
        if category in rooms[room_id].category_fits
    ]
    return {
        "alternatives_offered": float(len(judged)),
        "alternatives_precision": float(sum(judged) / len(judged)) if judged else 0.0,
    }


def room_only_metrics(results: list[RoomOnlyResult], ks: list[int]) -> dict[str, float]:
    """Precision@k and fitting categories@k of room-only searches, and the share of rooms whose
    every shown (judged) category fits."""
    if not results:
        return {}
    metrics: dict[str, float] = {}
    for k in ks:
        precision, categories = [], []
        for result in results:
            grades = result.room.grades
            top = [
                (key, category)
                for key, category in zip(result.keys[:k], result.categories[:k], strict=True)
                if key in grades
            ]
            fitting = [category for key, category in top if grades[key] > 0]
            if top or not result.keys:  # a list of unjudged products says nothing
                precision.append(len(fitting) / len(top) if top else 0.0)
                categories.append(len(set(fitting)))
        metrics[f"room_only.precision_at_{k}"] = _mean(precision)
        metrics[f"room_only.fitting_categories_at_{k}"] = _mean(categories)
    metrics["room_only.all_categories_fit"] = sum(map(all_categories_fit, results)) / len(results)
    return metrics


def _mean(values: list[float] | list[int]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def all_categories_fit(result: RoomOnlyResult) -> bool:
    """Several categories shown, each judged in the room and fitting it."""
    shown = set(result.categories)
    fits = result.room.category_fits
    return len(shown) >= 2 and all(fits.get(category, False) for category in shown)


def room_only_searches(
    funnel: SearchFunnel, eval_set: EvalSet, max_image_pixels: int
) -> Iterator[RoomOnlyResult]:
    """Each room of the set's requests searched with no query, judged by all that is known of
    it (a room a user error stops is passed over: its requests already count it as failed)."""
    asked = {request.room_id for request in eval_set.requests}
    for room in room_truths(eval_set.judged or eval_set.requests).values():
        if room.room_id not in asked:
            continue
        try:
            image = load_image(room.room_path, max_image_pixels)
            result = funnel.search(SearchRequest(image, "", room.room_id))
        except UserInputError:
            continue
        shown = [] if result.nothing_fits else result.results  # closest options, not fits
        categories = [str(c.product.get("category")) for c in shown]
        yield RoomOnlyResult(room, [c.key for c in shown], categories)
