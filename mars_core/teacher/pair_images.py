"""The two pictures of a pair, loaded once through the shared loader for the model teachers."""

from __future__ import annotations

from PIL import Image

from mars_core.teacher.base import LabelRequest
from mars_core.vision.images import load_image


def pair_images(request: LabelRequest, max_pixels: int) -> list[Image.Image]:
    """Room photo then product image (the prompt's IMAGE_ORDER); raises `BadImageError` /
    `ImageTooLargeError` naming the file, which the caller records as a failed label."""
    return [
        load_image(request.room_path, max_pixels),
        load_image(request.product["image_path"], max_pixels),
    ]


def unloadable(error: Exception) -> str:
    """The raw text stored for a pair whose images could not be loaded."""
    return f"<no answer: image not loadable: {error}>"
