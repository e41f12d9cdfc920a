"""One loading path for real and tiny models.

A tiny recipe is first built into the cache (once per recipe hash); from then on the tiny
model is a folder like any downloaded one and goes through the same `from_pretrained` /
`create_model_and_transforms` calls as Qwen2-VL-2B or SigLIP-so400m.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mars_core.config import EmbedderConfig, TrainConfig, VLMConfig
from mars_core.config.recipes import TinyClipRecipe, TinyVLMRecipe
from mars_core.infra.errors import ModelNotFoundError, UserInputError
from mars_core.models.cache import cached_build, recipe_hash
from mars_core.models.tiny_clip import build_tiny_clip
from mars_core.models.tiny_vlm import build_tiny_vlm

LOCAL_DIR = "local-dir:"
# Keep the vision tower and head in full precision under NF4 ("visual" alone does not match).
QUANT_SKIP_MODULES = ["model.visual", "lm_head"]


def tiny_model_dir(recipe: TinyVLMRecipe | TinyClipRecipe, cache_dir: Path | str) -> Path:
    """Build (once) and return the folder of a tiny model recipe."""
    if isinstance(recipe, TinyVLMRecipe):
        name, build = f"tiny-{recipe.family}", build_tiny_vlm
    else:
        name, build = "tiny-clip", build_tiny_clip
    folder = Path(cache_dir) / f"{name}-{recipe_hash(recipe)}"
    return cached_build(folder, lambda out: build(recipe, out))


def vlm_source(cfg: VLMConfig, cache_dir: Path | str) -> str:
    """What `from_pretrained` gets: the tiny model's folder, else the configured id or folder."""
    if cfg.tiny is not None:
        return str(tiny_model_dir(cfg.tiny, cache_dir))
    return cfg.pretrained


def clip_source(cfg: EmbedderConfig, cache_dir: Path | str) -> tuple[str, str | None]:
    """(model_name, pretrained) for open_clip's factory."""
    if cfg.tiny is not None:
        return LOCAL_DIR + str(tiny_model_dir(cfg.tiny, cache_dir)), None
    return cfg.model, cfg.pretrained


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("device=cuda was asked for but CUDA is not available; use device=cpu")
    return torch.device(device)


def resolve_dtype(dtype: str) -> torch.dtype:
    return getattr(torch, dtype)


def quantization_config(train: TrainConfig) -> Any:
    """The 4-bit bitsandbytes config from `train.*` (quant type, double quant, compute dtype).

    The vision tower and the head are never quantized (`QUANT_SKIP_MODULES`).
    """
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=train.quant_type,
        bnb_4bit_use_double_quant=train.double_quant,
        bnb_4bit_compute_dtype=resolve_dtype(train.compute_dtype),
        llm_int8_skip_modules=QUANT_SKIP_MODULES,
    )


@dataclass
class LoadedVLM:
    model: Any
    processor: Any
    source: str
    device: torch.device


def load_vlm(
    cfg: VLMConfig,
    cache_dir: Path | str,
    *,
    source: str | None = None,
    quantization: TrainConfig | None = None,
) -> LoadedVLM:
    """Load a Qwen2-VL-family model and its processor, with the configured image bounds.

    `source` replaces the configured model (a fully fine-tuned student's folder);
    `quantization` gives the 4-bit settings when `cfg.load_in_4bit` (default: `train`'s
    defaults, i.e. NF4 with double quantisation).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    source = source or vlm_source(cfg, cache_dir)
    four_bit = quantization_config(quantization or TrainConfig()) if cfg.load_in_4bit else None
    device = resolve_device(cfg.device)
    try:
        # Qwen's image processor reads image-area bounds from `size` (min/max pixels).
        processor = AutoProcessor.from_pretrained(
            source, size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
        )
        model = AutoModelForImageTextToText.from_pretrained(
            source,
            dtype=resolve_dtype(cfg.dtype),
            quantization_config=four_bit,
            # bitsandbytes quantises while placing weights, so 4-bit loads straight onto device.
            device_map={"": str(device)} if cfg.load_in_4bit else None,
        )
    except OSError as e:
        raise ModelNotFoundError(
            f"cannot load model {source!r} offline: put the model folder on disk and point "
            f"`pretrained` at it (e.g. student.pretrained=/models/{cfg.name}), or pre-fill the "
            "Hugging Face cache"
        ) from e
    if not cfg.load_in_4bit:
        model.to(device)
    model.eval()
    return LoadedVLM(model=model, processor=processor, source=source, device=device)


@dataclass
class LoadedClip:
    model: Any
    preprocess: Any
    tokenizer: Any
    name: str
    device: torch.device
    dtype: torch.dtype = torch.float32


def load_clip(cfg: EmbedderConfig, cache_dir: Path | str) -> LoadedClip:
    """Load an open_clip model, its image transform and tokenizer."""
    import open_clip

    name, pretrained = clip_source(cfg, cache_dir)
    device = resolve_device(cfg.device)
    dtype = supported_dtype(resolve_dtype(cfg.dtype), device)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device, precision=_clip_precision(dtype)
        )
    except (RuntimeError, FileNotFoundError) as e:
        raise ModelNotFoundError(
            f"cannot load open_clip model {name!r} (pretrained={pretrained!r}) offline: give a "
            "local weights file as embedder.pretrained or a local-dir: folder as embedder.model"
        ) from e
    model.eval()
    return LoadedClip(
        model=model,
        preprocess=preprocess,
        tokenizer=clip_tokenizer(name, cfg.tokenizer),
        name=name,
        device=device,
        dtype=dtype,
    )


def clip_tokenizer(name: str, folder: str | None) -> Any:
    """open_clip's tokenizer for `name`, read from `folder` when given.

    Built-in SigLIP names point open_clip at a tokenizer on the Hugging Face hub, which cannot
    be reached offline; a local folder with the same files replaces it, with the model
    config's own settings (context length, text cleaning) kept.
    """
    import open_clip
    from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer

    if folder is None:
        try:
            return open_clip.get_tokenizer(name)
        except OSError as e:
            raise FileNotFoundError(
                f"the tokenizer of open_clip model {name!r} is not on disk: set "
                "embedder.tokenizer to a folder holding its tokenizer files, or load the model "
                "from a local-dir: folder that holds them"
            ) from e
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"embedder.tokenizer folder {folder} does not exist")
    text_cfg = (open_clip.get_model_config(name) or {}).get("text_cfg", {})
    return HFTokenizer(
        folder,
        context_length=text_cfg.get("context_length", DEFAULT_CONTEXT_LENGTH),
        **text_cfg.get("tokenizer_kwargs", {}),
    )


def supported_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """`dtype`, or float32 where this CPU has no bfloat16 kernels (with a warning, not silently).

    bfloat16 halves memory and, on CPUs with AVX512-BF16 or AMX, speeds SigLIP up; elsewhere
    PyTorch emulates it at a fraction of float32 speed.
    """
    if device.type != "cpu" or dtype is not torch.bfloat16 or cpu_has_bf16():
        return dtype
    logging.getLogger(__name__).warning(
        "this CPU has no bfloat16 kernels: embedding in float32 instead of bfloat16"
    )
    return torch.float32


def cpu_has_bf16() -> bool:
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def _clip_precision(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}[dtype]
