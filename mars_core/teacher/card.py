"""The labels' dataset card: what a reader checks before training on them.

Counts per status, the score histogram, a sample of rationales, the share of look-alikes
(pairs mined because they look right) that the teacher labelled misfits: a teacher that
passes look-alikes as fits would teach the student the very mistake MARS exists to avoid, and,
for the metadata teacher, the pairs whose category or room type its `room_fit` table never
mentions (labelled `score_unknown`): a hole in the table a user fills.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from matplotlib.figure import Figure  # no pyplot: no display backend, no global figure state

from mars_core.config import TeacherConfig
from mars_core.teacher.schema import STATUSES

LOOKALIKE = "lookalike"
HISTOGRAM_BINS = 20


@dataclass
class DatasetCard:
    """Numbers and text of the card; `figure()` draws the histogram."""

    rows: int
    counts: dict[str, int]
    scores: list[float] = field(repr=False)
    lookalikes: int
    lookalike_misfit_share: float | None  # None when no look-alike was labelled
    samples: list[dict[str, str]]  # room_type, category, score, rationale
    unlisted: dict[str, int] = field(default_factory=dict)  # "CATEGORY" / "room type x" -> pairs

    def metrics(self) -> dict[str, float]:
        metrics = {f"labels_{status}": float(n) for status, n in self.counts.items()}
        metrics["labels_total"] = float(self.rows)
        metrics["labels_unlisted"] = float(sum(self.unlisted.values()))
        if self.lookalike_misfit_share is not None:
            metrics["lookalike_misfit_share"] = self.lookalike_misfit_share
        return metrics

    def figure(self) -> Figure:
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.hist(self.scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0), color="#4a78c2")
        ax.set_xlabel("teacher score")
        ax.set_ylabel("pairs")
        ax.set_title(f"{len(self.scores)} labelled pairs (status ok)")
        fig.tight_layout()
        return fig

    def markdown(self) -> str:
        lines = ["# Teacher labels", "", "| status | pairs |", "|---|---|"]
        lines += [f"| {status} | {n} |" for status, n in self.counts.items()]
        share = self.lookalike_misfit_share
        shown = "n/a" if share is None else f"{share:.1%}"
        lines += ["", f"Look-alikes labelled misfits: {shown} of {self.lookalikes}.", ""]
        if self.unlisted:
            lines += [f"{self.unlisted_line()}", ""]
        lines += ["| room type | category | score | rationale |", "|---|---|---|---|"]
        lines += [
            f"| {s['room_type']} | {s['category']} | {s['score']} | {s['rationale']} |"
            for s in self.samples
        ]
        return "\n".join(lines) + "\n"

    def unlisted_line(self) -> str:
        """One line naming what teacher.room_fit never mentions and how many pairs it cost."""
        holes = ", ".join(f"{name} ({n} pairs)" for name, n in self.unlisted.items())
        return (
            f"teacher.room_fit never mentions {holes}: labelled score_unknown; "
            "list them in teacher.room_fit"
        )


def dataset_card(labels: pa.Table, teacher: TeacherConfig, seed: int) -> DatasetCard:
    """The card of a LABELS_SCHEMA table; `teacher.rationale_samples` rationales drawn with
    `seed`, fits counted at `teacher.fit_threshold`."""
    fit_threshold, samples = teacher.fit_threshold, teacher.rationale_samples
    rows = labels.to_pylist()
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    ok = [r for r in rows if r["status"] == "ok"]
    lookalikes = [r for r in ok if r["stratum"] == LOOKALIKE]
    share = None
    if lookalikes:
        share = sum(r["score"] < fit_threshold for r in lookalikes) / len(lookalikes)
    drawn = random.Random(seed).sample(ok, min(samples, len(ok)))
    sample_rows = [
        {
            "room_type": r["room_type"],
            "category": r["category"],
            "score": f"{r['score']:.2f}",
            "rationale": r["rationale"],
        }
        for r in sorted(drawn, key=lambda r: r["pair_id"])
    ]
    scores = [r["score"] for r in ok]
    unlisted = unlisted_pairs(ok, teacher.room_fit) if teacher.kind == "metadata" else {}
    return DatasetCard(len(rows), counts, scores, len(lookalikes), share, sample_rows, unlisted)


def unlisted_pairs(rows: list[dict], room_fit: Mapping[str, list[str]]) -> dict[str, int]:
    """Pairs per room type and per category that `room_fit` never mentions, most first."""
    listed = {category for categories in room_fit.values() for category in categories}
    holes: Counter[str] = Counter()
    for row in rows:
        if row["room_type"] not in room_fit:
            holes[f"room type {row['room_type']}"] += 1
        elif row["category"] not in listed:
            holes[row["category"]] += 1
    return dict(holes.most_common())
