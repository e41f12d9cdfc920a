"""The student as an MLflow model, so anything that loads MLflow models can use it:

    model = mlflow.pyfunc.load_model("models:/mars-student@champion")
    model.predict(pd.DataFrame([{"room_image": "room.jpg", "query": "bed",
                                 "product_image": "bed.jpg", "name": "Oak bed",
                                 "category": "BED"}]))
    # -> DataFrame with columns score (0-1) and rationale

Each row is a (room photo, query, product) triple; images are file paths or base64 `data:`
URIs (what `mlflow models serve` can carry in JSON). Rows of one room and query share the
room's prefix, as in the funnel. The model's artifact `student` is the student folder (LoRA
adapter or whole fine-tuned model) and its `model_config` the student config it was trained
with, so the loader builds the very scorer the funnel uses (`AgentScorer.from_config`); the
funnel itself resolves the same `models:/` URI to that folder (`infra/registry.py`).
"""

from __future__ import annotations

import base64
import dataclasses
import io
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from PIL import Image

from mars_core.agent.types import ProductView
from mars_core.config import StudentConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.registry import STUDENT_ARTIFACT, register_version
from mars_core.infra.runtime import find_home
from mars_core.prompt import product_text
from mars_core.vision.images import load_image, load_image_bytes

REQUIRED = ("room_image", "query", "product_image", "name", "category")
OPTIONAL = ("color", "material", "style")
OUTPUTS = ("score", "rationale")
DATA_URI = "data:image/"
# What the model needs installed where it loads: MARS itself and the libraries it runs on.
# MLflow logs the model as code ("models from code"): this file builds the `StudentModel`.
ENTRY_FILE = "mlflow_entry.py"
REQUIREMENTS = ("mars", "mlflow", "torch", "torchvision", "transformers", "peft", "pillow")


class StudentModel(mlflow.pyfunc.PythonModel):
    """A pyfunc over the student: `predict` scores and explains each row."""

    def load_context(self, context: Any) -> None:
        from omegaconf import OmegaConf

        from mars_core.agent.scorer import AgentScorer

        config = dict(context.model_config)
        self.max_image_pixels = int(config.pop("max_image_pixels"))
        schema = OmegaConf.structured(StudentConfig)
        student = OmegaConf.to_object(OmegaConf.merge(schema, config))
        folder = context.artifacts[STUDENT_ARTIFACT]
        self.scorer = AgentScorer.from_config(
            dataclasses.replace(student, adapter=folder), find_home() / ".mars_cache" / "models"
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        missing = [c for c in REQUIRED if c not in model_input.columns]
        if missing:
            raise UserInputError(
                f"student input lacks columns {missing}: give {', '.join(REQUIRED)} "
                f"(and optionally {', '.join(OPTIONAL)})"
            )
        rows = model_input.to_dict("records")
        out: list[tuple[float, str]] = [(0.0, "")] * len(rows)
        for (room_image, query), indices in _by_room_and_query(rows).items():
            room = self._image(room_image)
            views = [self._view(rows[i]) for i in indices]
            scores = self.scorer.score(room, query, views)
            answers = self.scorer.generate(room, query, views, scores=scores)
            for i, score, answer in zip(indices, scores, answers, strict=True):
                out[i] = (score, answer.answer.rationale if answer.answer else "")
        return pd.DataFrame(out, columns=list(OUTPUTS))

    def _view(self, row: dict[str, Any]) -> ProductView:
        product = {k: row.get(k) for k in (*REQUIRED, *OPTIONAL) if _present(row.get(k))}
        return ProductView(self._image(row["product_image"]), product_text(product))

    def _image(self, value: str) -> Image.Image:
        """A path, or a base64 `data:image/...` URI, bounded like every other image."""
        if value.startswith(DATA_URI):
            payload = value.partition(",")[2]
            return load_image_bytes(base64.b64decode(payload), "data URI", self.max_image_pixels)
        return load_image(value, self.max_image_pixels)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def _by_room_and_query(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row["room_image"], str(row["query"])), []).append(i)
    return groups


def log_student(folder: Path, student: StudentConfig, *, max_image_pixels: int, name: str) -> int:
    """Log `folder` as the student's MLflow model in the active run and register it as a new
    version of `name`; the version number. MLflow checks the input example by loading the
    model and predicting it, so a version that registers is one that loads."""
    config = {k: v for k, v in dataclasses.asdict(student).items() if k != "adapter"}
    info = mlflow.pyfunc.log_model(
        name=STUDENT_ARTIFACT,
        python_model=str(Path(__file__).with_name(ENTRY_FILE)),
        artifacts={STUDENT_ARTIFACT: str(folder)},
        model_config=config | {"max_image_pixels": max_image_pixels},
        signature=signature(),
        input_example=example_input(),
        pip_requirements=_requirements(),
    )
    return register_version(info.model_uri, name, run_id=info.run_id, model_id=info.model_id)


def signature() -> Any:
    """Strings in (images as paths or data URIs; colour, material and style optional), a
    score and a rationale out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec("string", name) for name in REQUIRED]
    inputs += [ColSpec("string", name, required=False) for name in OPTIONAL]
    outputs = [ColSpec("double", "score"), ColSpec("string", "rationale")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def example_input() -> pd.DataFrame:
    """One row with small inline pictures, so the example runs wherever the model goes."""
    row = {
        "room_image": _data_uri((70, 110, 160)),
        "query": "bed",
        "product_image": _data_uri((150, 110, 70)),
        "name": "Oak bed frame",
        "category": "BED",
        "color": "brown",
        "material": "oak",
        "style": "modern",
    }
    return pd.DataFrame([row])


def _data_uri(color: tuple[int, int, int], size: int = 64) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return DATA_URI + "png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _requirements() -> list[str]:
    """Pinned to what trained the student (the installed versions)."""
    pinned = []
    for name in REQUIREMENTS:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned
