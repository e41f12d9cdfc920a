"""Config of the `teacher` group: the model or rules that label room/product pairs."""

from dataclasses import dataclass

from mars_core.config.data import CATEGORY_PATTERN
from mars_core.config.server import ServerConfig
from mars_core.config.vlm import VLMConfig
from mars_core.infra.knob import check_knobs, knob

TEACHER_KINDS = ("metadata", "vlm", "openai")
# The metadata teacher's scores for a product that does not belong.
MISFIT_SCORES = ("score_wrong_room", "score_wrong_setting")


@dataclass
class TeacherConfig(VLMConfig):
    """Labels room/product pairs with a score and rationale for distillation.

    The metadata teacher's knowledge (`room_fit`, `outdoor_rooms`, the setting words and the
    scores it gives) is plain furniture knowledge a user reads and overrides for their own
    room classes and catalogue; it never sees a generated world's ground truth.
    """

    kind: str = knob(
        "metadata",
        "metadata (room type, category and listing text), vlm or openai",
        choices=TEACHER_KINDS,
    )
    server: ServerConfig = knob(
        ServerConfig(), "kind=openai: the servers of the model (OpenAI-compatible, e.g. vLLM)"
    )
    max_new_tokens: int = knob(96, "tokens the teacher may generate per answer", ge=1)
    batch_size: int = knob(
        64, "pairs per generate call / request window; one label shard each", ge=1
    )
    shard_pairs: int = knob(
        256, "pairs per mapped labelling task (the unit of parallel work)", ge=1
    )
    max_attempts: int = knob(
        1,
        "answers asked per pair before it is stored as failed (1: the metadata teacher's rules)",
        ge=1,
    )
    retry_temperature: float = knob(
        0.7, "sampling temperature of the 2nd and later attempts (the 1st is greedy)", gt=0
    )
    room_fit: dict[str, list[str]] = knob(
        {}, "metadata: room type -> categories that belong there (e.g. kitchen: [CHAIR, TABLE])"
    )
    outdoor_rooms: list[str] = knob([], "metadata: room types that are outdoors (pool, patio)")
    outdoor_words: list[str] = knob(
        [], "metadata: listing words that mark a product for outdoor use (patio, weatherproof)"
    )
    indoor_words: list[str] = knob(
        [], "metadata: listing words that mark a product for indoor use (indoor use only)"
    )
    unmarked_setting: str = knob(
        "indoor",
        "metadata: the setting of a listing that names none, of a category room_fit lists both "
        "indoors and outdoors (outdoor furniture is sold as outdoor, so indoor)",
        choices=("indoor", "outdoor"),
    )
    score_fits: float = knob(
        0.9,
        "metadata: room_fit lists the category for the room type (colour not judged, or not "
        "readable)",
        ge=0,
        le=1,
    )
    colour_harmony: bool = knob(
        False,
        "metadata: among fits, grade colour harmony with the room photo (teacher.colours, "
        "mars_core/teacher/colour.py): score_colour_match or score_colour_clash. Off by "
        "default: the tiny student trained on graded fits abstained more where something fits "
        "(bench/RESULTS.md, learning on every world)",
    )
    score_colour_match: float = knob(
        1.0, "metadata, colour_harmony: it fits and its colour is one of the room's", ge=0, le=1
    )
    score_colour_clash: float = knob(
        0.8, "metadata, colour_harmony: it fits and its colour clashes with the room's", ge=0, le=1
    )
    colours: dict[str, list[int]] = knob(
        {},
        "metadata: named colours (name -> [r, g, b]) the teacher reads room photos and products "
        "in, to grade colour harmony among fits; empty: colour is not judged",
    )
    colour_words: dict[str, list[str]] = knob(
        {}, "metadata: more words a listing's colour may use per named colour (blue: [navy])"
    )
    colour_radius: float = knob(
        30.0, "metadata: a pixel is the nearest named colour within this RGB distance", gt=0
    )
    colour_min_share: float = knob(
        0.05,
        "metadata: a room's colours are the named colours covering at least this share of its "
        "photo (a product image's: its most covered, of the pixels not background)",
        gt=0,
        le=1,
    )
    colour_sample_px: int = knob(
        64, "metadata: photos are read for colour at most this many pixels a side", ge=8
    )
    score_unknown: float = knob(
        0.5,
        "metadata: room_fit never mentions the category (or the room type) and the setting "
        "agrees; the dataset card counts these pairs",
        ge=0,
        le=1,
    )
    score_wrong_room: float = knob(
        0.2, "metadata: room_fit lists the category, but only for other room types", ge=0, le=1
    )
    score_wrong_setting: float = knob(
        0.1,
        "metadata: the listing (or else the category) says indoor and the room is outdoors, "
        "or the other way round; decides before room_fit",
        ge=0,
        le=1,
    )
    fit_threshold: float = knob(
        0.5, "scores at or above this count as 'fits' (dataset card)", ge=0, le=1
    )
    rationale_samples: int = knob(20, "rationales shown in the dataset card logged to MLflow", ge=0)

    def __post_init__(self) -> None:
        check_knobs(self, "teacher")
        self.server.check_served("teacher", self.kind == "openai")
        self._check_metadata()
        if self.kind == "metadata":
            return
        super().__post_init__()

    def _check_metadata(self) -> None:
        for room_type, categories in self.room_fit.items():
            bad = [c for c in categories if not CATEGORY_PATTERN.fullmatch(c)]
            if bad:
                raise ValueError(
                    f"teacher.room_fit.{room_type} lists {bad}: categories are upper-case "
                    "catalogue categories such as BED or PATIO_TABLE"
                )
        if self.score_fits < self.fit_threshold:
            raise ValueError(
                f"teacher.score_fits must be >= teacher.fit_threshold ({self.fit_threshold}): "
                "it labels a product that belongs"
            )
        if not self.fit_threshold <= self.score_colour_clash < self.score_colour_match:
            raise ValueError(
                f"teacher.score_colour_clash ({self.score_colour_clash}) must be at least "
                f"teacher.fit_threshold ({self.fit_threshold}) and under "
                f"teacher.score_colour_match ({self.score_colour_match}): a fit that clashes is "
                "still a fit, one that matches the room's colours the better one"
            )
        for name, rgb in self.colours.items():
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError(f"teacher.colours.{name} is {rgb}: give [r, g, b], each 0 to 255")
        for name in MISFIT_SCORES:
            if getattr(self, name) >= self.fit_threshold:
                raise ValueError(
                    f"teacher.{name} must be < teacher.fit_threshold ({self.fit_threshold}): "
                    "it labels a product that does not belong"
                )
