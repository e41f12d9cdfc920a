"""Bench: SFT steps per second of two training set-ups, and whether they train the same model.

    python -m bench.train_speed [--steps 100] [--rounds 1] [--decode 64]
        [--before 'OVERRIDES'] [--after 'OVERRIDES'] [hydra overrides for both...]

Trains the student on `make demo`'s labels (`labels.parquet` beside the catalogue; the data
the train flow builds) `--rounds` times per side, before and after in turn, each from scratch
in a folder of its own with the same seed. `--before` defaults to trl's stock path
(`train.collate_once=false train.loss_positions=all`: the chat template rendered and both
images processed in every batch, the output layer at every position), `--after` to the
defaults (each example collated once, the output layer at the labelled positions only).
`--steps` sets `train.max_steps`, and validation runs every `train.eval_steps` or once at the
end, whichever comes first.

Prints per side and round: the wall time of the whole `train_student` call (model load,
collation, training, validations, checkpoints) and its steps per second, the median over
rounds and the ratio after / before. Then whether the two sides trained the same model:
the largest difference of their logged training losses, validation losses and saved weights,
and how many of `--decode` validation examples each model answers with the same greedy text
(and how many of those answers are the teacher's label). The same bench measures any other
pair, e.g. the thread count: `--before 'train.cpu_threads=1' --after 'train.cpu_threads=2'`.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

STOCK = "train.collate_once=false train.loss_positions=all"
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
    """Train one side from scratch in `folder`; the whole call is timed."""
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
        f"(collation, steps and validations {result.seconds:.1f} s)",
        flush=True,
    )
    return run


def largest_difference(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> float:
    """The largest |a - b| over the steps both series logged."""
    other = dict(b)
    return max((abs(value - other[step]) for step, value in a if step in other), default=0.0)


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


def report(runs: list[Run], before: list[str], after: list[str], decode: int) -> None:
    """Medians and ratio of speed, then how far the two sides' models are apart."""
    rates = {
        side: statistics.median(r.steps_per_s for r in runs if r.side == side)
        for side in ("before", "after")
    }
    seconds = {
        side: statistics.median(r.seconds for r in runs if r.side == side)
        for side in ("before", "after")
    }
    print(
        f"\nbefore ({' '.join(before) or 'defaults'}): {rates['before']:.3f} steps/s, "
        f"{seconds['before']:.1f} s"
    )
    print(
        f"after  ({' '.join(after) or 'defaults'}): {rates['after']:.3f} steps/s, "
        f"{seconds['after']:.1f} s"
    )
    print(f"ratio after / before: {rates['after'] / rates['before']:.2f}x steps per second")
    first = {side: next(r for r in runs if r.side == side) for side in ("before", "after")}
    a, b = first["before"], first["after"]
    print(
        f"training loss, largest |difference| over {len(a.train_loss)} logged steps: "
        f"{largest_difference(a.train_loss, b.train_loss):.3g}"
    )
    print(
        f"validation loss, largest |difference|: {largest_difference(a.val_loss, b.val_loss):.3g}"
    )
    print(f"saved weights, largest |difference|: {weight_difference(a.folder, b.folder):.3g}")
    if decode:
        said_a, labels = decoded(a.folder, before, decode)
        said_b, _ = decoded(b.folder, after, decode)
        same = sum(x == y for x, y in zip(said_a, said_b, strict=True))
        right = [
            sum(x == y for x, y in zip(said, labels, strict=True)) for said in (said_a, said_b)
        ]
        print(
            f"greedy answers to {len(labels)} validation examples: {same} the same; "
            f"the teacher's label: before {right[0]}, after {right[1]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="train.max_steps of each run")
    parser.add_argument("--rounds", type=int, default=1, help="runs per side, in turn")
    parser.add_argument("--decode", type=int, default=64, help="validation examples to decode")
    parser.add_argument("--before", default=STOCK, help="overrides of the 'before' side")
    parser.add_argument("--after", default="", help="overrides of the 'after' side")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for both sides")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.app.compose import load_config
    from mars_core.teacher.schema import LABELS_FILE

    cfg = load_config(args.overrides)
    labels = Path(cfg.data.out_dir) / LABELS_FILE
    if not labels.is_file():
        print(
            f"error: no labels at {labels}; run make demo (or flows ingest, index, mining "
            "and label) first",
            file=sys.stderr,
        )
        sys.exit(2)
    sides = {
        "before": [*args.overrides, *shlex.split(args.before)],
        "after": [*args.overrides, *shlex.split(args.after)],
    }
    print(
        f"{platform.processor() or platform.machine()}, {args.steps} steps per run, "
        f"{args.rounds} round(s), overrides {args.overrides}",
        flush=True,
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        for round_number in range(args.rounds):
            for side, overrides in sides.items():
                runs.append(
                    train_once(side, overrides, args.steps, Path(tmp) / f"{side}{round_number}")
                )
        report(runs, shlex.split(args.before), shlex.split(args.after), args.decode)


if __name__ == "__main__":
    main()
