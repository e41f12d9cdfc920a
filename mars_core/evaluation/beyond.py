"""Metrics beyond the query, judged like the rest (ground truth, else the teacher's labels):
what users see, and what they miss.

What fits instead, over the requests where the funnel said nothing fits:

* `alternatives_precision`: of the categories offered, the share that truly fits the room
  (some held-out product of it fits); `alternatives_offered` is how many were offered in all,
  so a precision over none reads as what it is;
* `alternatives_recall`: per request, of the other categories with a fitting held-out product
  (up to `funnel.alternatives` of them: no more can be offered), the share offered; the mean;
* `alternatives_candidates_mean` / `_max`: agent candidates asked per request (the budget,
  `funnel.beyond_budget`, bounds them), and `alternatives_seconds_mean`, the time they added
  (the evaluation decodes no reasons: `bench.beyond_latency` measures them as served).

A room with no query, searched once per held-out room:

* `room_only.precision_at_k` (share of the top k that fit the room) and
  `room_only.fitting_categories_at_k` (distinct categories among those), for each `eval.ks`;
* `room_only.category_recall_at_k`: of the categories with a fitting held-out product, up to
  as many as the top k can show (`k // funnel.per_category`), the share among the top k's
  fits (at most 1);
* `room_only.nothing_shown_while_fits`: the share of rooms where the search says nothing fits
  (and shows only closest options) although some category fits;
* `room_only.all_categories_fit`: the share of rooms whose every shown category fits, with at
  least two shown;
* `room_only.candidates_mean` / `_max` and `room_only.seconds_mean` (the whole search: stage
  2's first cut and the agent).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from mars_core.evaluation.requests import EvalRequest, EvalSet
from mars_core.infra.errors import UserInputError
from mars_core.search.funnel import SearchFunnel, SearchResult
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

    @property
    def fitting(self) -> set[str]:
        """The categories with a fitting (judged) product in this room."""
        return {category for category, fits in self.category_fits.items() if fits}


@dataclass(frozen=True)
class RoomOnlyResult:
    """A room-only search's products (best first), their categories, and what it cost."""

    room: RoomTruth
    keys: list[str]
    categories: list[str]
    nothing_fits: bool = False
    scored: int = 0  # agent candidates asked
    seconds: float = 0.0


@dataclass(frozen=True)
class AlternativesSought:
    """A request where nothing fit the asked category: the categories offered instead, and
    what asking cost."""

    room_id: str
    category: str  # the one asked for
    offered: list[str]
    scored: int = 0  # agent candidates asked
    seconds: float = 0.0


def alternatives_sought(request: EvalRequest, result: SearchResult) -> AlternativesSought | None:
    """What a search offered instead, and what asking cost; None when it sought nothing
    (something fit, or `funnel.alternatives` is 0)."""
    details = result.details.get("alternatives")
    if details is None:
        return None
    offered = [alternative.category for alternative in result.alternatives]
    return AlternativesSought(
        request.room_id, request.category, offered, details["scored"], details["seconds"]
    )


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


def alternatives_metrics(
    sought: list[AlternativesSought], rooms: dict[str, RoomTruth], offerable: int
) -> dict[str, float]:
    """Precision and recall of the categories offered instead (`offerable`:
    `funnel.alternatives`), the candidates asked and the seconds added; a category the set
    never judged in that room counts in neither."""
    judged = [
        rooms[s.room_id].category_fits[category]
        for s in sought
        for category in s.offered
        if category in rooms[s.room_id].category_fits
    ]
    recalls = []
    for s in sought:
        fitting = rooms[s.room_id].fitting - {s.category}
        if fitting and offerable:
            recalls.append(len(fitting & set(s.offered)) / min(len(fitting), offerable))
    return {
        "alternatives_offered": float(len(judged)),
        "alternatives_precision": _mean(judged),
        "alternatives_recall": _mean(recalls),
        **_cost("alternatives_", [s.scored for s in sought], [s.seconds for s in sought]),
    }


