"""Does the tiny recipe learn on every seed? Train and evaluate once per seed, same data.

    python -m bench.learning --seeds 0 1 2 [--jobs 2] [--write] [hydra overrides...]

The generated world, indexes, mined pairs and teacher labels are `make demo`'s (the pipeline
runs first where they are missing); then, per seed, the train flow
(`train.seed=<seed>`) registers a student in a registry of its own (`learning-seed<seed>`) and
the evaluate flow measures it on the held-out rooms, judged by the generated world's ground
truth (the evaluation's reference rows, `teacher:*` and `fit known`, are the same every seed).
Prints each seed's headline row, then mean / min / max of every headline metric of the
trained funnel and how often each target held, and writes that table into bench/RESULTS.md
(`--write`) between its markers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

FUNNEL = "bm25+siglip+agent@candidate"
STAGE2 = "bm25+siglip"
MARKER = "<!-- bench.learning -->"
RESULTS = Path(__file__).with_name("RESULTS.md")
# The trained funnel's targets (README, Results), each judged on one seed's funnel and
# stage-2 rows.
TARGETS = {
    "context violation@5 <= 0.05": lambda m, s2: m["context_violation_at_5"] <= 0.05,
    "abstains on >= 0.80 of no-fit requests": lambda m, s2: m["abstain_nofit"] >= 0.80,
    "abstains on <= 0.10 of answerable ones": lambda m, s2: m["abstain_answerable"] <= 0.10,
    "answerable nDCG@10 >= [bm25, siglip]'s": lambda m, s2: (
        m["answerable.nDCG_at_10"] >= s2["answerable.nDCG_at_10"]
    ),
}


def run_seed(seed: int, overrides: list[str]) -> tuple[dict, dict, float]:
    """Train and evaluate one seed; the funnel's and stage 2's metrics, and the seconds."""
    setup_runtime()
    from flows.evaluate import evaluate
    from flows.train import train

    seeded = [*overrides, f"train.seed={seed}", f"student.registry=learning-seed{seed}"]
    started = time.monotonic()
    summary = train(overrides=seeded)
    report = evaluate(seeded)
    rows = {r.configuration.name: r.metrics for r in report.results}
    print(f"seed {seed}: {summary.training.steps} steps, stopped by {summary.training.stopped_by}")
    return rows[FUNNEL], rows[STAGE2], time.monotonic() - started


def summary_table(runs: list[tuple[int, dict, dict, float]], headline: list[str]) -> str:
    """Per seed, then mean / min / max, of every headline metric; then the targets."""
    lines = [
        "| seed | " + " | ".join(headline) + " | minutes |",
        "|---|" + "---:|" * (len(headline) + 1),
    ]
    for seed, funnel, _, seconds in runs:
        cells = [_cell(lambda v: v[0], [funnel[m]] if m in funnel else []) for m in headline]
        lines.append(f"| {seed} | " + " | ".join(cells) + f" | {seconds / 60:.1f} |")
    for name, pick in (("mean", statistics.fmean), ("min", min), ("max", max)):
        cells = [_cell(pick, [f[m] for _, f, _, _ in runs if m in f]) for m in headline]
        lines.append(f"| {name} | " + " | ".join(cells) + " | |")
    stage2 = runs[0][2]
    lines += ["", f"[bm25, siglip] answerable nDCG@10: {stage2['answerable.nDCG_at_10']:.3f}", ""]
    for target, holds in TARGETS.items():
        held = sum(holds(f, s2) for _, f, s2, _ in runs)
        lines.append(f"* {target}: holds on {held} of {len(runs)} seeds")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    parser.add_argument(
        "--jobs", type=int, default=1, help="seeds trained at once (one CPU thread each)"
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides for every flow")
    args = parser.parse_args()
    setup_runtime()
    from flows.pipeline import pipeline
    from mars_core.app.compose import load_config
    from mars_core.teacher.schema import HELDOUT_LABELS_FILE, LABELS_FILE

    started = time.monotonic()
    cfg = load_config(args.overrides)
    out = Path(cfg.data.out_dir)
    if not all((out / name).is_file() for name in (LABELS_FILE, HELDOUT_LABELS_FILE)):
        pipeline(args.overrides)  # world, indexes, pairs and labels (`make demo` makes them)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = pool.map(run_seed, args.seeds, [args.overrides] * len(args.seeds))
        runs = [(seed, *result) for seed, result in zip(args.seeds, done, strict=True)]
    table = summary_table(runs, cfg.eval.headline)
    print(table)
    if args.write:
        seeds = " ".join(map(str, args.seeds))
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        minutes = (time.monotonic() - started) / 60
        header = (
            f"## Learning across seeds (`python -m bench.learning --seeds {seeds} --jobs "
            f"{args.jobs}`), {when}, {minutes:.0f} min in all"
        )
        write_results(table, header)


if __name__ == "__main__":
    main()
