"""Does the tiny recipe learn on every world? One run per world draw and room count.

    python -m bench.learning --worlds 0 1 2 --rooms 24 6 [--jobs 2] [--write] [-- overrides...]

(`--` ends the lists: `--rooms 24 data=shared_types` would read the override as a room count.)

A run is one draw of the generated world (`seed=<draw>`: the world, the validation split,
mining and the training seed all follow it) with `data.world.rooms_per_type=<rooms>`, in a
folder of its own under `paths.artifacts`/learning: ingest, index, mining and both
labellings run there, then the train flow registers a student in a registry of its own
(`learning-w<draw>-r<rooms>`) and the evaluate flow measures it on that world's held-out
rooms, judged by its ground truth (the truth is read for evaluation only). Prints each run's
headline row, then per room count mean / min / max of every headline metric and how often
each target held, and writes that table into bench/RESULTS.md (`--write`) between its markers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

FUNNEL = "bm25+siglip+agent@candidate"
STAGE2 = "bm25+siglip"
FIT_KNOWN = "fit known on bm25+siglip"
FIT_AND_COLOUR = "fit and colour known on bm25+siglip"
ANSWERABLE = "answerable.nDCG_at_10"
MARKER = "<!-- bench.learning -->"
RESULTS = Path(__file__).with_name("RESULTS.md")
# Room photos per type at which the funnel must come within this of `fit known` (issue: a
# realistic catalogue's start; with fewer photos the room types are still being learnt).
CEILING_ROOMS = 24
CEILING_MARGIN = 0.02


@dataclass(frozen=True)
class Run:
    """One world draw's trained funnel, and the reference rows it is judged against."""

    draw: int
    rooms: int
    funnel: dict[str, float]
    stage2: dict[str, float]
    fit_known: dict[str, float]
    fit_and_colour: dict[str, float]
    steps: int
    minutes: float


# The trained funnel's targets (README, Results), each judged on one run (None: not at its
# room count).
TARGETS = {
    "context violation@5 <= 0.05": lambda r: r.funnel["context_violation_at_5"] <= 0.05,
    "abstains on >= 0.80 of no-fit requests": lambda r: r.funnel["abstain_nofit"] >= 0.80,
    "abstains on <= 0.10 of answerable ones": lambda r: r.funnel["abstain_answerable"] <= 0.10,
    "answerable nDCG@10 >= [bm25, siglip]'s": lambda r: (
        r.funnel[ANSWERABLE] >= r.stage2[ANSWERABLE]
    ),
    f"answerable nDCG@10 >= fit known's - {CEILING_MARGIN} (at {CEILING_ROOMS} rooms)": lambda r: (
        _near_ceiling(r)
    ),
}


def _near_ceiling(run: Run) -> bool | None:
    """Within `CEILING_MARGIN` of fit known; None at another room count than CEILING_ROOMS."""
    if run.rooms != CEILING_ROOMS:
        return None
    return run.funnel[ANSWERABLE] >= run.fit_known[ANSWERABLE] - CEILING_MARGIN


# Reference rows shown beside each run: their answerable nDCG@10.
REFERENCE_COLUMNS = {
    "fit known answerable": lambda r: r.fit_known,
    "fit and colour known answerable": lambda r: r.fit_and_colour,
}


def run_overrides(base: list[str], draw: int, rooms: int, root: str) -> list[str]:
    """One run's overrides: its world draw, its room count, its folder and its registry."""
    return [
        *base,
        f"seed={draw}",
        f"data.world.rooms_per_type={rooms}",
        f"paths.artifacts={root}/w{draw}-r{rooms}",
        f"student.registry=learning-w{draw}-r{rooms}",
    ]


def run_world(draw: int, rooms: int, base: list[str], root: str) -> Run:
    """Make one world draw's data, train a student on it and evaluate it there."""
    setup_runtime()
    from flows.evaluate import evaluate
    from flows.index import build_index
    from flows.ingest import ingest
    from flows.mining import mining
    from flows.pipeline import label_both
    from flows.train import train

    overrides = run_overrides(base, draw, rooms, root)
    started = time.monotonic()
    for step in (ingest, build_index, mining, label_both):
        step(overrides)
    summary = train(overrides=overrides)
    report = evaluate(overrides)
    rows = {r.configuration.name: r.metrics for r in report.results}
    minutes = (time.monotonic() - started) / 60
    print(
        f"world {draw}, {rooms} rooms/type: {summary.training.steps} steps, stopped by "
        f"{summary.training.stopped_by}, {minutes:.1f} min"
    )
    return Run(
        draw,
        rooms,
        rows[FUNNEL],
        rows[STAGE2],
        rows[FIT_KNOWN],
        rows[FIT_AND_COLOUR],
        summary.training.steps,
        minutes,
    )


