"""Colour harmony, which the offline teacher judges among products that fit a room.

A real vision-language teacher sees the room's colours; this one reads them from the same
pixels, with a documented rule a user can check and tune (`teacher.colours` and the
`teacher.colour_*` knobs):

* a pixel counts as the nearest named colour of `teacher.colours` (name -> RGB) when it is
  within `teacher.colour_radius` of it (RGB distance), else as no colour;
* a room's colours are the names covering at least `teacher.colour_min_share` of its photo,
  most covered first (walls, water or lawn, then furniture or deck);
* a product's colour is what its listing's `color` field names (the first named colour or
  word of `teacher.colour_words` in it: "Navy Blue" is blue), else its image's most covered
  named colour among the pixels that are not background (the colour of the image's border);
* it matches when the product's colour is one of the room's.

Where either side cannot be read (no colour named or covering enough, an unreadable image) the
judgement is None and the teacher says nothing of colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mars_core.config import TeacherConfig
from mars_core.infra.errors import ImageError
from mars_core.teacher.words import phrase, word_pattern
from mars_core.vision.images import load_image


@dataclass(frozen=True)
class Harmony:
    """A fitting product's colour against its room's."""

    product: str  # the product's named colour
    room: tuple[str, ...]  # the room photo's named colours, most covered first

    @property
    def matches(self) -> bool:
        return self.product in self.room


class ColourJudge:
    """Reads named colours from room photos, listings and product images; caches each photo."""

    def __init__(self, cfg: TeacherConfig, max_image_pixels: int) -> None:
        self.names = list(cfg.colours)
        self.rgb = np.array([cfg.colours[name] for name in self.names], dtype=np.float32)
        self.radius, self.min_share = cfg.colour_radius, cfg.colour_min_share
        self.sample_px, self.max_image_pixels = cfg.colour_sample_px, max_image_pixels
        words = {name: [name, *cfg.colour_words.get(name, [])] for name in self.names}
        self.said = {
            phrase(word): name for name, listed in words.items() for word in listed if word.strip()
        }
        self.pattern = word_pattern(list(self.said))
        self.rooms: dict[str, tuple[str, ...]] = {}

    def judge(self, room_path: str, product: Mapping[str, Any]) -> Harmony | None:
        """The product's colour against the room photo's; None when either cannot be read."""
        colour = self.product_colour(product)
        room = self.room_colours(room_path) if colour else ()
        return Harmony(colour, room) if colour and room else None

    def room_colours(self, path: str) -> tuple[str, ...]:
        """The named colours covering at least `colour_min_share` of the photo, most first."""
        if path not in self.rooms:
            photo = self._photo(path)
            self.rooms[path] = self._covering(photo.reshape(-1, 3)) if photo is not None else ()
        return self.rooms[path]

    def product_colour(self, product: Mapping[str, Any]) -> str | None:
        """The colour the listing names, else the product image's most covered one."""
        listed = product.get("color")
        if isinstance(listed, str) and self.pattern:
            match = self.pattern.search(listed)
            if match:
                return self.said[phrase(match.group(0))]
        path = product.get("image_path")
        photo = self._photo(path) if isinstance(path, str) else None
        if photo is None:
            return None
        covering = self._covering(_foreground(photo, self.radius))
        return covering[0] if covering else None

    def _covering(self, pixels: np.ndarray) -> tuple[str, ...]:
        """Named colours by the share of `pixels` (N x 3) near each, those over the bar."""
        if not len(pixels) or not self.names:
            return ()
        distances = np.linalg.norm(pixels[:, None, :] - self.rgb[None], axis=-1)
        nearest = np.where(distances.min(1) <= self.radius, distances.argmin(1), -1)
        counts = np.bincount(nearest[nearest >= 0], minlength=len(self.names))
        shares = counts / len(pixels)
        order = np.argsort(-shares, kind="stable")
        return tuple(self.names[i] for i in order if shares[i] >= self.min_share)

    def _photo(self, path: str) -> np.ndarray | None:
        """The photo's pixels (H x W x 3, float) at most `colour_sample_px` a side; None when
        it cannot be read (the label is still written, without a colour judgement)."""
        try:
            image = load_image(path, self.max_image_pixels)
        except ImageError:
            return None
        image.thumbnail((self.sample_px, self.sample_px), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.float32)


def _foreground(photo: np.ndarray, radius: float) -> np.ndarray:
    """The pixels (N x 3) farther than `radius` from the background: the median colour of
    the photo's border (a product shot's backdrop)."""
    border = np.concatenate([photo[0], photo[-1], photo[:, 0], photo[:, -1]])
    background = np.median(border, axis=0)
    pixels = photo.reshape(-1, 3)
    return pixels[np.linalg.norm(pixels - background, axis=-1) > radius]
