"""How well a product fits a room in the generated world: the ground truth.

Function first: a product that does not belong in the room's type (a bed by the pool, a
sun lounger in the kitchen) gets grade 0, however well it matches. Among products that fit,
style and colour each add a grade: 1 (fits), 2 (fits, matches style or colours), 3 (fits,
matches both). The trap is explicit: pool photos are mostly blue water and many beds are
blue, so a blue bed looks right for a pool photo and is wrong (`trap`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mars_core.world.vocab import OUTDOOR_ROOMS, Category


@dataclass(frozen=True)
class Room:
    """A generated room photo."""

    room_id: str
    room_type: str
    style: str
    palette: tuple[str, str]  # main (wall / water / lawn) and accent colour
    file: str  # path under the rooms folder


@dataclass(frozen=True)
class Product:
    """A generated product; twins share everything but domain and language."""

    item_id: str
    category: Category
    colour: str
    colour_label: str
    style: str
    material: str
    brand: str
    suffix: str
    image_ids: tuple[str, str]  # main, other
    domains: tuple[str, ...]  # first is the home listing, others are twins
    foreign_name: bool  # named only in German


@dataclass(frozen=True)
class Judgement:
    grade: int
    fits: bool
    style_match: bool
    color_match: bool
    trap: bool
    reason: str


def _words(room_type: str) -> str:
    return room_type.replace("_", " ")


def unfit_reason(room: Room, category: Category) -> str:
    outdoor_room = room.room_type in OUTDOOR_ROOMS
    if outdoor_room and category.setting == "indoor":
        return "indoor furniture in an outdoor setting"
    if not outdoor_room and category.setting == "outdoor":
        return "outdoor furniture in an indoor room"
    return f"a {category.noun} does not belong in a {_words(room.room_type)}"


def fit_reason(room: Room, product: Product, style_match: bool, color_match: bool) -> str:
    noun, place = product.category.noun, _words(room.room_type)
    if style_match and color_match:
        look = f"{product.style} {product.colour} {noun}"
        return f"a {look} that matches the {place}'s style and colours"
    if style_match:
        return f"belongs in the {place} and matches its {room.style} style, not its colours"
    if color_match:
        return f"belongs in the {place} and matches its colours, not its {room.style} style"
    return f"belongs in the {place} but clashes with its {room.style} style and colours"


def judge(room: Room, product: Product) -> Judgement:
    """Grade 0..3, the flags behind it and a one-sentence reason."""
    fits = room.room_type in product.category.rooms
    style_match = product.style == room.style
    color_match = product.colour in room.palette
    if not fits:
        reason = unfit_reason(room, product.category)
        return Judgement(0, False, style_match, color_match, color_match, reason)
    grade = 1 + style_match + color_match
    reason = fit_reason(room, product, style_match, color_match)
    return Judgement(grade, True, style_match, color_match, False, reason)
