"""Config of the `embedder` group: the SigLIP-style image/text embedder of stage 2."""

from dataclasses import dataclass

from mars_core.config.recipes import TinyClipRecipe
from mars_core.config.vlm import DEVICES, DTYPES
from mars_core.infra.knob import check_knobs, knob


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
    batch_size: int = knob(32, "images or texts per forward pass", ge=1)
    device: str = knob("auto", "auto, cpu or cuda", choices=DEVICES)
    dtype: str = knob(
        "float32", "float32, bfloat16 (CPU too, where supported) or float16", choices=DTYPES
    )

    def __post_init__(self) -> None:
        check_knobs(self, "embedder")
        if not self.model and self.tiny is None:
            raise ValueError("embedder needs `model` (an open_clip name or local-dir:) or `tiny`")
