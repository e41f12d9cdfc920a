"""Product images as the student sees them: bounded on its vision grid, hashed by content,
the fingerprint of what turns them into visual tokens, and those tokens as model inputs.

Product images get their own pixel bound (`student.product_max_pixels`, far below a room's),
applied before the processor as Qwen-VL's processor would resize them, so the processor takes
them as they are. The in-process agent, the served one and SFT bound alike, on one grid
(`VISION_GRID`), and a bounded image's pixels key its cached visual tokens (`image_digest`,
`visual_cache.py`), valid for one `vision_fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from mars_core.agent.visual_cache import VisualCache

# Qwen2-VL's (and Qwen2.5-VL's) vision grid: 14-pixel patches merged 2x2 into one token.
VISION_GRID = 28
# The processor's image settings that decide a product's visual tokens besides the tower.
_IMAGE_SETTINGS = (
    "patch_size",
    "merge_size",
    "temporal_patch_size",
    "image_mean",
    "image_std",
    "rescale_factor",
    "resample",
    "size",
)


def bound_product_image(
    image: Image.Image, image_processor: Any, max_pixels: int | None
) -> Image.Image:
    """The product image at most `max_pixels` in area (`student.product_max_pixels`), on the
    vision grid within the processor's minimum area, so the processor leaves it as it is and
    its visual tokens can be cached by content. SFT shows the student its product images
    the same way."""
    if max_pixels is None:
        return image
    grid = image_processor.patch_size * image_processor.merge_size
    if grid != VISION_GRID:
        raise ValueError(
            f"the student's processor has a {grid}-pixel vision grid; product images are "
            f"bounded on Qwen2-VL's {VISION_GRID}-pixel grid (mars_core/agent/vision.py)"
        )
    return bound_image(image, VISION_GRID, image_processor.size["shortest_edge"], max_pixels)


def bound_image(image: Image.Image, factor: int, min_pixels: int, max_pixels: int) -> Image.Image:
    """The image resized as Qwen-VL's processor would (sides multiples of `factor`, area
    within the bounds), or the image itself when it already is.

    The processor keeps each side at least one grid step, so a very elongated photo (a rug
    runner) can come out over `max_pixels`; its long side is then cut back to fit the bound.
    """
    height, width = smart_resize(
        image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
    )
    if height * width > max_pixels:
        short, long = sorted((height, width))
        long = max(factor, max_pixels // short // factor * factor)
        height, width = (short, long) if height == short else (long, short)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def image_digest(image: Image.Image) -> str:
    """SHA-256 of an image's mode, size and pixels (what the processor is given)."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def vision_fingerprint(
    vision: torch.nn.Module,
    vision_config: Any,
    image_processor: Any,
    product_max_pixels: int | None,
) -> str:
    """Hash of what decides a product's visual tokens: the tower's config and weights, the
    processor's image settings (patching, normalisation, pixel bounds) and the product bound."""
    settings = {name: getattr(image_processor, name, None) for name in _IMAGE_SETTINGS}
    settings["product_max_pixels"] = product_max_pixels
    digest = hashlib.sha256(vision_config.to_json_string(use_diff=False).encode())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vision.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def vision_inputs(
    inputs: dict[str, torch.Tensor],
    images: list[Image.Image],
    cache: VisualCache | None,
    tower: Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]],
    device: torch.device,
) -> dict[str, Any]:
    """What the model needs for `images` (processed into `inputs`): their pixels for the
    vision tower, or, with a visual cache, the cached tokens (`tower` runs only on the images
    the cache lacks)."""
    grid = inputs["image_grid_thw"]
    if cache is None:
        return {"pixel_values": inputs["pixel_values"], "image_grid_thw": grid}
    cached = [cache.get(image_digest(image)) for image in images]
    missing = [i for i, tensor in enumerate(cached) if tensor is None]
    if missing:
        pieces = inputs["pixel_values"].split(grid.prod(-1).tolist())
        computed = tower(torch.cat([pieces[i] for i in missing]), grid[missing])
        for i, tensor in zip(missing, computed, strict=True):
            cached[i] = tensor
    features = tuple(tensor.to(device) for tensor in cached)
    return {
        "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=features)},
        "image_grid_thw": grid,
    }
