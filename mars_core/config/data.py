"""Config of the `data` group: where the catalogue and room photos come from, and the
generated world (`data.world`)."""

import re
from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob

DATA_SOURCES = ("synthetic", "abo")
ACQUIRE_MODES = ("local", "download")
CATEGORY_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*")
# House Rooms' five class folders (its spelling) and outdoor settings. Outdoor folders map to
# the two outdoor room types the teacher and the generated world know (pool, patio).
DEFAULT_ROOM_CLASSES = {
    "Bathroom": "bathroom",
    "Bedroom": "bedroom",
    "Dinning": "dining_room",
    "Kitchen": "kitchen",
    "Livingroom": "living_room",
    "Pool": "pool",
    "Poolside": "pool",
    "Patio": "patio",
    "Garden": "patio",
    "Balcony": "patio",
    "Terrace": "patio",
    "Deck": "patio",
}
ROOM_CLASS_KNOB = "data.extra_room_classes"

ABO_CATEGORIES = {
    "BED": "BED",
    "SOFA": "SOFA",
    "CHAIR": "CHAIR",
    "TABLE": "TABLE",
    "DESK": "DESK",
    "STOOL_SEATING": "STOOL",
    "OTTOMAN": "OTTOMAN",
    "BENCH": "BENCH",
    "LAMP": "LAMP",
    "LIGHT_FIXTURE": "LAMP",
    "RUG": "RUG",
    "CABINET": "CABINET",
    "DRESSER": "DRESSER",
    "SHELF": "SHELF",
    "MIRROR": "MIRROR",
    "HOME_MIRROR": "MIRROR",
    "PLANTER": "PLANTER",
    "VASE": "VASE",
    "PILLOW": "PILLOW",
    "CLOCK": "CLOCK",
    "WALL_ART": "WALL_ART",
    "OUTDOOR_LIVING": "OUTDOOR_FURNITURE",
    "OUTDOOR_LOUNGE_CHAIR": "OUTDOOR_LOUNGE_CHAIR",
    "PATIO_TABLE": "PATIO_TABLE",
    "PATIO_UMBRELLA": "PATIO_UMBRELLA",
}


@dataclass
class WorldConfig:
    """Size and make-up of the generated world (`data.source=synthetic`); see `mars_core.world`."""

    products: int = knob(
        300, "product listings, twins included, broken ones not (one per category at least)", ge=13
    )
    rooms_per_type: int = knob(
        24,
        "room photos per room type (5 indoor types, pool, patio); the student learns room "
        "types from them, and 6 per type left it guessing on held-out rooms",
        ge=1,
    )
    product_px: int = knob(96, "side of each product image in pixels", ge=32)
    room_px: int = knob(128, "side of each room photo in pixels", ge=32)
    shards: int = knob(4, "listings_<i>.json.gz files the listings are spread over", ge=1)
    twin_share: float = knob(
        0.05,
        "share of products listed again on a second domain (a twin needs a product)",
        ge=0,
        le=0.5,
    )
    blue_bed_share: float = knob(0.3, "share of beds drawn blue: the pool-photo trap", ge=0, le=1)
    foreign_name_share: float = knob(
        0.05, "share of listings named only in a non-preferred language", ge=0, le=1
    )
    broken_records: bool = knob(True, "add one bad record per quarantine reason to show that path")
    shared_outdoor_types: bool = knob(
        True,
        "list chairs, tables, sofas, lamps and rugs in indoor and outdoor versions under one "
        "category, told apart by listing words and look (as real ABO does); false: the old "
        "shape, where only outdoor-only categories are outdoors",
    )
    outdoor_version_share: float = knob(
        0.35, "share of each shared type's products listed as its outdoor version", ge=0, le=1
    )
    outdoor_only_categories: bool = knob(
        True,
        "list the outdoor-only categories (lounge chairs, patio tables, umbrellas); false: "
        "outdoor furniture exists only as outdoor versions inside shared types (and planters, "
        "made for either), as in real ABO (data=shared_types)",
    )

    def __post_init__(self) -> None:
        check_knobs(self, "data.world")
        if not (self.outdoor_only_categories or self.shared_outdoor_types):
            raise ValueError(
                "data.world.outdoor_only_categories=false needs shared_outdoor_types=true: "
                "else nothing but planters is made for outdoor rooms"
            )


