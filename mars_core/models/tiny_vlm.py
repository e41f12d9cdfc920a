"""Tiny Qwen2-VL / Qwen2.5-VL model folders with real tokenizer, processor and chat template.

The folder is what `save_pretrained` writes for the real models, so the tiny model loads
through exactly the same `AutoProcessor` / `AutoModelForImageTextToText.from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from mars_core.config.recipes import TinyVLMRecipe
from mars_core.models.tiny_tokenizer import QWEN2VL_CHAT_TEMPLATE, build_qwen_tokenizer


def mrope_section(head_dim: int) -> list[int]:
    """Split the rotary half-dimension over (time, height, width) as Qwen does (1:1.5:1.5)."""
    half = head_dim // 2
    temporal = half // 4
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def _vlm_config(recipe: TinyVLMRecipe, tokenizer) -> Qwen2VLConfig | Qwen2_5_VLConfig:
    ids = tokenizer.convert_tokens_to_ids
    head_dim = recipe.hidden_size // recipe.num_attention_heads
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": recipe.hidden_size,
        "intermediate_size": recipe.intermediate_size,
        "num_hidden_layers": recipe.num_hidden_layers,
        "num_attention_heads": recipe.num_attention_heads,
        "num_key_value_heads": recipe.num_key_value_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": mrope_section(head_dim),
        },
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision = {
        "depth": recipe.vision_depth,
        "num_heads": recipe.vision_num_heads,
        "patch_size": recipe.patch_size,
        "spatial_merge_size": recipe.spatial_merge_size,
        "temporal_patch_size": 2,
    }
    tokens = {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }
    if recipe.family == "qwen2_vl":
        vision |= {"embed_dim": recipe.vision_embed_dim, "hidden_size": recipe.hidden_size}
        return Qwen2VLConfig(text_config=text, vision_config=vision, **tokens)
    vision |= {
        "hidden_size": recipe.vision_embed_dim,
        "intermediate_size": recipe.vision_embed_dim * 2,
        "out_hidden_size": recipe.hidden_size,
        "window_size": recipe.patch_size * recipe.spatial_merge_size * 2,
        "fullatt_block_indexes": [recipe.vision_depth - 1],
    }
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens)


def build_tiny_vlm(recipe: TinyVLMRecipe, out_dir: Path) -> None:
    """Write a complete, loadable tiny VLM folder (weights, config, tokenizer, processor)."""
    tokenizer = build_qwen_tokenizer(recipe.vocab_size)
    image_processor = Qwen2VLImageProcessor(
        min_pixels=recipe.min_pixels,
        max_pixels=recipe.max_pixels,
        patch_size=recipe.patch_size,
        merge_size=recipe.spatial_merge_size,
    )
    video_processor = Qwen2VLVideoProcessor(
        patch_size=recipe.patch_size, merge_size=recipe.spatial_merge_size
    )
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2VL_CHAT_TEMPLATE,
    )
    config = _vlm_config(recipe, tokenizer)
    torch.manual_seed(recipe.seed)
    model_cls = (
        Qwen2VLForConditionalGeneration
        if recipe.family == "qwen2_vl"
        else Qwen2_5_VLForConditionalGeneration
    )
    model = model_cls(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
