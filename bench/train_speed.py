"""Bench: SFT steps per second of two training set-ups, and whether they train the same model.

    python -m bench.train_speed [--steps 100] [--rounds 1] [--decode 64]
        [--before 'OVERRIDES'] [--after 'OVERRIDES']
        [--before-env 'NAME=value ...'] [--after-env 'NAME=value ...'] [hydra overrides...]

Trains the student on `make demo`'s labels (`labels.parquet` beside the catalogue; the data
the train flow builds) `--rounds` times per side, before and after in turn, each run from
scratch with the same seed, in a Python process of its own (so each starts cold, and takes
the side's environment variables, which torch reads as it loads). `--before` defaults to
trl's stock path (`train.collate_once=false train.loss_positions=all`: the chat template
rendered and both images processed in every batch, the output layer at every position),
`--after` to the defaults (each example collated once, the output layer at the labelled
positions only); both sides show room photos as they are (`train.room_views=1`: trl's stock
path has no room views). `--steps` sets `train.max_steps`, and validation runs every
`train.eval_steps` or once at the end, whichever comes first.

Prints per run the wall time of the whole `train_student` call (model load, collation,
training, validations, checkpoints; not the imports) and its steps per second, then per side
the median over rounds, and the ratio after / before. Then whether the two sides trained the
same model: the largest difference of their logged training losses, validation losses and
saved weights (first round), and how many of `--decode` validation examples both students
answer with the same greedy text (and how many of those answers are the teacher's label).
The same bench measures what changes a run's rounding, e.g. the thread count
(`--before train.room_views=1 --after 'train.room_views=1 train.cpu_threads=2'`) or the CPU's
kernels (`--before train.room_views=1 --after-env 'ATEN_CPU_CAPABILITY=avx2'`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mars_core.infra.runtime import setup_runtime

# Both sides show room photos as they are: trl's stock path has no room views.
EXACT = "train.room_views=1"
STOCK = "train.collate_once=false train.loss_positions=all train.room_views=1"
IGNORED = -100


@dataclass
class Run:
    """One training run of one side: how long it took and what it produced."""

    side: str
    seconds: float
    steps: int
    train_loss: list[tuple[int, float]]
    val_loss: list[tuple[int, float]]
    folder: Path

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


def train_once(side: str, overrides: list[str], steps: int, folder: Path) -> Run:
    """Train one side from scratch in `folder`; the whole `train_student` call is timed, the
    imports it makes are not."""
    setup_runtime()
    import torch

    import mars_core.training.collate
    import mars_core.training.sft_trainer  # noqa: F401  (trl and transformers, imported untimed)
    from mars_core.app.compose import load_config
    from mars_core.teacher.schema import LABELS_FILE
    from mars_core.training.data import sft_data_for
    from mars_core.training.trainer import train_student

    every = min(load_config(overrides).train.eval_steps, steps)
    cfg = load_config([*overrides, f"train.max_steps={steps}", f"train.eval_steps={every}"])
    out = Path(cfg.data.out_dir)
    data = sft_data_for(out / LABELS_FILE, out, cfg.train, cfg.teacher.fit_threshold)
    started = time.monotonic()
    result = train_student(
        data,
        cfg.train,
        cfg.student,
        models_dir=Path(cfg.paths.models),
        work_dir=folder / "work",
        out_dir=folder / "student",
        max_image_pixels=cfg.data.max_image_pixels,
    )
    seconds = time.monotonic() - started
    run = Run(side, seconds, result.steps, result.train_loss, result.val_loss, folder / "student")
    print(
        f"{side}: {run.steps} steps in {seconds:.1f} s = {run.steps_per_s:.3f} steps/s "
        f"(collation, steps and validations {result.seconds:.1f} s; torch's CPU kernels "
        f"{torch.backends.cpu.get_cpu_capability()})",
        flush=True,
    )
    return run


def in_fresh_process(env: dict[str, str], call: Callable[..., Run], *args: Any) -> Run:
    """`call(*args)` in a new Python process whose environment adds `env`: each run starts
    cold alike, and torch reads its kernel choices (`ATEN_CPU_CAPABILITY`, ...) as it loads."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(call, *args).result()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def environment(assignments: str) -> dict[str, str]:
    """`'A=1 B=2'` as {'A': '1', 'B': '2'}."""
    pairs = [word.partition("=") for word in shlex.split(assignments)]
    bad = [name for name, equals, _ in pairs if not equals or not name]
    if bad:
        fail(f"environment assignments are NAME=value, got {' '.join(bad)!r}")
    return {name: value for name, _, value in pairs}


