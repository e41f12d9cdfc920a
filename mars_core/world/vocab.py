"""The generated world's vocabulary: room types, product categories, colours, styles.

This is the world's physics, not a knob: which categories belong in which rooms decides the
ground truth, and the drawings in `draw.py` give every attribute a visible cue (category =
silhouette, colour = fill, style = texture, room type = layout, outdoor = sky), so both
"looks alike" and "belongs here" can be learned from pixels. Sizes are knobs (`data.world`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

INDOOR_ROOMS = ("bedroom", "bathroom", "kitchen", "living_room", "dining_room")
OUTDOOR_ROOMS = ("pool", "patio")
ROOM_TYPES = INDOOR_ROOMS + OUTDOOR_ROOMS

# Folder names of the Kaggle "House Rooms" set (its spelling, "Dinning" included), plus the
# world's outdoor classes. `data.room_class_map` maps them back to room types.
ROOM_FOLDERS = {
    "bedroom": "Bedroom",
    "bathroom": "Bathroom",
    "kitchen": "Kitchen",
    "living_room": "Livingroom",
    "dining_room": "Dinning",
    "pool": "Pool",
    "patio": "Patio",
}

COLOURS: dict[str, tuple[int, int, int]] = {
    "blue": (40, 90, 205),
    "red": (200, 45, 45),
    "green": (55, 150, 65),
    "yellow": (235, 200, 50),
    "orange": (235, 125, 35),
    "grey": (125, 125, 130),
    "brown": (120, 78, 42),
    "beige": (214, 192, 152),
}
# Marketing names a listing may show; the canonical colour travels in standardized_values.
COLOUR_VARIANTS = {
    "blue": ("Blue", "Navy Blue", "Ocean Blue"),
    "red": ("Red", "Cherry Red", "Crimson"),
    "green": ("Green", "Sage Green", "Forest Green"),
    "yellow": ("Yellow", "Mustard", "Lemon Yellow"),
    "orange": ("Orange", "Burnt Orange", "Tangerine"),
    "grey": ("Grey", "Charcoal Grey", "Light Gray"),
    "brown": ("Brown", "Walnut Brown", "Espresso"),
    "beige": ("Beige", "Sand", "Cream Beige"),
}
STYLES = ("modern", "rustic", "classic")

# Outdoor rooms: the first palette colour is the dominant surface (water, lawn).
POOL_WATER = "blue"
PATIO_LAWN = "green"


@dataclass(frozen=True)
class Category:
    """One product type of the world and where such a product belongs."""

    product_type: str  # the ABO product_type written in listings
    noun: str
    noun_de: str  # for listings named only in German
    setting: str  # indoor, outdoor or any
    rooms: tuple[str, ...]  # room types where it fits
    materials: tuple[str, ...]
    node: str  # ABO browse-node path
    size_cm: tuple[int, int, int]  # typical length, width, height
    suffixes: tuple[str, ...]  # name endings, for varied titles


CATEGORIES = (
    Category(
        "BED", "bed", "Bett", "indoor", ("bedroom",), ("Wood", "Metal", "Upholstered"),
        "/Categories/Home & Kitchen/Furniture/Bedroom Furniture/Beds, Frames & Bases/Beds",
        (200, 150, 110), ("Frame, Queen", "with Headboard", "Platform Bed, King"),
    ),
    Category(
        "SOFA", "sofa", "Sofa", "indoor", ("living_room",), ("Fabric", "Leather", "Velvet"),
        "/Categories/Home & Kitchen/Furniture/Living Room Furniture/Sofas & Couches",
        (210, 90, 85), ("3-Seater", "Loveseat", "Couch with Cushions"),
    ),
    Category(
        "CHAIR", "chair", "Stuhl", "indoor",
        ("dining_room", "kitchen", "living_room", "bedroom"), ("Wood", "Metal", "Fabric"),
        "/Categories/Home & Kitchen/Furniture/Kitchen & Dining Room Furniture/Chairs",
        (50, 55, 90), ("Dining Chair", "Accent Chair", "Side Chair, Set of 2"),
    ),
    Category(
        "TABLE", "table", "Tisch", "indoor", ("dining_room", "kitchen", "living_room"),
        ("Wood", "Glass", "Metal"),
        "/Categories/Home & Kitchen/Furniture/Kitchen & Dining Room Furniture/Tables",
        (150, 90, 76), ("Dining Table", "Coffee Table", "Table for 4"),
    ),
    Category(
        "STOOL_SEATING", "stool", "Hocker", "indoor", ("kitchen",), ("Wood", "Metal"),
        "/Categories/Home & Kitchen/Furniture/Kitchen & Dining Room Furniture/Barstools",
        (40, 40, 75), ("Bar Stool", "Counter Stool, Set of 2", "Backless Stool"),
    ),
    Category(
        "LAMP", "lamp", "Lampe", "indoor", ("bedroom", "living_room"), ("Metal", "Ceramic"),
        "/Categories/Home & Kitchen/Lighting/Lamps & Shades/Table Lamps",
        (30, 30, 60), ("Table Lamp", "Floor Lamp", "Bedside Lamp with Shade"),
    ),
    Category(
        "RUG", "rug", "Teppich", "indoor", ("bedroom", "living_room", "dining_room"),
        ("Wool", "Jute", "Polypropylene"),
        "/Categories/Home & Kitchen/Home Décor/Area Rugs & Pads/Area Rugs",
        (230, 160, 1), ("Area Rug, 5x8", "Runner", "Shag Rug"),
    ),
    Category(
        "CABINET", "cabinet", "Schrank", "indoor", ("bathroom", "kitchen"), ("Wood", "MDF"),
        "/Categories/Home & Kitchen/Furniture/Bathroom Furniture/Cabinets",
        (60, 30, 80), ("Storage Cabinet", "Vanity Cabinet", "Cabinet with Doors"),
    ),
    Category(
        "MIRROR", "mirror", "Spiegel", "indoor", ("bathroom", "bedroom"), ("Metal", "Wood"),
        "/Categories/Home & Kitchen/Home Décor/Mirrors/Wall-Mounted Mirrors",
        (60, 3, 90), ("Wall Mirror", "Vanity Mirror", "Oval Mirror"),
    ),
    Category(
        "PLANTER", "planter", "Pflanzgefäß", "any", ROOM_TYPES, ("Ceramic", "Terracotta"),
        "/Categories/Patio, Lawn & Garden/Gardening & Lawn Care/Pots, Planters & Container "
        "Accessories",
        (30, 30, 35), ("Plant Pot", "Planter with Drainage", "Flower Pot, Large"),
    ),
    Category(
        "OUTDOOR_LOUNGE_CHAIR", "lounge chair", "Sonnenliege", "outdoor", OUTDOOR_ROOMS,
        ("Teak", "Aluminium", "Rattan"),
        "/Categories/Patio, Lawn & Garden/Patio Furniture & Accessories/Chaise Lounges",
        (190, 65, 40), ("Chaise Lounge", "Sun Lounger", "Pool Lounger"),
    ),
    Category(
        "PATIO_TABLE", "patio table", "Gartentisch", "outdoor", OUTDOOR_ROOMS,
        ("Teak", "Aluminium", "Resin"),
        "/Categories/Patio, Lawn & Garden/Patio Furniture & Accessories/Tables",
        (90, 90, 72), ("Bistro Table", "Outdoor Dining Table", "Side Table"),
    ),
    Category(
        "PATIO_UMBRELLA", "patio umbrella", "Sonnenschirm", "outdoor", OUTDOOR_ROOMS,
        ("Polyester", "Aluminium"),
        "/Categories/Patio, Lawn & Garden/Patio Furniture & Accessories/Umbrellas",
        (270, 270, 240), ("Market Umbrella, 9 ft", "Tilt Umbrella", "Parasol"),
    ),
)  # fmt: skip

CATEGORY_BY_TYPE = {category.product_type: category for category in CATEGORIES}


def world_categories(outdoor_only_categories: bool) -> tuple[Category, ...]:
    """The product types a world lists: all, or none of the outdoor-only ones, so that outdoor
    furniture exists only inside types made for both settings (a teak patio chair is a
    CHAIR), beside planters, as in real ABO (`data.world.outdoor_only_categories`)."""
    if outdoor_only_categories:
        return CATEGORIES
    return tuple(category for category in CATEGORIES if category.setting != "outdoor")


BRANDS = ("Rivet", "Stone & Beam", "Ravenna Home", "Amazon Basics", "Nook", "Alder & Ash")


# Product types that real catalogues list in indoor and outdoor versions under one category
# (a teak patio chair is a CHAIR): the versions differ in listing words and look, not in
# category. Each maps to how its outdoor version is named, made and browsed.
OUTDOOR_VERSIONS = {
    "CHAIR": ("patio chair", "Gartenstuhl", ("Teak", "Aluminium", "Resin Wicker"),
              "Patio Seating/Chairs", ("Weather-Resistant Armchair", "Stacking Chair, Set of 2")),
    "TABLE": ("patio dining table", "Gartentisch", ("Teak", "Aluminium", "Acacia"),
              "Patio Tables", ("Outdoor Dining Table", "All-Weather Table for 4")),
    "SOFA": ("patio sofa", "Gartensofa", ("Resin Wicker", "Teak", "Aluminium"),
             "Patio Seating/Sofas", ("Weatherproof Loveseat", "Outdoor 3-Seater")),
    "LAMP": ("outdoor lantern", "Gartenlaterne", ("Metal", "Resin"),
             "Outdoor Lighting/Lanterns", ("Solar Lantern", "Weatherproof Floor Lantern")),
    "RUG": ("outdoor rug", "Outdoor-Teppich", ("Polypropylene", "Recycled Plastic"),
            "Outdoor Rugs", ("UV-Resistant Patio Rug, 5x8", "Reversible Deck Mat")),
}  # fmt: skip
OUTDOOR_NODE = "/Categories/Patio, Lawn & Garden/Patio Furniture & Accessories/"


def outdoor_version(category: Category) -> Category:
    """The outdoor version of a shared product type: same ABO product type, outdoor rooms."""
    noun, noun_de, materials, node, suffixes = OUTDOOR_VERSIONS[category.product_type]
    return replace(
        category,
        noun=noun,
        noun_de=noun_de,
        setting="outdoor",
        rooms=OUTDOOR_ROOMS,
        materials=materials,
        node=OUTDOOR_NODE + node,
        suffixes=suffixes,
    )