def room_only_metrics(
    results: list[RoomOnlyResult], ks: list[int], per_category: int
) -> dict[str, float]:
    """Precision@k, fitting categories@k and category recall@k of room-only searches (up to
    `k // per_category` categories: `funnel.per_category` products each), the share of rooms
    told nothing fits while something does, the share whose every shown category fits, and
    the cost (candidates asked, seconds)."""
    if not results:
        return {}
    metrics: dict[str, float] = {}
    for k in ks:
        precision, categories, recall = [], [], []
        for result in results:
            fitting = _fitting_categories(result, k)
            if fitting is not None:
                precision.append(fitting[0])
                categories.append(len(set(fitting[1])))
            wanted = min(len(result.room.fitting), max(1, k // per_category))
            if result.room.fitting:
                found = set(fitting[1]) if fitting else set()
                recall.append(min(1.0, len(found & result.room.fitting) / wanted))
        metrics[f"room_only.precision_at_{k}"] = _mean(precision)
        metrics[f"room_only.fitting_categories_at_{k}"] = _mean(categories)
        metrics[f"room_only.category_recall_at_{k}"] = _mean(recall)
    metrics["room_only.nothing_shown_while_fits"] = _mean(
        [not result.keys and bool(result.room.fitting) for result in results]
    )
    metrics["room_only.all_categories_fit"] = _mean([all_categories_fit(r) for r in results])
    cost = _cost("room_only.", [r.scored for r in results], [r.seconds for r in results])
    return metrics | cost


def _fitting_categories(result: RoomOnlyResult, k: int) -> tuple[float, list[str]] | None:
    """The top k's precision and the categories of its fitting products; None when the top
    k holds only unjudged products (it says nothing)."""
    grades = result.room.grades
    top = [
        (key, category)
        for key, category in zip(result.keys[:k], result.categories[:k], strict=True)
        if key in grades
    ]
    if not top and result.keys:
        return None
    fitting = [category for key, category in top if grades[key] > 0]
    return (len(fitting) / len(top) if top else 0.0), fitting


def _cost(prefix: str, scored: list[int], seconds: list[float]) -> dict[str, float]:
    """Agent candidates asked per request (mean, max) and seconds (mean)."""
    if not scored:
        return {}
    return {
        f"{prefix}candidates_mean": _mean(scored),
        f"{prefix}candidates_max": float(max(scored)),
        f"{prefix}seconds_mean": _mean(seconds),
    }


def _mean(values: list[float] | list[int] | list[bool]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def all_categories_fit(result: RoomOnlyResult) -> bool:
    """Several categories shown, each judged in the room and fitting it."""
    shown = set(result.categories)
    fits = result.room.category_fits
    return len(shown) >= 2 and all(fits.get(category, False) for category in shown)


def room_only_searches(
    funnel: SearchFunnel, eval_set: EvalSet, max_image_pixels: int, agent: str
) -> Iterator[RoomOnlyResult]:
    """Each room of the set's requests searched with no query, judged by all that is known of
    it (a room a user error stops is passed over: its requests already count it as failed).
    Closest options under "nothing fits" are not shown as fits: such a room shows nothing.
    `agent`: the agent stage's name, whose details count the candidates asked."""
    asked = {request.room_id for request in eval_set.requests}
    for room in room_truths(eval_set.judged or eval_set.requests).values():
        if room.room_id not in asked:
            continue
        try:
            image = load_image(room.room_path, max_image_pixels)
            result = funnel.search(SearchRequest(image, "", room.room_id))
        except UserInputError:
            continue
        shown = [] if result.nothing_fits else result.results
        yield RoomOnlyResult(
            room,
            [c.key for c in shown],
            [str(c.product.get("category")) for c in shown],
            nothing_fits=result.nothing_fits,
            scored=result.details.get(agent, {}).get("scored", 0),
            seconds=sum(result.timings.values()),
        )
