"""Student vs teacher on held-out pairs, and the student's fast score vs its generated one.

The reference score of a pair is the teacher's label (`heldout_labels.parquet`) when there is
one; on the generated world without labels it is the ground-truth grade / 3, and the run says
which (`reference`). The fast score is the agent's one-forward-pass expected score; the
generated score is the one written in a generated answer (None when the answer is malformed).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from scipy.stats import spearmanr
from tqdm import tqdm

from mars_core.agent.types import ProductView, Scorer
from mars_core.catalogue.schema import CATALOGUE_FILE, GROUND_TRUTH_FILE
from mars_core.evaluation.requests import TOP_GRADE, EvalSet
from mars_core.infra.errors import UserInputError
from mars_core.prompt import product_text
from mars_core.teacher.schema import HELDOUT_LABELS_FILE
from mars_core.vision.images import load_image


@dataclass(frozen=True)
class PairSpec:
    """A held-out (room, product) pair with its reference score."""

    room_path: str
    query: str
    product: dict
    reference: float


@dataclass(frozen=True)
class ScoredPair:
    reference: float
    fast: float
    generated: float | None


def pair_specs(
    data_dir: Path, eval_set: EvalSet, *, max_pairs: int, seed: int
) -> tuple[list[PairSpec], str]:
    """Up to `max_pairs` held-out pairs and the name of their reference ("teacher", ...)."""
    if max_pairs == 0:
        return [], "none"
    products = {
        row["key"]: row
        for row in pq.read_table(data_dir / CATALOGUE_FILE).to_pylist()
        if row["key"] in eval_set.test_keys
    }
    by_request = {(r.room_id, r.category): r for r in eval_set.requests}
    labels = data_dir / HELDOUT_LABELS_FILE
    if labels.is_file():
        rows = [
            (row["room_id"], row["key"], float(row["score"]))
            for row in pq.read_table(labels).to_pylist()
            if row["status"] == "ok"
        ]
        reference = "teacher"
    elif (data_dir / GROUND_TRUTH_FILE).is_file():
        rows = [
            (r.room_id, key, grade / TOP_GRADE)
            for r in eval_set.requests
            for key, grade in r.grades.items()
        ]
        reference = "ground_truth"
    else:
        return [], "none"
    specs = []
    for room_id, key, score in rows:
        request = by_request.get((room_id, products.get(key, {}).get("category")))
        if request is not None:
            specs.append(PairSpec(request.room_path, request.query, products[key], score))
    rng = random.Random(seed)
    return sorted(rng.sample(specs, min(max_pairs, len(specs))), key=_group), reference


def score_pairs(scorer: Scorer, specs: list[PairSpec], max_pixels: int) -> list[ScoredPair]:
    """Fast and generated scores of each pair, one batch per (room, query)."""
    groups: dict[tuple[str, str], list[PairSpec]] = defaultdict(list)
    for spec in specs:
        groups[_group(spec)].append(spec)
    scored: list[ScoredPair] = []
    for (room_path, query), group in tqdm(groups.items(), desc="pairs", unit="room"):
        try:
            room = load_image(room_path, max_pixels)
            views = [_view(spec.product, max_pixels) for spec in group]
        except UserInputError:
            continue
        fast = scorer.score(room, query, views)
        answers = scorer.generate(room, query, views)
        scored += [
            ScoredPair(spec.reference, score, answer.answer.score if answer.answer else None)
            for spec, score, answer in zip(group, fast, answers, strict=True)
        ]
    return scored


def agreement_metrics(pairs: list[ScoredPair], fit_threshold: float) -> dict[str, float]:
    """Spearman, MAE and fit agreement with the reference; Spearman of fast vs generated."""
    if not pairs:
        return {}
    reference = [p.reference for p in pairs]
    fast = [p.fast for p in pairs]
    metrics = {
        "pairs": float(len(pairs)),
        "student_spearman": _spearman(fast, reference),
        "student_mae": sum(abs(f - r) for f, r in zip(fast, reference, strict=True)) / len(pairs),
        "student_fit_agreement": sum(
            (f >= fit_threshold) == (r >= fit_threshold)
            for f, r in zip(fast, reference, strict=True)
        )
        / len(pairs),
    }
    generated = [(p.fast, p.generated) for p in pairs if p.generated is not None]
    metrics["generated_parsed"] = len(generated) / len(pairs)
    metrics["fast_vs_generated_spearman"] = (
        _spearman(*zip(*generated, strict=True)) if generated else 0.0
    )
    return metrics


def _spearman(a, b) -> float:
    """Spearman's rho; 0 when either side is constant (rho is undefined there)."""
    if len(set(a)) < 2 or len(set(b)) < 2:
        return 0.0
    return float(spearmanr(a, b).statistic)


def _group(spec: PairSpec) -> tuple[str, str]:
    return (spec.room_path, spec.query)


def _view(product: dict, max_pixels: int) -> ProductView:
    image = load_image(product["image_path"], max_pixels)
    return ProductView(image=image, text=product_text(product))
