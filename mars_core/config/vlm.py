"""What the student and the teacher share: a Qwen2-VL-family model and where it runs."""

from dataclasses import dataclass

from mars_core.config.recipes import TinyVLMRecipe
from mars_core.infra.knob import knob

# Also the embedder's (`mars_core.config.embedder`): every model loads with one of these.
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class VLMConfig:
    """A Qwen2-VL-family model folder or hub id, or a tiny recipe built offline.

    Its knobs' ranges and choices are checked by the owner's `check_knobs` (`student`,
    `teacher`); this checks what relates them.
    """

    name: str = knob("tiny", "label for logs and MLflow")
    pretrained: str = knob("", "hub id (Qwen/Qwen2-VL-2B-Instruct) or a model folder")
    tiny: TinyVLMRecipe | None = knob(None, "build this tiny model offline and load it instead")
    device: str = knob("auto", "auto, cpu or cuda", choices=DEVICES)
    dtype: str = knob("float32", "float32, bfloat16 or float16", choices=DTYPES)
    min_pixels: int = knob(56 * 56, "lower bound on each image's area fed to the model")
    max_pixels: int = knob(112 * 112, "upper bound on each image's area fed to the model")
    load_in_4bit: bool = knob(False, "NF4 weights via bitsandbytes (vision tower kept full)")

    def __post_init__(self) -> None:
        if not self.pretrained and self.tiny is None:
            raise ValueError(f"{self.name}: set `pretrained` (hub id or folder) or `tiny`")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"{self.name}: min_pixels must not exceed max_pixels")
