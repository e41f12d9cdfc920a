"""Build recipes of the tiny offline models: their architecture as config data.

`mars_core.models` builds a model from a recipe and hashes the recipe into the model cache's
key (`mars_core.models.cache.recipe_hash`).
"""

from dataclasses import dataclass

from mars_core.infra.knob import knob

VLM_FAMILIES = ("qwen2_vl", "qwen2_5_vl")


@dataclass
class TinyVLMRecipe:
    """A Qwen2-VL-shaped model small enough to train for real on one CPU core."""

    family: str = knob(
        "qwen2_vl", "qwen2_vl (student shape) or qwen2_5_vl (teacher shape)", choices=VLM_FAMILIES
    )
    vocab_size: int = knob(1024, "byte-level BPE vocabulary size before special tokens")
    hidden_size: int = knob(128, "text decoder width")
    num_hidden_layers: int = knob(2, "text decoder depth")
    num_attention_heads: int = knob(4, "text attention heads")
    num_key_value_heads: int = knob(2, "text KV heads (grouped-query attention)")
    intermediate_size: int = knob(256, "text MLP width")
    vision_embed_dim: int = knob(64, "vision tower width")
    vision_depth: int = knob(2, "vision tower depth")
    vision_num_heads: int = knob(2, "vision attention heads")
    patch_size: int = knob(14, "vision patch size in pixels (Qwen uses 14)")
    spatial_merge_size: int = knob(2, "patches merged per side into one LLM token")
    min_pixels: int = knob(56 * 56, "processor default lower bound on image area")
    max_pixels: int = knob(112 * 112, "processor default upper bound on image area")
    seed: int = knob(0, "weight initialisation seed")

    def __post_init__(self) -> None:
        """The shape's arithmetic; `family` is checked with its owner's knobs (`student.tiny`)."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        head_dim = self.hidden_size // self.num_attention_heads
        if head_dim % 4:
            raise ValueError("hidden_size / num_attention_heads must be divisible by 4 (M-RoPE)")


@dataclass
class TinyClipRecipe:
    """An open_clip ViT + text transformer with SigLIP's sigmoid-loss bias, at toy size.

    Named without "siglip": open_clip would switch to a tokenizer that downloads its vocabulary.
    """

    embed_dim: int = knob(64, "joint embedding size")
    image_size: int = knob(64, "input resolution")
    patch_size: int = knob(16, "ViT patch size")
    vision_width: int = knob(64, "ViT width")
    vision_layers: int = knob(2, "ViT depth")
    vision_heads: int = knob(2, "ViT attention heads")
    text_width: int = knob(64, "text transformer width")
    text_layers: int = knob(2, "text transformer depth")
    text_heads: int = knob(2, "text attention heads")
    context_length: int = knob(32, "text tokens; SigLIP pads every text to this length")
    seed: int = knob(0, "weight initialisation seed")
