"""A tiny open_clip model folder (`local-dir:` layout) with SigLIP's sigmoid-loss head.

open_clip loads it with `create_model_and_transforms("local-dir:<folder>")`, the same factory
that loads ViT-SO400M-14-SigLIP-384 from a weights file. The text side uses open_clip's
bundled BPE vocabulary, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from mars_core.config.recipes import TinyClipRecipe

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
OPEN_CLIP_VOCAB_SIZE = 49408


def tiny_clip_config(recipe: TinyClipRecipe) -> dict:
    """The `open_clip_config.json` payload for a recipe."""
    return {
        "model_cfg": {
            "embed_dim": recipe.embed_dim,
            "custom_text": True,
            "init_logit_bias": -10,
            "vision_cfg": {
                "image_size": recipe.image_size,
                "layers": recipe.vision_layers,
                "width": recipe.vision_width,
                "head_width": recipe.vision_width // recipe.vision_heads,
                "patch_size": recipe.patch_size,
            },
            "text_cfg": {
                "context_length": recipe.context_length,
                "vocab_size": OPEN_CLIP_VOCAB_SIZE,
                "width": recipe.text_width,
                "heads": recipe.text_heads,
                "layers": recipe.text_layers,
                "no_causal_mask": True,
                "pool_type": "last",
            },
        },
        "preprocess_cfg": {
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
            "resize_mode": "squash",
        },
    }


def build_tiny_clip(recipe: TinyClipRecipe, out_dir: Path) -> None:
    """Write config and randomly initialised weights into `out_dir`."""
    config = tiny_clip_config(recipe)
    torch.manual_seed(recipe.seed)
    model_cfg = {k: v for k, v in config["model_cfg"].items() if k != "custom_text"}
    model = open_clip.CustomTextCLIP(**model_cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file(state, str(out_dir / WEIGHTS_FILE))
