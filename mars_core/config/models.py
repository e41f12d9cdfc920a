"""Config of the three models: embedder (SigLIP), student agent and teacher."""

from dataclasses import dataclass

from mars_core.config.pipeline import CATEGORY_PATTERN
from mars_core.config.recipes import TinyClipRecipe, TinyVLMRecipe
from mars_core.knob import knob

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
TEACHER_KINDS = ("metadata", "vlm", "openai")
# The metadata teacher's scores for a product that does not belong.
MISFIT_SCORES = ("score_wrong_room", "score_wrong_setting")
STUDENT_KINDS = ("local", "openai")
# A product photo bounded to `product_max_pixels` keeps at least 1/GRID_SLACK of that area
# once its sides are floored to the processor's grid (an elongated photo can lose more than
# half), so it stays at or over `min_pixels` and the processor takes it as it is.
GRID_SLACK = 4


def _check_dtype_device(dtype: str, device: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} unknown; use one of {DTYPES}")
    if device not in DEVICES:
        raise ValueError(f"device {device!r} unknown; use one of {DEVICES}")


@dataclass
class EmbedderConfig:
    """An open_clip image/text embedder: the tiny model, SigLIP-so400m or any open_clip model."""

    name: str = knob("tiny", "label for logs and MLflow")
    model: str = knob("", "open_clip model name, or local-dir:<folder>; empty with a tiny recipe")
    pretrained: str | None = knob(None, "weights file for a built-in model name")
    tiny: TinyClipRecipe | None = knob(
        TinyClipRecipe(), "build this tiny model offline and load it instead; null for `model`"
    )
    tokenizer: str | None = knob(
        None, "folder with the HF tokenizer files, for built-in names whose tokenizer is on the hub"
    )
    batch_size: int = knob(32, "images or texts per forward pass")
    device: str = knob("auto", "auto, cpu or cuda")
    dtype: str = knob("float32", "float32, bfloat16 (CPU too, where supported) or float16")

    def __post_init__(self) -> None:
        _check_dtype_device(self.dtype, self.device)
        if not self.model and self.tiny is None:
            raise ValueError("embedder needs `model` (an open_clip name or local-dir:) or `tiny`")
        if self.batch_size < 1:
            raise ValueError("embedder.batch_size must be >= 1")


@dataclass
class VLMConfig:
    """A Qwen2-VL-family model folder or hub id, or a tiny recipe built offline."""

    name: str = knob("tiny", "label for logs and MLflow")
    pretrained: str = knob("", "hub id (Qwen/Qwen2-VL-2B-Instruct) or a model folder")
    tiny: TinyVLMRecipe | None = knob(None, "build this tiny model offline and load it instead")
    device: str = knob("auto", "auto, cpu or cuda")
    dtype: str = knob("float32", "float32, bfloat16 or float16")
    min_pixels: int = knob(56 * 56, "lower bound on each image's area fed to the model")
    max_pixels: int = knob(112 * 112, "upper bound on each image's area fed to the model")
    load_in_4bit: bool = knob(False, "NF4 weights via bitsandbytes (vision tower kept full)")

    def __post_init__(self) -> None:
        _check_dtype_device(self.dtype, self.device)
        if not self.pretrained and self.tiny is None:
            raise ValueError(f"{self.name}: set `pretrained` (hub id or folder) or `tiny`")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"{self.name}: min_pixels must not exceed max_pixels")


