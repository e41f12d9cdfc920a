"""Config of the `student` group: the agent that scores room/product pairs in stage 3."""

from dataclasses import dataclass

from mars_core.config.recipes import TinyVLMRecipe
from mars_core.config.server import ServerConfig
from mars_core.config.vlm import VLMConfig
from mars_core.infra.knob import check_knobs, knob

STUDENT_KINDS = ("local", "openai")
# A product photo bounded to `product_max_pixels` keeps at least 1/GRID_SLACK of that area
# once its sides are floored to the processor's grid (an elongated photo can lose more than
# half), so it stays at or over `min_pixels` and the processor takes it as it is.
GRID_SLACK = 4


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
    batch_size: int = knob(
        8, "candidates per forward pass when scoring, answers per generate call", ge=1
    )
    max_new_tokens: int = knob(
        48,
        "tokens the agent may generate per answer (JSON score + one-sentence rationale); the "
        "top N's rationales count them after the forced opening with their known score",
        ge=1,
    )
    reuse_room_prefix: bool = knob(
        True,
        "encode what a query's candidates share (system text, room image, query, instruction) "
        "once and reuse its KV cache",
    )
    kind: str = knob(
        "local",
        "local (the model runs in this process) or openai (scored by an OpenAI-compatible "
        "server such as vLLM, at student.server.endpoint)",
        choices=STUDENT_KINDS,
    )
    server: ServerConfig = knob(
        ServerConfig(concurrency=16, retries=2, backoff=0.5),
        "kind=openai: the servers of the student and how they are asked",
    )
    served_model: str = knob(
        "mars-student", "kind=openai: the model name the server serves (vLLM's --lora-modules)"
    )
    top_logprobs: int = knob(
        20,
        "kind=openai: alternatives the server returns per scored position (vLLM caps it with "
        "--max-logprobs); a digit outside them counts as probability 0; the score reads the "
        "ten digits' probabilities",
        ge=10,
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
        check_knobs(self, "student")
        super().__post_init__()
        self.server.check_served("student", self.kind == "openai")
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
