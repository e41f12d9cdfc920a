"""One real-size QLoRA training step on the Qwen2-VL-2B architecture: memory and step time.

Random weights from the published 2B config (no download) with Qwen's real tokenizer
(`bench/qwen_vocab.py`) and the tiny image processor, saved as a model folder and
loaded through the SFT path (`prepare_model`, `train=qlora`: NF4 language model, vision tower
and head unquantized, LoRA on the language model), then one optimiser step on a batch built
by trl's collator from SFT examples made with the one prompt. Meant for a CUDA machine; runs
(slowly) on CPU too.

    python -m bench.gpu_qlora_step [--batch-size 4] [--max-pixels 200704] [--steps 2]
"""

from __future__ import annotations

from mars_core.infra.runtime import setup_runtime

setup_runtime()  # an entry point: offline before the imports below load the hub

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import bitsandbytes as bnb
import torch
from PIL import Image

from bench.stage3 import random_qwen2vl_2b
from mars_core.prompt import answer_message, prompt_messages


def sample(seed: int, side: int) -> dict:
    """One SFT row (prompt/completion chat columns + two images), as the SFT data builds it."""
    room = Image.new("RGB", (side, side), (40 * seed % 255, 120, 200))
    product = Image.new("RGB", (side // 2, side // 2), (200, 60 * seed % 255, 40))
    return {
        "prompt": prompt_messages("a bed for this room", "Oak bed (category: BED); color: Brown"),
        "completion": [answer_message(0.9, "a bed belongs in a bedroom")],
        "images": [room, product],
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the steps; returns the last step's numbers (for `bench.gpu_check`'s summary)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-pixels", type=int, default=448 * 448, help="per-image bound")
    parser.add_argument("--image-side", type=int, default=448, help="side of the room photos")
    parser.add_argument("--steps", type=int, default=2, help="steps timed (the first warms up)")
    args = parser.parse_args(argv)

    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from bench.qwen_vocab import build_real_qwen_tokenizer, with_real_qwen_tokenizer
    from mars_core.app.compose import load_config
    from mars_core.models.loading import load_vlm
    from mars_core.training.trainer import prepare_model

    cfg = load_config(["train=qlora"])
    cuda = torch.cuda.is_available()
    tiny = load_vlm(cfg.student, cfg.paths.models)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        tokenizer = build_real_qwen_tokenizer()
        random_qwen2vl_2b(tiny.model.config, tokenizer, torch.bfloat16).save_pretrained(folder)
        with_real_qwen_tokenizer(tiny.processor, tokenizer).save_pretrained(folder)
        print(f"built random Qwen2-VL-2B folder in {time.perf_counter() - started:.0f} s")
        student = dataclasses.replace(
            cfg.student,
            name="qwen2vl_2b-random",
            tiny=None,
            pretrained=folder,
            dtype="bfloat16",
            device="cuda" if cuda else "cpu",
            min_pixels=56 * 56,
            max_pixels=args.max_pixels,
        )
        train = dataclasses.replace(cfg.train, gradient_checkpointing=True)
        model, processor = prepare_model(train, student, Path(cfg.paths.models))
    model.print_trainable_parameters()
    four_bit = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    print(f"4-bit linears: {four_bit}; device {next(model.parameters()).device}")
    collate = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)
    batch = collate([sample(i, args.image_side) for i in range(args.batch_size)])
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    print(f"batch {args.batch_size} x {batch['input_ids'].shape[1]} tokens")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    last: dict[str, float] = {}
    for step in range(args.steps):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if cuda:
            torch.cuda.synchronize()
        took = time.perf_counter() - started
        memory = (
            f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else ""
        )
        print(f"step {step + 1}: loss {loss.item():.3f}, {took:.2f} s{memory}", flush=True)
        last = {
            "batch": args.batch_size,
            "tokens": batch["input_ids"].shape[1],
            "step_s": took,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        }
    return last


if __name__ == "__main__":
    main()