@dataclass
class DataConfig:
    """Where the catalogue and room photos come from and how listings become catalogue rows."""

    name: str = knob("synthetic", "label for logs and MLflow")
    source: str = knob(
        "synthetic", "synthetic (generated world) or abo (ABO layout on disk)", choices=DATA_SOURCES
    )
    raw_dir: str = knob("", "input folder: the ABO layout, or where the generated world is written")
    rooms_dir: str = knob(
        "", "room photos, one folder per class (House Rooms layout); empty = none"
    )
    truth_file: str = knob("", "ground truth of the generated world (parquet); empty for real data")
    out_dir: str = knob("", "where the catalogue, rooms and quarantine tables are written")
    seed: int = knob(0, "generator and split seed")
    acquire: str = knob(
        "local", "abo only: local (raw_dir already holds ABO) or download", choices=ACQUIRE_MODES
    )
    base_url: str = knob("", "download: URL folder holding the archives")
    archives: list[str] = knob([], "download: archive file names under base_url")
    archive_sizes: dict[str, int] = knob(
        {}, "download: expected bytes per archive; unset = server's"
    )
    download_dir: str = knob("", "download: where archives (and .part files) are kept")
    languages: list[str] = knob(
        ["en_US", "en_GB", "en_IN", "en_CA", "en_AU", "en_SG", "en_AE"],
        "language tags to prefer, in order; any other language is the fallback",
    )
    category_map: dict[str, str] = knob(
        ABO_CATEGORIES,
        "ABO product_type -> funnel category; listings of other types are quarantined as "
        "unmapped_category with the type in `detail` (count them there to extend this map)",
    )
    room_class_map: dict[str, str] = knob(
        dict(DEFAULT_ROOM_CLASSES), "room photo folder name -> room type (House Rooms + outdoor)"
    )
    extra_room_classes: list[str] = knob(
        [], "more class folders as Folder:room_type, e.g. data.extra_room_classes=[Garage:garage]"
    )
    max_name_chars: int = knob(200, "product names are cut to this many characters", ge=1)
    max_text_chars: int = knob(
        1000, "description and each bullet point are cut to this length", ge=1
    )
    max_keywords: int = knob(30, "keep at most this many keywords per product", ge=1)
    max_keyword_chars: int = knob(60, "each keyword is cut to this many characters", ge=1)
    max_bullets: int = knob(10, "bullet points per product that go into search_text", ge=1)
    max_search_chars: int = knob(
        4000, "search_text (what BM25 indexes) is cut to this length", ge=1
    )
    test_fraction: float = knob(
        0.25, "share of rooms and of product images held out for test", gt=0, lt=1
    )
    max_image_pixels: int = knob(
        50_000_000,
        "the one pixel limit of product images and room photos: ingest quarantines larger ones "
        "(or decompression bombs); embedder, teacher, student, agent and report refuse them",
        ge=1,
    )
    world: WorldConfig = knob(WorldConfig(), "the generated world (source=synthetic)")

    def __post_init__(self) -> None:
        check_knobs(self, "data")
        if self.acquire == "download" and not (self.base_url and self.archives):
            raise ValueError("data.acquire=download needs data.base_url and data.archives")
        self.room_classes()
        for product_type, category in self.category_map.items():
            if not CATEGORY_PATTERN.fullmatch(category):
                raise ValueError(
                    f"data.category_map.{product_type} = {category!r}: categories are upper-case "
                    "identifiers such as BED or PATIO_TABLE"
                )

    def room_classes(self) -> dict[str, str]:
        """Class folder -> room type: `room_class_map` plus `extra_room_classes` entries."""
        classes = dict(self.room_class_map)
        for entry in self.extra_room_classes:
            folder, colon, room_type = (part.strip() for part in str(entry).partition(":"))
            if not (folder and colon and room_type):
                raise ValueError(
                    f"{ROOM_CLASS_KNOB} entry {entry!r}: write Folder:room_type, "
                    f"e.g. {ROOM_CLASS_KNOB}=[Garage:garage]"
                )
            classes[folder] = room_type
        return classes
