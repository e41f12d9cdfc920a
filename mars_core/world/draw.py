"""Small, cheap drawings of products and rooms with visible cues for every attribute.

Products are photographed like ABO listings: a silhouette on white. Category = silhouette,
colour = fill, style = texture (modern plain, rustic wood grain, classic lattice); an outdoor
version of a shared type is slatted (white gaps across it, like teak or aluminium slats). Rooms show
their type by layout (bed, bathtub, counter, sofa, dining set, pool, lawn), outdoor rooms by
a sky band, their palette by wall/surface and accent colours and their style by the same
textures. Everything is drawn in unit coordinates and scaled, with a little jitter so no two
images are identical.
"""

from __future__ import annotations

import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from mars_core.world.vocab import COLOURS, OUTDOOR_VERSIONS, Category

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]
# A shape in unit coordinates: ("rect" | "ellipse", box) or ("poly", points).
Shape = tuple[str, tuple[float, ...] | tuple[tuple[float, float], ...]]

WHITE: RGB = (255, 255, 255)
OUTLINE: RGB = (40, 35, 30)
SKY: RGB = (175, 212, 240)
LEAF: RGB = (45, 120, 50)
GLASS: RGB = (200, 215, 228)

SILHOUETTES: dict[str, list[Shape]] = {
    "BED": [
        ("rect", (0.10, 0.25, 0.20, 0.80)),
        ("rect", (0.10, 0.50, 0.90, 0.70)),
        ("rect", (0.84, 0.45, 0.90, 0.80)),
    ],
    "SOFA": [
        ("rect", (0.15, 0.30, 0.85, 0.56)),
        ("rect", (0.10, 0.52, 0.90, 0.72)),
        ("rect", (0.06, 0.42, 0.18, 0.72)),
        ("rect", (0.82, 0.42, 0.94, 0.72)),
        ("rect", (0.12, 0.72, 0.16, 0.80)),
        ("rect", (0.84, 0.72, 0.88, 0.80)),
    ],
    "CHAIR": [
        ("rect", (0.30, 0.12, 0.38, 0.86)),
        ("rect", (0.30, 0.50, 0.72, 0.57)),
        ("rect", (0.64, 0.57, 0.72, 0.86)),
    ],
    "TABLE": [
        ("rect", (0.08, 0.34, 0.92, 0.43)),
        ("rect", (0.14, 0.43, 0.20, 0.84)),
        ("rect", (0.80, 0.43, 0.86, 0.84)),
    ],
    "STOOL_SEATING": [
        ("ellipse", (0.32, 0.22, 0.68, 0.32)),
        ("poly", ((0.38, 0.30), (0.43, 0.30), (0.36, 0.88), (0.31, 0.88))),
        ("poly", ((0.57, 0.30), (0.62, 0.30), (0.69, 0.88), (0.64, 0.88))),
        ("rect", (0.36, 0.64, 0.64, 0.68)),
    ],
    "LAMP": [
        ("poly", ((0.36, 0.14), (0.64, 0.14), (0.76, 0.46), (0.24, 0.46))),
        ("rect", (0.48, 0.46, 0.52, 0.80)),
        ("ellipse", (0.34, 0.76, 0.66, 0.86)),
    ],
    "RUG": [("rect", (0.08, 0.22, 0.92, 0.78))],
    "CABINET": [("rect", (0.26, 0.12, 0.74, 0.88))],
    "MIRROR": [("ellipse", (0.28, 0.08, 0.72, 0.92))],
    "PLANTER": [("poly", ((0.32, 0.50), (0.68, 0.50), (0.62, 0.88), (0.38, 0.88)))],
    "OUTDOOR_LOUNGE_CHAIR": [
        ("rect", (0.08, 0.55, 0.74, 0.63)),
        ("poly", ((0.70, 0.63), (0.78, 0.63), (0.93, 0.28), (0.86, 0.25))),
        ("rect", (0.12, 0.63, 0.16, 0.78)),
        ("rect", (0.64, 0.63, 0.68, 0.78)),
    ],
    "PATIO_TABLE": [
        ("ellipse", (0.12, 0.32, 0.88, 0.46)),
        ("rect", (0.47, 0.44, 0.53, 0.82)),
        ("rect", (0.30, 0.80, 0.70, 0.86)),
    ],
    "PATIO_UMBRELLA": [
        ("poly", ((0.08, 0.42), (0.50, 0.10), (0.92, 0.42))),
        ("rect", (0.485, 0.40, 0.515, 0.86)),
        ("rect", (0.36, 0.84, 0.64, 0.90)),
    ],
}

