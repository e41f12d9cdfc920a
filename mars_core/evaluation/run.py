"""One evaluation: the set, every configuration, the files a person reads, the promotion call."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from mars_core.agent.ordering import AUTO
from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import (
    Configuration,
    ConfigurationResult,
    configurations,
    run_configuration,
)
from mars_core.evaluation.agreement import pair_specs
from mars_core.evaluation.metrics import metric_key
from mars_core.evaluation.promotion import PromotionDecision, decide
from mars_core.evaluation.reference import add_ceiling_gaps, reference_rows
from mars_core.evaluation.report import (
    judged_by,
    markdown_table,
    plot_metrics,
    plot_reliability,
    write_page,
    write_table,
)
from mars_core.evaluation.requests import EVAL_SET_FILE, build_eval_set
from mars_core.evaluation.versions import mark_stopped_by_time, order_candidate
from mars_core.index.store import IndexSnapshot
from mars_core.infra.io import atomic_write_parquet
from mars_core.infra.registry import CANDIDATE, CHAMPION, alias_version, registry_uri

EVAL_DIR = "eval"


@dataclass
class EvaluationReport:
    """Every configuration's result, the files written and the promotion decision."""

    results: list[ConfigurationResult]
    source: str  # where the judgments came from: ground_truth or teacher
    reference: str  # what student scores were compared with: teacher, ground_truth or none
    requests: int
    teacher: str  # the teacher's name, for the line that says who judged
    files: dict[str, str] = field(default_factory=dict)  # artifact name -> path
    decision: PromotionDecision | None = None

    @property
    def judged_by(self) -> str:
        """Who judged the numbers, in words: every table, page and summary starts with it."""
        return judged_by(self.source, self.teacher, self.requests)

    def summary(self, headline: list[str]) -> str:
        """What `python -m flows.evaluate` ends with; the page to open comes last."""
        lines = ["", self.judged_by, "", markdown_table(self.results, headline)]
        if self.decision is not None:
            lines.append(f"promotion: {json.dumps(dataclasses.asdict(self.decision))}")
        lines.append(f"table and plots: {', '.join(self.files.values())}")
        lines.append(f"open in a browser: {self.files['page']}")
        return "\n".join(lines)


def check_inputs(cfg: MarsConfig) -> None:
    """Fail before any model loads: the index must exist (its error names the command)."""
    IndexSnapshot.current(cfg.index.dir)


def evaluate(cfg: MarsConfig) -> EvaluationReport:
    """Run every configuration of `cfg.eval` over the held-out set and decide promotion."""
    check_inputs(cfg)
    data_dir = Path(cfg.data.out_dir)
    out_dir = Path(cfg.paths.artifacts) / EVAL_DIR
    eval_set = build_eval_set(data_dir, cfg.eval, cfg.index.vocabulary, seed=cfg.seed)
    specs, reference = pair_specs(data_dir, eval_set, max_pairs=cfg.eval.max_pairs, seed=cfg.seed)
    versions = {
        alias: alias_version(cfg.student.registry, alias) for alias in (CANDIDATE, CHAMPION)
    }
    adapters = _adapters(cfg, versions)
    if versions[CANDIDATE] is not None and cfg.funnel.order == AUTO:
        order_candidate(cfg, registry_uri(cfg.student.registry, CANDIDATE))
    runs = configurations(cfg.eval.ablations, adapters)
    results = [run_configuration(cfg, eval_set, run, specs) for run in runs]
    results += reference_rows(cfg, eval_set)
    add_ceiling_gaps(results, metric_key(cfg.eval.primary_metric))
    report = EvaluationReport(
        results, eval_set.source, reference, len(eval_set.requests), cfg.teacher.name
    )
    mark_stopped_by_time(results)
    report.files = _write_files(cfg, report, eval_set.table(), out_dir)
    if cfg.eval.promote:
        report.decision = decide(
            results,
            model=cfg.student.registry,
            primary_metric=cfg.eval.primary_metric,
            margin=cfg.eval.promotion_margin,
            candidate_version=versions[CANDIDATE],
            champion_version=versions[CHAMPION],
        )
    return report


def _adapters(cfg: MarsConfig, versions: dict[str, int | None]) -> list[str]:
    """`eval.adapters`, plus the registry's candidate and champion when promotion is on."""
    adapters = list(cfg.eval.adapters)
    if cfg.eval.promote and versions[CANDIDATE] is not None:
        for alias in (CHAMPION, CANDIDATE):
            uri = registry_uri(cfg.student.registry, alias)
            if versions[alias] is not None and uri not in adapters:
                adapters.append(uri)
    return adapters


def _write_files(cfg: MarsConfig, report: EvaluationReport, eval_table, out_dir: Path) -> dict:
    files = {
        "eval_set": atomic_write_parquet(out_dir / EVAL_SET_FILE, eval_table),
        "table": write_table(report.results, report.judged_by, out_dir / "ablation.md"),
        "metrics_plot": plot_metrics(
            report.results,
            [metric_key(m) for m in cfg.eval.measures]
            + [f"context_violation_at_{min(cfg.eval.ks)}", "abstain_nofit", "abstain_answerable"],
            out_dir / "metrics.png",
        ),
    }
    scored = {r.configuration.name: r.pairs for r in report.results if r.pairs}
    if scored:
        files["reliability_plot"] = plot_reliability(
            scored, cfg.eval.reliability_bins, report.reference, out_dir / "reliability.png"
        )
    files["page"] = write_page(report.results, report.judged_by, files, out_dir / "evaluation.html")
    return {name: str(path) for name, path in files.items()}


__all__ = ["Configuration", "EvaluationReport", "check_inputs", "evaluate"]
