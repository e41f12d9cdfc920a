"""Config of the three models: embedder (SigLIP), student agent and teacher."""

from dataclasses import dataclass

from mars_core.config.recipes import TinyClipRecipe, TinyVLMRecipe
from mars_core.knob import knob

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
TEACHER_KINDS = ("metadata", "vlm", "openai")


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
    tiny: TinyClipRecipe | None = knob(None, "build this tiny model offline and load it instead")
    tokenizer: str | None = knob(
        None, "folder with the HF tokenizer files, for built-in names whose tokenizer is on the hub"
    )
    batch_size: int = knob(32, "images or texts per forward pass")
    device: str = knob("auto", "auto, cpu or cuda")
    dtype: str = knob("float32", "float32, bfloat16 (CPU too, where supported) or float16")
    max_image_pixels: int = knob(
        50_000_000, "images above this many pixels are refused before decoding (bomb guard)"
    )

    def __post_init__(self) -> None:
        _check_dtype_device(self.dtype, self.device)
        if not self.model and self.tiny is None:
            raise ValueError("embedder needs `model` (an open_clip name or local-dir:) or `tiny`")
        if self.batch_size < 1 or self.max_image_pixels < 1:
            raise ValueError("embedder.batch_size and max_image_pixels must be >= 1")


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

    adapter: str | None = knob(None, "LoRA adapter folder, or models:/<name>@<alias> in MLflow")
    batch_size: int = knob(8, "candidates per forward pass when scoring, answers per generate call")
    max_new_tokens: int = knob(
        64, "bound on a generated answer (JSON score + one-sentence rationale)"
    )
    reuse_room_prefix: bool = knob(
        True, "encode system text + room image once per query and reuse its KV cache"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("student.batch_size and student.max_new_tokens must be >= 1")


@dataclass
class TeacherConfig(VLMConfig):
    """Labels room/product pairs with a score and rationale for distillation."""

    kind: str = knob("vlm", "metadata (rules over ground truth), vlm (in-process) or openai")
    endpoint: str | None = knob(None, "OpenAI-compatible base URL when kind=openai (e.g. vLLM)")
    max_new_tokens: int = knob(96, "tokens the teacher may generate per answer")
    batch_size: int = knob(4, "pairs labelled per call")

    def __post_init__(self) -> None:
        if self.kind not in TEACHER_KINDS:
            raise ValueError(f"teacher.kind {self.kind!r} unknown; use one of {TEACHER_KINDS}")
        if self.kind == "openai" and not self.endpoint:
            raise ValueError("teacher.kind=openai needs teacher.endpoint (the server's base URL)")
        if self.kind == "metadata":
            return
        super().__post_init__()