# Details drawn over the textured silhouette in a fixed colour (pillow, knobs, leaves...).
DETAILS: dict[str, list[tuple[RGB, Shape]]] = {
    "BED": [(WHITE, ("ellipse", (0.22, 0.42, 0.40, 0.52)))],
    "CABINET": [
        (OUTLINE, ("rect", (0.495, 0.14, 0.505, 0.86))),
        (OUTLINE, ("ellipse", (0.44, 0.46, 0.47, 0.50))),
        (OUTLINE, ("ellipse", (0.53, 0.46, 0.56, 0.50))),
    ],
    "MIRROR": [(GLASS, ("ellipse", (0.34, 0.15, 0.66, 0.85)))],
    "PLANTER": [
        (LEAF, ("ellipse", (0.30, 0.22, 0.52, 0.52))),
        (LEAF, ("ellipse", (0.46, 0.16, 0.70, 0.50))),
        (LEAF, ("ellipse", (0.40, 0.30, 0.58, 0.52))),
    ],
    "RUG": [
        (WHITE, ("rect", (0.16, 0.30, 0.84, 0.31))),
        (WHITE, ("rect", (0.16, 0.69, 0.84, 0.70))),
    ],
    "PATIO_TABLE": [(OUTLINE, ("ellipse", (0.47, 0.37, 0.53, 0.41)))],
}


def shade(rgb: RGB, factor: float) -> RGB:
    """Darker (< 1) or lighter (> 1) version of a colour, clipped to 0..255."""
    return tuple(max(0, min(255, round(c * factor))) for c in rgb)  # type: ignore[return-value]


