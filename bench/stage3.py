"""Bench: stage-3 cost per query, from MARS-style scoring to the agent's fast path, step by step.

One run, same machine, same room, same candidates. Rows (each a whole query: scores for every
candidate plus answers for the top N):

  MARS-style                     generate the JSON answer for every candidate (whole prompts)
  one-forward scoring            1 forward per candidate (forced `{"score": 0.`) + N answers
  + shared room prefix           system text + room image encoded once, KV cache reused
  + cached product tokens        product visual tokens from the index build, no vision tower
  + batched answers on prefix    the N answers decode as one batch on the room's KV cache
  + answers open with the score  the top N by score, each answer opened with its known score
                                 (`{"score": 0.7, "rationale": "`, forced), only the rationale
                                 decoded
  + answers continue the scoring the agent as it runs: each answer continues its candidate's
                                 scoring pass (KV cache kept), only the rest of the opening runs

Both models run at the real student's image sizes (`conf/student/qwen2vl_2b.yaml`: rooms up
to 448x448, products at `product_max_pixels`): the tiny student, and the Qwen2-VL-2B
architecture with random weights built from its published config and Qwen's real tokenizer
(no download: `bench/qwen_vocab.py` builds it from the BPE ranks the `dashscope`
package ships, `pip install .[bench]`), so its text is as many tokens as the real student's.
Every answer is exactly `--tokens` tokens long (random weights never stop on their own; a
trained student's answer is ~25-40 tokens): all of them decoded, or, in the last two rows, the
forced opening and the rest decoded.

    python -m bench.stage3                      # tiny + 2B
    python -m bench.stage3 --skip-2b            # tiny only
    python -m bench.stage3 --skip-tiny --dtype-2b float32 --candidates 8 --parts score_full
                                                # 2B scores' agreement without bf16 rounding
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mars_core.infra.runtime import setup_runtime

# Qwen2-VL-2B-Instruct's published sizes (config.json of the hub model).
QWEN2VL_2B_TEXT = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
QWEN2VL_2B_VISION = {
    "depth": 32,
    "embed_dim": 1280,
    "mlp_ratio": 4,
    "num_heads": 16,
    "hidden_size": 1536,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
QUERY = "a bed for this room"
REAL_STUDENT = "student=qwen2vl_2b"  # whose image bounds the bench uses

PARTS = (
    "mars",
    "score_full",
    "score_prefix",
    "score_cached",
    "answers_full",
    "fast",
    "opened",
    "agent",
)
# Table rows: label and the measured parts whose seconds add up to one query.
ROWS = [
    ("MARS-style: generate the JSON for every candidate", ("mars",)),
    ("one-forward scoring (+ top-N answers, whole prompts)", ("score_full", "answers_full")),
    ("+ shared room prefix", ("score_prefix", "answers_full")),
    ("+ cached product visual tokens", ("score_cached", "answers_full")),
    ("+ top-N answers batched on the prefix", ("fast",)),
    ("+ answers open with the known score", ("opened",)),
    ("+ answers continue their scoring passes (the agent as it runs)", ("agent",)),
]


@dataclass(frozen=True)
class Agreement:
    """The fast path's scores against one-forward whole-prompt scores of the same candidates
    (a random model's scores lie close together, so bf16 rounding can swap near-ties)."""

    max_gap: float  # max |fast - whole| over the candidates
    spread: float  # max - min of the whole-prompt scores
    spearman: float  # rank correlation of the two score lists
    shared_top: int  # candidates both top-N lists hold

    @classmethod
    def of(cls, whole: list[float], fast: list[float], n: int) -> Agreement:
        from scipy.stats import spearmanr

        return cls(
            max_gap=max(abs(a - b) for a, b in zip(whole, fast, strict=True)),
            spread=max(whole) - min(whole),
            spearman=float(spearmanr(whole, fast).statistic),
            shared_top=len(set(_top(whole, n)) & set(_top(fast, n))),
        )

    def describe(self, n: int) -> str:
        return (
            f"max |Δ| {self.max_gap:.1e} (the whole-prompt scores spread over "
            f"{self.spread:.3f}), Spearman {self.spearman:.3f}, top {n} in common: "
            f"{self.shared_top} of {n}"
        )


@dataclass
class Result:
    """One model's measurements (every round of each part) and what they were measured on."""

    label: str
    candidates: int
    top_n: int
    tokens: int
    repeats: int
    budget: Any  # bench.token_budget.TokenBudget
    rounds: dict[str, list[float]]  # each part's seconds, round by round
    cache_build_s: float
    cache_bytes: float
    agreement: Agreement | None  # None: not checked (score_full not measured)

    @property
    def seconds(self) -> dict[str, float]:
        """Each part's best round (noise only ever adds time); nan where not measured."""
        return {part: min(self.rounds.get(part) or [float("nan")]) for part in PARTS}

    def row_seconds(self, parts: tuple[str, ...]) -> float:
        return sum(self.seconds[part] for part in parts)

    def ratio(self) -> float:
        """MARS-style / the agent as it runs, best rounds: the claim."""
        return self.seconds["mars"] / self.seconds["agent"]

    def median_ratio(self) -> float:
        """The same from each part's median round: how much the claim leans on quiet moments."""
        return statistics.median(self.rounds["mars"]) / statistics.median(self.rounds["agent"])


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """A noisy colour image (real pixels, so nothing is special-cased by the processor)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def random_qwen2vl_2b(
    tiny_config,
    tokenizer,
    dtype: torch.dtype,
    attn: str = "sdpa",
    device: torch.device | str = "cpu",
):
    """Qwen2-VL-2B's architecture with random weights and the special ids of `tokenizer`
    (Qwen's real one: its ids fit the 2B vocabulary), initialised directly on `device` (a
    GPU initialises 2B parameters in seconds)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    text = {k: v for k, v in tiny_config.text_config.to_dict().items() if k != "layer_types"}
    special = {
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = tiny_config.vision_config.to_dict()
    config = Qwen2VLConfig(
        text_config=text | QWEN2VL_2B_TEXT | special,
        vision_config=vision | QWEN2VL_2B_VISION,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    config._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def candidates(n: int) -> list:
    """Catalogue-like products: photos of different sizes, a name, category and attributes."""
    from mars_core.agent.types import ProductView

    return [
        ProductView(
            photo(i + 1, (300 + 20 * i, 300 + 10 * (i % 3))),
            f"Bed {i} (category: BED); color: oak; material: wood; style: modern",
        )
        for i in range(n)
    ]


def measure(scorer, args: argparse.Namespace, label: str, repeats: int) -> Result:
    """Time every part in interleaved rounds; the table takes each part's best round.

    Interleaving spreads the noise of a shared machine over all parts alike; the best round
    is the least disturbed one (noise only ever adds time), and the ratio of median rounds
    says how much a claim leans on quiet moments. Each part starts from a cold
    room prefix; `agent` is one query as the agent stage runs it (scores, then the top N's
    rationales after their scores, on the same prefix).
    """
    from bench.token_budget import token_budget
    from mars_core.agent.scorer import AgentScorer
    from mars_core.agent.visual_cache import VisualCache
    from mars_core.agent.visual_cache_build import build_visual_cache

    room = photo(0, (args.room_side, args.room_side))
    products = candidates(args.candidates)
    top = products[: args.top_n]
    n_tokens = args.tokens
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        build_visual_cache(scorer, ((str(i), p.image) for i, p in enumerate(products)), folder)
        cache_build_s = time.perf_counter() - started
        cache = VisualCache.load(folder, scorer.vision_fingerprint)
    cached = AgentScorer(
        scorer.model,
        scorer.processor,
        batch_size=scorer.batch_size,
        max_new_tokens=n_tokens,
        reuse_room_prefix=True,
        product_max_pixels=scorer.product_max_pixels,
        visual_cache=cache,
    )

    def answers(on: AgentScorer, items: list, reuse: bool) -> None:
        on.generate(
            room,
            QUERY,
            items,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            reuse_room_prefix=reuse,
        )

    def fast() -> None:
        cached.score(room, QUERY, products)
        answers(cached, top, True)

    # As long as the answers above: the opening is forced, the rest decoded.
    rationale = max(1, n_tokens - token_budget(scorer, room, QUERY, products[:1]).opening)

    def agent(continued: bool = True) -> None:
        scores = cached.score(room, QUERY, products)
        if not continued:
            cached.forget_scored()
        best = _top(scores, args.top_n)
        cached.generate(
            room,
            QUERY,
            [products[i] for i in best],
            scores=[scores[i] for i in best],
            max_new_tokens=rationale,
            min_new_tokens=rationale,
        )

    parts = {
        "mars": lambda: answers(scorer, products, False),
        "score_full": lambda: scorer.score(room, QUERY, products, reuse_room_prefix=False),
        "score_prefix": lambda: scorer.score(room, QUERY, products, reuse_room_prefix=True),
        "score_cached": lambda: cached.score(room, QUERY, products),
        "answers_full": lambda: answers(scorer, top, False),
        "fast": fast,
        "opened": lambda: agent(continued=False),
        "agent": agent,
    }
    # Warm-up: first-call allocations and kernel choice, on both paths.
    scorer.score(room, QUERY, products[:2], reuse_room_prefix=False)
    cached.generate(room, QUERY, products[:2], max_new_tokens=2)
    parts = {name: run for name, run in parts.items() if name in args.parts}
    rounds: dict[str, list[float]] = {name: [] for name in parts}
    for round_number in range(repeats):
        for name, run in parts.items():
            scorer.forget_room()
            cached.forget_room()
            rounds[name].append(seconds(run))
            print(f"  round {round_number + 1} {name}: {rounds[name][-1]:.2f} s", flush=True)
    agreement = None
    if "score_full" in parts:  # the fast path's scores against whole prompts, same ranking?
        full = scorer.score(room, QUERY, products, reuse_room_prefix=False)
        agreement = Agreement.of(full, cached.score(room, QUERY, products), args.top_n)
    return Result(
        label=label,
        candidates=args.candidates,
        top_n=args.top_n,
        tokens=n_tokens,
        repeats=repeats,
        budget=dataclasses.replace(token_budget(scorer, room, QUERY, products), answer=n_tokens),
        rounds=rounds,
        cache_build_s=cache_build_s,
        cache_bytes=cache.bytes_per_product(),
        agreement=agreement,
    )


def _top(scores: list[float], n: int) -> list[int]:
    return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:n]


def report(r: Result) -> str:
    """The model's token budget and the cost table, as markdown."""
    b = r.budget
    lines = [
        f"### {r.label}",
        "",
        f"{r.candidates} candidates, answers for the top {r.top_n}, {r.tokens} tokens per "
        f"answer; best of {r.repeats} interleaved round(s).",
        "",
        "Token budget per query: room prefix (system text, room image, query, instruction) "
        f"**{b.room_prefix}** once; per candidate **{b.per_candidate:.0f}** (product image "
        f"{b.product_image:.0f} + text {b.product_text:.0f} + answer prefix {b.answer_prefix}); "
        f"per answer {b.answer} tokens: the opening with the known score ({b.opening}) is "
        f"forced and the rest ({b.answer - b.opening}) decoded; after its scoring pass an "
        f"answer runs **{b.per_reason():.0f}** of them (the opening past the answer prefix and "
        "the decoded rest).",
        "",
        "| path (cumulative) | s / query | × vs MARS-style |",
        "|---|---:|---:|",
    ]
    mars = r.seconds["mars"]
    for label, parts in ROWS:
        cost = r.row_seconds(parts)
        lines.append(f"| {label} | {cost:.2f} | ×{mars / cost:.2f} |")
    lines += [
        "",
        f"Cached product tokens: {r.cache_bytes / 1024:.1f} KiB per product; built for "
        f"{r.candidates} products in {r.cache_build_s:.2f} s (once, at index build). "
        "Fast-path scores vs one-forward whole prompts: "
        f"{r.agreement.describe(r.top_n) if r.agreement else 'not checked'}.",
        "",
        f"**MARS-style / fast path: ×{r.ratio():.2f}**"
        + (f" (median rounds: ×{r.median_ratio():.2f})" if r.repeats > 1 else ""),
    ]
    return "\n".join(lines)


def machine() -> str:
    """Where the numbers come from."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"{gpu}, {platform.platform()}; torch {torch.__version__}; load average at start "
        f"{os.getloadavg()[0]:.1f} (other work on the machine inflates times)"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=20, help="candidates per query")
    p.add_argument("--top-n", type=int, default=5, help="answers (reasons) for the top N")
    p.add_argument("--tokens", type=int, default=32, help="new tokens per generated answer")
    p.add_argument("--batch-size", type=int, default=10, help="candidates per forward pass")
    p.add_argument("--room-side", type=int, default=448, help="side of the square room photo")
    p.add_argument("--repeats", type=int, default=2, help="tiny model: timed rounds")
    p.add_argument("--repeats-2b", type=int, default=1, help="2B model: timed rounds")
    p.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="measure only these parts (a recheck of a noisy row); rows lacking one show nan",
    )
    p.add_argument("--skip-tiny", action="store_true", help="bench the 2B architecture only")
    p.add_argument("--skip-2b", action="store_true", help="bench the tiny model only")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--attn", default="sdpa", help="2B attention: sdpa or flash_attention_2")
    p.add_argument(
        "--dtype-2b",
        default="bfloat16",
        choices=["bfloat16", "float32"],
        help="2B weights: bfloat16 (as served), or float32 to check the fast path's scores "
        "against whole prompts without bf16 rounding",
    )
    p.add_argument("--override", action="append", default=[], help="Hydra override")
    return p


def run(args: argparse.Namespace) -> list[Result]:
    """Both models' tables, printed as they finish; returns the results."""
    setup_runtime()
    from bench.qwen_vocab import build_real_qwen_tokenizer, with_real_qwen_tokenizer
    from mars_core.agent.scorer import AgentScorer
    from mars_core.app.compose import load_config
    from mars_core.models.loading import load_vlm

    cfg = load_config(args.override)
    real = load_config([*args.override, REAL_STUDENT]).student
    sizes = {
        "min_pixels": real.min_pixels,
        "max_pixels": real.max_pixels,
        "product_max_pixels": real.product_max_pixels,
    }
    student = dataclasses.replace(
        cfg.student, batch_size=args.batch_size, device=args.device, adapter=None, **sizes
    )
    cache = Path(cfg.paths.models)
    print(f"machine: {machine()}", flush=True)
    results = []
    tiny = AgentScorer.from_config(student, cache)
    if not args.skip_tiny:
        params = sum(p.numel() for p in tiny.model.parameters()) / 1e6
        label = f"tiny Qwen2-VL ({params:.2f}M params, fp32)"
        results.append(measure(tiny, args, label, args.repeats))
        print(report(results[-1]), flush=True)
    if args.skip_2b:
        return results
    loaded = load_vlm(student, cache)  # the tiny processor with the real image bounds
    tokenizer = build_real_qwen_tokenizer()
    built = time.perf_counter()
    model = random_qwen2vl_2b(
        loaded.model.config, tokenizer, getattr(torch, args.dtype_2b), args.attn, tiny.device
    )
    print(f"built random Qwen2-VL-2B in {time.perf_counter() - built:.0f} s", flush=True)
    scorer = AgentScorer(
        model,
        with_real_qwen_tokenizer(loaded.processor, tokenizer),
        batch_size=args.batch_size,
        max_new_tokens=args.tokens,
        reuse_room_prefix=True,
        product_max_pixels=real.product_max_pixels,
    )
    params = sum(p.numel() for p in model.parameters()) / 1e9
    label = (
        f"Qwen2-VL-2B architecture ({params:.2f}B params, {args.dtype_2b}, {args.attn}, "
        "Qwen's tokenizer)"
    )
    results.append(measure(scorer, args, label, args.repeats_2b))
    print(report(results[-1]), flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
