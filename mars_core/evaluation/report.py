"""What a person reads of an evaluation: the ablation table (markdown), two plots and a page,
each headed by who judged the numbers (the ground truth, or the teacher: then they measure
agreement with the teacher, not with the truth)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mars_core.evaluation.ablation import ConfigurationResult
from mars_core.evaluation.agreement import ScoredPair
from mars_core.infra.io import atomic_write_text

TABLE_COLUMNS_FIRST = ("nDCG_at_10", "R_at_5", "R_at_20", "RR")
# What a funnel offers beyond the query (evaluation/beyond.py): a table of their own, one row
# per metric, one column per configuration that measured them (those with the agent).
BEYOND_PREFIXES = ("alternatives_", "room_only.")
BEYOND_TITLE = "Beyond the query"
# The column that says who decides each row's order (the student, a reference judge, ...).
RANKED_BY = "ranked by"


def table_columns(results: list[ConfigurationResult]) -> list[str]:
    """Ranking measures first, then ours, then student-vs-reference, in a stable order (the
    metrics beyond the query have their own table)."""
    keys = {key for r in results for key in r.metrics if not key.startswith(BEYOND_PREFIXES)}
    first = [k for k in TABLE_COLUMNS_FIRST if k in keys]
    return first + sorted(keys - set(first))


def markdown_table(results: list[ConfigurationResult], columns: list[str] | None = None) -> str:
    """One row per configuration, one column per metric (blank where it does not apply);
    every metric unless `columns` names the ones to show."""
    columns = columns or table_columns(results)
    return _markdown(["configuration", RANKED_BY, *columns], _rows(results, columns))


def beyond_table(results: list[ConfigurationResult]) -> tuple[list[str], list[list[str]]]:
    """The metrics beyond the query, one row each, by configuration; no rows when none ran."""
    measured = [r for r in results if any(k.startswith(BEYOND_PREFIXES) for k in r.metrics)]
    keys = sorted({k for r in measured for k in r.metrics if k.startswith(BEYOND_PREFIXES)})
    rows = [[key, *(_cell(r.metrics.get(key)) for r in measured)] for key in keys]
    return ["metric", *(_name(r) for r in measured)], rows


def judged_by(source: str, teacher: str, requests: int) -> str:
    """The line every evaluation table, page and summary starts with."""
    if source == "ground_truth":
        return f"Evaluation on {requests} held-out requests, judged by the ground truth"
    return (
        f"Evaluation on {requests} held-out requests, judged by the teacher ({teacher}): "
        "these numbers measure agreement with the teacher, not with the truth"
    )


def write_table(results: list[ConfigurationResult], title: str, path: Path) -> Path:
    text = f"# {title}\n\n{markdown_table(results)}"
    header, rows = beyond_table(results)
    if rows:
        text += f"\n## {BEYOND_TITLE}\n\n{_markdown(header, rows)}"
    return atomic_write_text(path, text)


def write_page(
    results: list[ConfigurationResult], title: str, files: dict[str, Path], path: Path
) -> Path:
    """The tables as HTML under its title, then the plots beside them (same folder)."""
    columns = table_columns(results)
    tables = _html(["configuration", RANKED_BY, *columns], _rows(results, columns))
    header, rows = beyond_table(results)
    if rows:
        tables += f"<h2>{BEYOND_TITLE}</h2>{_html(header, rows)}"
    plots = "".join(
        f'<p><img src="{escape(files[name].name)}" alt="{name}"></p>'
        for name in ("metrics_plot", "reliability_plot")
        if name in files
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:right}}
td.words{{text-align:left;white-space:nowrap}}
</style></head>
<body><h1>{escape(title)}</h1>
{tables}{plots}</body></html>
"""
    return atomic_write_text(path, page)


def plot_metrics(results: list[ConfigurationResult], metrics: list[str], path: Path) -> Path:
    """Grouped bars: each metric by configuration."""
    names = [r.configuration.name for r in results]
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(metrics) * len(names) / 3), 4))
    width = 0.8 / max(len(names), 1)
    for i, result in enumerate(results):
        positions = [m + i * width for m in range(len(metrics))]
        values = [result.metrics.get(metric, 0.0) for metric in metrics]
        axes.bar(positions, values, width, label=names[i])
    axes.set_xticks([m + width * (len(names) - 1) / 2 for m in range(len(metrics))], metrics)
    axes.set_ylim(0, 1)
    axes.set_title("metric by configuration")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_reliability(
    pairs_by_name: dict[str, list[ScoredPair]], bins: int, reference: str, path: Path
) -> Path:
    """Mean reference score per bin of student score; the diagonal is perfect calibration."""
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    for name, pairs in pairs_by_name.items():
        centres, means = reliability_curve(pairs, bins)
        axes.plot(centres, means, marker="o", label=name)
    axes.set_xlabel("student score (fast)")
    axes.set_ylabel(f"mean {reference} score")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title("reliability: student vs " + reference)
    axes.legend(fontsize="small")
    return _save(figure, path)


def reliability_curve(pairs: list[ScoredPair], bins: int) -> tuple[list[float], list[float]]:
    """Centres of the non-empty bins of student score and the mean reference in each."""
    totals: dict[int, list[float]] = {}
    for pair in pairs:
        totals.setdefault(min(int(pair.fast * bins), bins - 1), []).append(pair.reference)
    ordered = sorted(totals)
    return [(b + 0.5) / bins for b in ordered], [sum(totals[b]) / len(totals[b]) for b in ordered]


def _rows(results: list[ConfigurationResult], columns: list[str]) -> list[list[str]]:
    return [
        [_name(r), r.configuration.ranked_by, *(_cell(r.metrics.get(c)) for c in columns)]
        for r in results
    ]


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_cell(cell: str) -> str:
    """A cell, numbers right-aligned and words (names, who ranked a row) left, unbroken."""
    try:
        float(cell or "0")
    except ValueError:
        return f'<td class="words">{escape(cell)}</td>'
    return f"<td>{escape(cell)}</td>"


def _name(result: ConfigurationResult) -> str:
    name = result.configuration.name
    return f"{name} ({result.note})" if result.note else name


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(figure)
    tmp.replace(path)
    return path