def summary_table(runs: list[Run], headline: list[str]) -> str:
    """Per run, then per room count mean / min / max of every headline metric; the targets."""
    columns = [*headline, *REFERENCE_COLUMNS]
    lines = [
        "| world | rooms/type | " + " | ".join(columns) + " | minutes |",
        "|---:|---:|" + "---:|" * (len(columns) + 1),
    ]
    for run in runs:
        cells = [_cell(lambda v: v[0], _values([run], m)) for m in columns]
        row = f"| {run.draw} | {run.rooms} | " + " | ".join(cells) + f" | {run.minutes:.1f} |"
        lines.append(row)
    for rooms in sorted({r.rooms for r in runs}, reverse=True):
        group = [r for r in runs if r.rooms == rooms]
        for name, pick in (("mean", statistics.fmean), ("min", min), ("max", max)):
            cells = [_cell(pick, _values(group, m)) for m in columns]
            lines.append(f"| {name} | {rooms} | " + " | ".join(cells) + " | |")
    lines.append("")
    for target, holds in TARGETS.items():
        judged = [held for held in map(holds, runs) if held is not None]
        lines.append(f"* {target}: holds on {sum(judged)} of {len(judged)} runs")
    lines.append(colour_learnt(runs))
    return "\n".join(lines) + "\n"


def colour_learnt(runs: list[Run]) -> str:
    """The issue's mark that colour is learnt: at `CEILING_ROOMS` rooms, the mean answerable
    nDCG@10 over the draws at least `CEILING_MARGIN` over the mean fit-known one."""
    at = [r for r in runs if r.rooms == CEILING_ROOMS]
    if not at:
        return f"* colour learnt: no run at {CEILING_ROOMS} rooms"
    funnel = statistics.fmean(r.funnel[ANSWERABLE] for r in at)
    ceiling = statistics.fmean(r.fit_known[ANSWERABLE] for r in at)
    verdict = "holds" if funnel >= ceiling + CEILING_MARGIN else "does not hold"
    return (
        f"* colour learnt (mean answerable nDCG@10 >= fit known's + {CEILING_MARGIN} at "
        f"{CEILING_ROOMS} rooms): {funnel:.3f} against {ceiling:.3f}, {verdict}"
    )


def _values(runs: list[Run], metric: str) -> list[float]:
    """A metric of each run's funnel (or a reference row's answerable nDCG@10), where the run
    has it."""
    if metric in REFERENCE_COLUMNS:
        return [REFERENCE_COLUMNS[metric](r)[ANSWERABLE] for r in runs]
    return [r.funnel[metric] for r in runs if metric in r.funnel]


def _cell(pick, values: list[float]) -> str:
    """`pick` of the values (mean, min, max, the one), blank where the row has none."""
    return f"{pick(values):.3f}" if values else ""


def write_results(table: str, header: str) -> None:
    """Replace the text between the markers in RESULTS.md (or append it with them)."""
    text = RESULTS.read_text()
    block = f"{MARKER}\n{header}\n\n{table}{MARKER}"
    if text.count(MARKER) == 2:
        before, _, rest = text.partition(MARKER)
        _, _, after = rest.partition(MARKER)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2], help="world draws")
    parser.add_argument(
        "--rooms", type=int, nargs="+", default=[24, 6], help="room photos per room type"
    )
    parser.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once (training takes one CPU thread each)"
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides for every flow")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.app.compose import load_config

    started = time.monotonic()
    cfg = load_config(args.overrides)
    root = str(Path(cfg.paths.artifacts) / "learning")
    plan = [(draw, rooms) for rooms in args.rooms for draw in args.worlds]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(
            pool.map(
                run_world,
                [draw for draw, _ in plan],
                [rooms for _, rooms in plan],
                [args.overrides] * len(plan),
                [root] * len(plan),
            )
        )
    table = summary_table(runs, cfg.eval.headline)
    print(table)
    if args.write:
        minutes = (time.monotonic() - started) / 60
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        worlds, rooms = " ".join(map(str, args.worlds)), " ".join(map(str, args.rooms))
        extra = " " + " ".join(args.overrides) if args.overrides else ""
        header = (
            f"## Learning on every world (`python -m bench.learning --worlds {worlds} --rooms "
            f"{rooms} --jobs {args.jobs}{extra}`), {when}, {minutes:.0f} min in all"
        )
        write_results(table, header)


if __name__ == "__main__":
    main()