def largest_difference(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> str:
    """The largest |a - b| over the steps both series logged, and the first step they differ."""
    other = dict(b)
    differences = [(step, abs(value - other[step])) for step, value in a if step in other]
    largest = max((difference for _, difference in differences), default=0.0)
    first = next((step for step, difference in differences if difference), None)
    return f"{largest:.3g}" + (f" (first at step {first})" if first is not None else "")


def weight_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between two saved students' weights."""
    from safetensors.torch import load_file

    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(float((left[k].float() - right[k].float()).abs().max()) for k in left)


def decoded(folder: Path, overrides: list[str], count: int) -> tuple[list[str], list[str]]:
    """The greedy answers a saved student writes for the first `count` validation examples,
    and the teacher's labels for them (the examples as the train flow builds them)."""
    import torch

    from mars_core.app.compose import load_config
    from mars_core.models.loading import load_vlm
    from mars_core.teacher.schema import LABELS_FILE
    from mars_core.training.collate import EXAMPLE, GRID, PIXELS, PaddedBatches, ShownImages
    from mars_core.training.data import sft_data_for

    cfg = load_config(overrides)
    out = Path(cfg.data.out_dir)
    data = sft_data_for(out / LABELS_FILE, out, cfg.train, cfg.teacher.fit_threshold)
    loaded = load_vlm(cfg.student, Path(cfg.paths.models), source=str(folder))
    model, tokenizer = loaded.model.eval(), loaded.processor.tokenizer
    images = ShownImages(
        loaded.processor, cfg.data.max_image_pixels, cfg.student.product_max_pixels
    )
    batches = PaddedBatches(loaded.processor, data.val[:count], images)
    answers, labels = [], []
    for number in range(len(batches)):
        batch = batches([{EXAMPLE: number}])
        labelled = batch.pop("labels")[0] != IGNORED
        prompt = int(labelled.int().argmax())
        inputs = {k: v if k in (PIXELS, GRID) else v[:, :prompt] for k, v in batch.items()}
        with torch.inference_mode():
            new = model.generate(**inputs, max_new_tokens=int(labelled.sum()) + 8, do_sample=False)
        answers.append(tokenizer.decode(new[0, prompt:], skip_special_tokens=True).strip())
        # The label ends with the chat template's end of turn, a special token and a newline.
        labels.append(
            tokenizer.decode(batch["input_ids"][0, labelled], skip_special_tokens=True).strip()
        )
    return answers, labels


def report(
    runs: list[Run], sides: dict[str, tuple[list[str], dict[str, str]]], decode: int
) -> None:
    """Medians and ratio of speed, then how far the two sides' models are apart."""
    rates, seconds = {}, {}
    for side, (overrides, env) in sides.items():
        rates[side] = statistics.median(r.steps_per_s for r in runs if r.side == side)
        seconds[side] = statistics.median(r.seconds for r in runs if r.side == side)
        setup = " ".join([*overrides, *(f"{k}={v}" for k, v in env.items())]) or "defaults"
        print(f"{side:6s} ({setup}): {rates[side]:.3f} steps/s, {seconds[side]:.1f} s")
    print(f"ratio after / before: {rates['after'] / rates['before']:.2f}x steps per second")
    a, b = (next(r for r in runs if r.side == side) for side in ("before", "after"))
    print(
        f"training loss, largest |difference| over {len(a.train_loss)} logged steps: "
        f"{largest_difference(a.train_loss, b.train_loss)}"
    )
    print(f"validation loss, largest |difference|: {largest_difference(a.val_loss, b.val_loss)}")
    print(f"saved weights, largest |difference|: {weight_difference(a.folder, b.folder):.3g}")
    if decode:
        said_a, labels = decoded(a.folder, sides["before"][0], decode)
        said_b, _ = decoded(b.folder, sides["after"][0], decode)
        same = sum(x == y for x, y in zip(said_a, said_b, strict=True))
        right = [
            sum(x == y for x, y in zip(said, labels, strict=True)) for said in (said_a, said_b)
        ]
        print(
            f"greedy answers to {len(labels)} validation examples: {same} the same; "
            f"the teacher's label: before {right[0]}, after {right[1]}"
        )


def fail(message: str) -> None:
    """One `error:` line and exit status 2, as every entry point fails."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="train.max_steps of each run")
    parser.add_argument("--rounds", type=int, default=1, help="runs per side, in turn")
    parser.add_argument("--decode", type=int, default=64, help="validation examples to decode")
    parser.add_argument("--before", default=STOCK, help="overrides of the 'before' side")
    parser.add_argument(
        "--after", default=EXACT, help="overrides of the 'after' side (room views as the stock)"
    )
    parser.add_argument("--before-env", default="", help="'NAME=value ...' for 'before' runs")
    parser.add_argument("--after-env", default="", help="'NAME=value ...' for 'after' runs")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for both sides")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.app.compose import load_config
    from mars_core.infra.errors import UserInputError
    from mars_core.teacher.schema import LABELS_FILE

    sides = {
        "before": ([*args.overrides, *shlex.split(args.before)], environment(args.before_env)),
        "after": ([*args.overrides, *shlex.split(args.after)], environment(args.after_env)),
    }
    try:
        configs = [load_config(overrides) for overrides, _ in sides.values()]
    except UserInputError as e:
        fail(str(e))
    labels = Path(configs[0].data.out_dir) / LABELS_FILE
    if not labels.is_file():
        fail(f"no labels at {labels}; run make demo (or flows ingest, index, mining and label)")
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, {args.steps} steps per run, "
        f"{args.rounds} round(s), overrides {args.overrides}",
        flush=True,
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        for round_number in range(args.rounds):
            for side, (overrides, env) in sides.items():
                folder = Path(tmp) / f"{side}{round_number}"
                runs.append(in_fresh_process(env, train_once, side, overrides, args.steps, folder))
        report(runs, sides, args.decode)


if __name__ == "__main__":
    main()