@dataclass
class StudentConfig(VLMConfig):
    """The agent that scores room/product pairs; an optional LoRA adapter rides on top."""

    adapter: str | None = knob(
        "auto",
        "auto (the registry's champion when there is one, else none), none, a LoRA adapter or "
        "fine-tuned model folder, or models:/<name>@<alias> in MLflow",
    )
    registry: str = knob(
        "mars-student",
        "MLflow registered model of this student: train adds versions (alias candidate), "
        "evaluation moves alias champion to a winner, adapter=auto serves champion",
    )
    tiny: TinyVLMRecipe | None = knob(
        TinyVLMRecipe(), "build this tiny model offline and load it instead; null for `pretrained`"
    )
    batch_size: int = knob(8, "candidates per forward pass when scoring, answers per generate call")
    max_new_tokens: int = knob(
        48,
        "tokens the agent may generate per answer (JSON score + one-sentence rationale); the "
        "top N's rationales count them after the forced opening with their known score",
    )
    reuse_room_prefix: bool = knob(
        True,
        "encode what a query's candidates share (system text, room image, query, instruction) "
        "once and reuse its KV cache",
    )
    kind: str = knob(
        "local",
        "local (the model runs in this process) or openai (scored by an OpenAI-compatible "
        "server such as vLLM, at student.endpoint)",
    )
    endpoint: str | None = knob(None, "kind=openai: the server's base URL (e.g. vLLM's .../v1)")
    served_model: str = knob(
        "mars-student", "kind=openai: the model name the server serves (vLLM's --lora-modules)"
    )
    api_key_env: str = knob("", "kind=openai: env variable holding the API key; empty = none")
    timeout: float = knob(60.0, "kind=openai: seconds to wait for one response")
    concurrency: int = knob(16, "kind=openai: requests in flight at once")
    retries: int = knob(2, "kind=openai: re-sends after a timeout, dropped connection or 5xx/429")
    backoff: float = knob(0.5, "kind=openai: seconds before the first re-send, doubled each time")
    top_logprobs: int = knob(
        20,
        "kind=openai: alternatives the server returns per scored position (vLLM caps it with "
        "--max-logprobs); a digit outside them counts as probability 0",
    )
    request_max_pixels: int = knob(
        1_000_000,
        "kind=openai: images over this many pixels are downscaled before they are sent; the "
        "server then resizes to its own max_pixels as the in-process agent does",
    )
    product_max_pixels: int = knob(
        112 * 112,
        "upper bound on a product image's area (catalogue photos on white need fewer visual "
        f"tokens than a room); between {GRID_SLACK} x min_pixels and max_pixels",
    )
    visual_cache: bool = knob(
        True,
        "compute product visual tokens at index build (the vision tower is frozen) and feed "
        "them to the language model instead of re-running the vision tower per query",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("student.batch_size and student.max_new_tokens must be >= 1")
        if self.kind not in STUDENT_KINDS:
            raise ValueError(f"student.kind {self.kind!r} unknown; use one of {STUDENT_KINDS}")
        if self.kind == "openai" and not self.endpoint:
            raise ValueError("student.kind=openai needs student.endpoint (the server's base URL)")
        if self.concurrency < 1 or self.retries < 0 or self.backoff < 0 or self.timeout <= 0:
            raise ValueError(
                "student.concurrency must be >= 1, retries and backoff >= 0, timeout > 0"
            )
        if self.top_logprobs < 10:
            raise ValueError(
                f"student.top_logprobs={self.top_logprobs} must be >= 10: the score reads "
                "the ten digits' probabilities"
            )
        if self.request_max_pixels < self.max_pixels:
            raise ValueError(
                f"student.request_max_pixels ({self.request_max_pixels}) must be >= "
                f"student.max_pixels ({self.max_pixels}): the server must get images at least "
                "as large as it feeds the model"
            )
        if not GRID_SLACK * self.min_pixels <= self.product_max_pixels <= self.max_pixels:
            raise ValueError(
                f"student.product_max_pixels ({self.product_max_pixels}) must lie between "
                f"{GRID_SLACK} x student.min_pixels ({self.min_pixels}) and student.max_pixels "
                f"({self.max_pixels}): fitting a photo under the bound onto the 28-pixel grid "
                "can take more than half its area, and a photo pushed under min_pixels is "
                "enlarged again (interpolated pixels, more visual tokens than the bound); "
                "raise product_max_pixels or lower min_pixels"
            )


@dataclass
class TeacherConfig(VLMConfig):
    """Labels room/product pairs with a score and rationale for distillation.

    The metadata teacher's knowledge (`room_fit`, `outdoor_rooms`, the setting words and the
    scores it gives) is plain furniture knowledge a user reads and overrides for their own
    room classes and catalogue; it never sees a generated world's ground truth.
    """

    kind: str = knob("metadata", "metadata (room type, category and listing text), vlm or openai")
    endpoint: str | None = knob(None, "OpenAI-compatible base URL when kind=openai (e.g. vLLM)")
    replicas: list[str] = knob(
        [],
        "kind=openai: base URLs of more servers of the same model; each request goes to the "
        "least busy of endpoint + replicas",
    )
    api_key_env: str = knob("", "kind=openai: env variable holding the API key; empty = none")
    max_new_tokens: int = knob(96, "tokens the teacher may generate per answer")
    batch_size: int = knob(64, "pairs per generate call / request window; one label shard each")
    shard_pairs: int = knob(256, "pairs per mapped labelling task (the unit of parallel work)")
    max_attempts: int = knob(
        1, "answers asked per pair before it is stored as failed (1: the metadata teacher's rules)"
    )
    retry_temperature: float = knob(
        0.7, "sampling temperature of the 2nd and later attempts (the 1st is greedy)"
    )
    timeout: float = knob(60.0, "kind=openai: seconds to wait for one response")
    concurrency: int = knob(4, "kind=openai: requests in flight at once, per server")
    retries: int = knob(3, "kind=openai: re-sends after a timeout, dropped connection or 5xx/429")
    backoff: float = knob(1.0, "kind=openai: seconds before the first re-send, doubled each time")
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
    score_fits: float = knob(0.9, "metadata: room_fit lists the category for the room type")
    score_unknown: float = knob(
        0.5,
        "metadata: room_fit never mentions the category (or the room type) and the setting "
        "agrees; the dataset card counts these pairs",
    )
    score_wrong_room: float = knob(
        0.2, "metadata: room_fit lists the category, but only for other room types"
    )
    score_wrong_setting: float = knob(
        0.1,
        "metadata: the listing (or else the category) says indoor and the room is outdoors, "
        "or the other way round; decides before room_fit",
    )
    fit_threshold: float = knob(0.5, "scores at or above this count as 'fits' (dataset card)")
    rationale_samples: int = knob(20, "rationales shown in the dataset card logged to MLflow")

    def __post_init__(self) -> None:
        if self.kind not in TEACHER_KINDS:
            raise ValueError(f"teacher.kind {self.kind!r} unknown; use one of {TEACHER_KINDS}")
        if self.kind == "openai" and not self.endpoint:
            raise ValueError("teacher.kind=openai needs teacher.endpoint (the server's base URL)")
        if self.replicas and self.kind != "openai":
            raise ValueError("teacher.replicas is set: they serve teacher.kind=openai only")
        self._check_labelling()
        self._check_metadata()
        if self.kind == "metadata":
            return
        super().__post_init__()

    def _check_labelling(self) -> None:
        counts = ("max_new_tokens", "batch_size", "shard_pairs", "max_attempts", "concurrency")
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"teacher.{name} must be >= 1")
        if self.retries < 0 or self.backoff < 0 or self.rationale_samples < 0:
            raise ValueError("teacher.retries, backoff and rationale_samples must be >= 0")
        if self.timeout <= 0 or self.retry_temperature <= 0:
            raise ValueError("teacher.timeout and retry_temperature must be > 0")

    def _check_metadata(self) -> None:
        for room_type, categories in self.room_fit.items():
            bad = [c for c in categories if not CATEGORY_PATTERN.fullmatch(c)]
            if bad:
                raise ValueError(
                    f"teacher.room_fit.{room_type} lists {bad}: categories are upper-case "
                    "catalogue categories such as BED or PATIO_TABLE"
                )
        scores = [name for name in dir(self) if name.startswith("score_")] + ["fit_threshold"]
        for name in scores:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"teacher.{name} must lie in [0, 1]")
        if self.score_fits < self.fit_threshold:
            raise ValueError(
                f"teacher.score_fits must be >= teacher.fit_threshold ({self.fit_threshold}): "
                "it labels a product that belongs"
            )
        for name in MISFIT_SCORES:
            if getattr(self, name) >= self.fit_threshold:
                raise ValueError(
                    f"teacher.{name} must be < teacher.fit_threshold ({self.fit_threshold}): "
                    "it labels a product that does not belong"
                )
