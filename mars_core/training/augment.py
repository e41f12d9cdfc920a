"""Several views of each training room photo, so a few photos of a room type teach the type.

With 6 photos of a room type (a realistic start for a new type) the student saw each photo in
dozens of pairs, always the same pixels, and learnt those photos rather than the type: on
held-out photos it misread whole rooms. Each training pair now shows its room photo in one of
`train.room_views` views: view 0 the photo as it is, the others a seeded crop of it (at least
`train.room_crop` of each side, resized back, so the same number of image tokens) mirrored
left-right half the time. Colours are left as they are: they are part of what the teacher
judges. Validation and search always see the photo as it is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageOps


@dataclass(frozen=True)
class RoomViews:
    """Which view of its room photo each training example shows, and how a view is drawn."""

    views: int  # 1: every example shows the photo as it is
    min_crop: float  # smallest share of each side a crop keeps
    flip: bool  # mirror left-right half the time
    seed: int

    def pick(self, count: int) -> list[int]:
        """A view for each of `count` training examples (seeded; repeats of an example may
        differ, which is the point of repeating it)."""
        if self.views <= 1:
            return [0] * count
        rng = random.Random(f"{self.seed}:room-views")
        return [rng.randrange(self.views) for _ in range(count)]

    def draw(self, image: Image.Image, path: str, view: int) -> Image.Image:
        """View `view` of the room photo at `path`: the same view of the same photo every
        time it is asked for (seeded by photo and view)."""
        if view == 0:
            return image
        rng = random.Random(f"{self.seed}:{path}:{view}")
        width, height = image.size
        share = rng.uniform(self.min_crop, 1.0)
        w, h = max(1, round(width * share)), max(1, round(height * share))
        left, top = rng.randint(0, width - w), rng.randint(0, height - h)
        view_image = image.crop((left, top, left + w, top + h)).resize(
            (width, height), Image.Resampling.BICUBIC
        )
        return ImageOps.mirror(view_image) if self.flip and rng.random() < 0.5 else view_image