def texture(style: str, rgb: RGB, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A patch in `rgb` carrying the style cue: plain, wood grain stripes or a lattice."""
    width, height = size
    patch = Image.new("RGB", size, rgb)
    draw = ImageDraw.Draw(patch)
    if style == "rustic":
        step = max(3, width // 24)
        dark = shade(rgb, 0.72)
        for y in range(rng.randrange(step), height, step):
            wobble = rng.choice((-1, 0, 1))
            draw.line([(0, y), (width, y + wobble)], fill=dark, width=max(1, step // 3))
    elif style == "classic":
        step = max(6, width // 10)
        light = shade(rgb, 1.35)
        for offset in range(-height, width, step):
            draw.line([(offset, 0), (offset + height, height)], fill=light, width=1)
            draw.line([(offset + height, 0), (offset, height)], fill=light, width=1)
    return patch


class Canvas:
    """Unit-coordinate drawing on a square image, with a per-image jitter transform."""

    def __init__(self, px: int, background: RGB, rng: random.Random, jitter: float) -> None:
        self.px = px
        self.image = Image.new("RGB", (px, px), background)
        self.rng = rng
        scale = 1.0 - rng.uniform(0.0, jitter)
        self.scale = (scale * rng.uniform(0.92, 1.0), scale)
        self.shift = (
            rng.uniform(0.0, 1.0 - self.scale[0]) + rng.uniform(-jitter, jitter) * 0.2,
            rng.uniform(0.0, 1.0 - self.scale[1]),
        )

    def point(self, x: float, y: float) -> tuple[float, float]:
        return (
            (self.shift[0] + x * self.scale[0]) * self.px,
            (self.shift[1] + y * self.scale[1]) * self.px,
        )

    def draw_shape(self, draw: ImageDraw.ImageDraw, shape: Shape, fill: RGB | int) -> None:
        kind, coords = shape
        if kind == "poly":
            draw.polygon([self.point(x, y) for x, y in coords], fill=fill)  # type: ignore[misc]
            return
        x0, y0, x1, y1 = coords  # type: ignore[misc]
        box = (*self.point(x0, y0), *self.point(x1, y1))
        if kind == "rect":
            draw.rectangle(box, fill=fill)
        else:
            draw.ellipse(box, fill=fill)

    def textured(
        self, shapes: list[Shape], rgb: RGB, style: str, outline: bool = True, slats: bool = False
    ) -> None:
        """Fill the union of `shapes` with the style texture (cut into slats when asked), then
        trace its edge."""
        mask = Image.new("L", self.image.size, 0)
        mask_draw = ImageDraw.Draw(mask)
        for shape in shapes:
            self.draw_shape(mask_draw, shape, 255)
        self.image.paste(texture(style, rgb, self.image.size, self.rng), mask=mask)
        if slats:
            self.image.paste(WHITE, mask=ImageChops.multiply(mask, slat_gaps(self.image.size)))
        if outline:
            self.image.paste(OUTLINE, mask=mask.filter(ImageFilter.FIND_EDGES))

    def flat(self, shape: Shape, rgb: RGB) -> None:
        self.draw_shape(ImageDraw.Draw(self.image), shape, rgb)


def slat_gaps(size: tuple[int, int]) -> Image.Image:
    """A mask of thin horizontal gaps, about eight across the image."""
    width, height = size
    gaps = Image.new("L", size, 0)
    draw = ImageDraw.Draw(gaps)
    step = max(4, height // 8)
    for y in range(step // 2, height, step):
        draw.rectangle((0, y, width, y + max(1, step // 4)), fill=255)
    return gaps


def product_image(
    category: Category, colour: str, style: str, px: int, rng: random.Random
) -> Image.Image:
    """A product shot: the category's silhouette in its colour and style texture, on white;
    slatted when it is an outdoor version of a type made for both settings."""
    product_type = category.product_type
    canvas = Canvas(px, WHITE, rng, jitter=0.2)
    slats = category.setting == "outdoor" and product_type in OUTDOOR_VERSIONS
    canvas.textured(SILHOUETTES[product_type], COLOURS[colour], style, slats=slats)
    for rgb, shape in DETAILS.get(product_type, []):
        canvas.flat(shape, rgb)
    return canvas.image


def _bedroom(canvas: Canvas, accent: RGB, style: str) -> None:
    canvas.textured(
        [("rect", (0.05, 0.40, 0.16, 0.80)), ("rect", (0.05, 0.60, 0.70, 0.80))], accent, style
    )
    canvas.flat(("ellipse", (0.18, 0.54, 0.34, 0.62)), WHITE)
    canvas.flat(("rect", (0.76, 0.58, 0.92, 0.80)), shade(accent, 0.6))


def _bathroom(canvas: Canvas, accent: RGB, style: str) -> None:
    for step in range(12):
        x = step / 12
        canvas.flat(("rect", (x, 0.35, x + 0.005, 0.62)), (205, 205, 205))
    canvas.flat(("rect", (0.05, 0.55, 0.60, 0.80)), (245, 245, 245))
    canvas.textured([("rect", (0.10, 0.50, 0.22, 0.70))], accent, style)
    canvas.flat(("ellipse", (0.70, 0.10, 0.90, 0.36)), GLASS)
    canvas.flat(("ellipse", (0.68, 0.62, 0.86, 0.78)), (245, 245, 245))


def _kitchen(canvas: Canvas, accent: RGB, style: str) -> None:
    canvas.textured(
        [("rect", (0.0, 0.45, 1.0, 0.70)), ("rect", (0.04, 0.08, 0.48, 0.28))], accent, style
    )
    canvas.flat(("rect", (0.0, 0.42, 1.0, 0.46)), (90, 90, 95))
    canvas.flat(("ellipse", (0.60, 0.42, 0.70, 0.45)), OUTLINE)
    canvas.flat(("ellipse", (0.75, 0.42, 0.85, 0.45)), OUTLINE)


def _living_room(canvas: Canvas, accent: RGB, style: str) -> None:
    canvas.flat(("rect", (0.60, 0.10, 0.86, 0.40)), SKY)
    sofa: list[Shape] = [
        ("rect", (0.10, 0.42, 0.58, 0.62)),
        ("rect", (0.06, 0.52, 0.62, 0.74)),
    ]
    canvas.textured(sofa, accent, style)
    canvas.flat(("rect", (0.66, 0.70, 0.92, 0.76)), (110, 80, 50))


def _dining_room(canvas: Canvas, accent: RGB, style: str) -> None:
    canvas.flat(("rect", (0.495, 0.0, 0.505, 0.22)), OUTLINE)
    canvas.flat(("ellipse", (0.42, 0.20, 0.58, 0.30)), (250, 230, 150))
    chairs: list[Shape] = [
        ("rect", (0.12, 0.40, 0.18, 0.84)),
        ("rect", (0.12, 0.62, 0.28, 0.67)),
        ("rect", (0.82, 0.40, 0.88, 0.84)),
        ("rect", (0.72, 0.62, 0.88, 0.67)),
    ]
    canvas.textured(chairs, accent, style)
    canvas.flat(("rect", (0.26, 0.52, 0.74, 0.57)), (110, 80, 50))
    canvas.flat(("rect", (0.30, 0.57, 0.34, 0.84)), (110, 80, 50))
    canvas.flat(("rect", (0.66, 0.57, 0.70, 0.84)), (110, 80, 50))


FLOORS: dict[str, RGB] = {
    "bedroom": (150, 110, 72),
    "bathroom": (232, 232, 232),
    "kitchen": (70, 70, 75),
    "living_room": (190, 180, 160),
    "dining_room": (160, 122, 82),
}
INDOOR_FURNISHING = {
    "bedroom": _bedroom,
    "bathroom": _bathroom,
    "kitchen": _kitchen,
    "living_room": _living_room,
    "dining_room": _dining_room,
}


def _indoor(canvas: Canvas, room_type: str, palette: tuple[RGB, RGB], style: str) -> None:
    """Wall in the main colour and the style texture, a typed floor, accent-coloured furniture."""
    wall = texture(style, palette[0], (canvas.px, round(canvas.px * 0.62)), canvas.rng)
    canvas.image.paste(wall, (0, 0))
    canvas.image.paste(FLOORS[room_type], (0, round(canvas.px * 0.62), canvas.px, canvas.px))
    INDOOR_FURNISHING[room_type](canvas, palette[1], style)


def _pool(canvas: Canvas, palette: tuple[RGB, RGB], style: str) -> None:
    """Sky, a deck in the accent colour and style, and a big pool of water in the main colour."""
    horizon = round(canvas.px * 0.22)
    canvas.image.paste(SKY, (0, 0, canvas.px, horizon))
    deck = texture(style, palette[1], (canvas.px, canvas.px - horizon), canvas.rng)
    canvas.image.paste(deck, (0, horizon))
    canvas.flat(("rect", (0.10, 0.36, 0.90, 0.94)), palette[0])
    for row in range(4):
        y = 0.45 + row * 0.12
        canvas.flat(("rect", (0.18, y, 0.82, y + 0.012)), shade(palette[0], 1.5))
    canvas.flat(("rect", (0.80, 0.30, 0.81, 0.48)), (90, 90, 95))
    canvas.flat(("rect", (0.86, 0.30, 0.87, 0.48)), (90, 90, 95))


def _patio(canvas: Canvas, palette: tuple[RGB, RGB], style: str) -> None:
    """Sky, a hedge, a lawn in the main colour and pavers in the accent colour and style."""
    horizon = round(canvas.px * 0.30)
    canvas.image.paste(SKY, (0, 0, canvas.px, horizon))
    canvas.image.paste(palette[0], (0, horizon, canvas.px, canvas.px))
    canvas.flat(("rect", (0.0, 0.28, 1.0, 0.36)), LEAF)
    canvas.textured(
        [("poly", ((0.25, 0.50), (0.75, 0.50), (0.98, 1.0), (0.02, 1.0)))], palette[1], style
    )


def room_image(
    room_type: str, palette: tuple[str, str], style: str, px: int, rng: random.Random
) -> Image.Image:
    """A room photo whose layout shows its type, with its palette and style as cues."""
    canvas = Canvas(px, WHITE, rng, jitter=0.08)
    colours = (COLOURS[palette[0]], COLOURS[palette[1]])
    if room_type == "pool":
        _pool(canvas, colours, style)
    elif room_type == "patio":
        _patio(canvas, colours, style)
    else:
        _indoor(canvas, room_type, colours, style)
    light = rng.uniform(0.92, 1.08)
    return canvas.image.point(lambda value: min(255, round(value * light)))
