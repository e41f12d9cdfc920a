"""GPU check: the stage-3 cost table at real sizes and one real-size QLoRA step, in one go.

For a CUDA machine (one card, about 8 minutes): `bench.stage3` for the tiny student and the
Qwen2-VL-2B architecture (random weights, bf16, flash attention when `flash_attn` is
installed, else SDPA; 448x448 rooms, products at `product_max_pixels`, 20 candidates,
answers for the top 5), then `bench.gpu_qlora_step` (NF4 language model + LoRA, 448x448
images), then one summary table to paste into bench/RESULTS.md with the card and the date.

    pip install -e '.[bench]'                 # once: Qwen's tokenizer ranks (dashscope)
    python -m bench.gpu_check                 # on a GPU machine
    python -m bench.gpu_check --allow-cpu     # the tiny model's table only, as a smoke test

Without CUDA it stops at once with one line saying so (exit 2), unless `--allow-cpu`.
"""

from __future__ import annotations

from mars_core.infra.runtime import setup_runtime

setup_runtime()  # an entry point: offline before the imports below load the hub

import argparse
import datetime
import importlib.util
import sys
import time

import torch

from bench import gpu_qlora_step, stage3


def attention() -> str:
    """flash_attention_2 where the package is installed, else PyTorch's SDPA."""
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"


def summary(results: list[stage3.Result], qlora: dict[str, float] | None, took: float) -> str:
    """One markdown table: each model's per-query cost by path, then the QLoRA step."""
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    lines = [
        f"## GPU check — {card}, {datetime.date.today().isoformat()}, {took:.0f} s in all",
        "",
        "| model | path (cumulative) | s / query | × vs MARS-style |",
        "|---|---|---:|---:|",
    ]
    for result in results:
        mars = result.seconds["mars"]
        for label, parts in stage3.ROWS:
            cost = result.row_seconds(parts)
            lines.append(f"| {result.label} | {label} | {cost:.3f} | ×{mars / cost:.2f} |")
    if qlora:
        lines += [
            "",
            "| QLoRA step (2B architecture, NF4 + LoRA) | batch | tokens | s / step | peak GiB |",
            "|---|---:|---:|---:|---:|",
            f"| 448x448 images | {qlora['batch']:.0f} | {qlora['tokens']:.0f} | "
            f"{qlora['step_s']:.2f} | {qlora['peak_gib']:.2f} |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--allow-cpu", action="store_true", help="run the tiny table on CPU")
    parser.add_argument("--skip-qlora", action="store_true", help="leave out the QLoRA step")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per model")
    parser.add_argument("--qlora-batch", type=int, default=4, help="QLoRA step batch size")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(
            "error: no CUDA device here (torch.cuda.is_available() is False); run this on a "
            "GPU machine, or add --allow-cpu for the tiny model's table as a smoke test",
            file=sys.stderr,
        )
        raise SystemExit(2)
    started = time.perf_counter()
    table = [f"--repeats={args.repeats}", f"--repeats-2b={args.repeats}"]
    table += ["--device=cuda", f"--attn={attention()}"] if cuda else ["--skip-2b"]
    results = stage3.run(stage3.parser().parse_args(table))
    qlora = None
    if cuda and not args.skip_qlora:
        qlora = gpu_qlora_step.main(["--batch-size", str(args.qlora_batch), "--steps", "2"])
    print(summary(results, qlora, time.perf_counter() - started), flush=True)


if __name__ == "__main__":
    main()
