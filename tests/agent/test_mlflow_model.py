"""The student as an MLflow model: `mlflow.pyfunc.load_model` on a registry alias scores rows
of room photo and product, the same scores the funnel's agent gives through the same URI."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.exceptions import MlflowException
from support.registry import register_student

from mars_core.agent.mlflow_model import OPTIONAL, REQUIRED, example_input
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.types import ProductView
from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.models.loading import load_vlm
from mars_core.prompt import product_text
from mars_core.vision.images import load_image

NAME = "mars-student-pyfunc"


@pytest.fixture(scope="module")
def champion(cfg, model_cache, tmp_path_factory) -> str:
    """The tiny student saved whole (as `train.method=full` saves it) and registered as an
    MLflow model with alias champion; its URI."""
    loaded = load_vlm(cfg.student, model_cache)
    folder = tmp_path_factory.mktemp("whole-student")
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    register_student(folder, cfg, NAME, alias="champion")
    return f"models:/{NAME}@champion"


@pytest.fixture(scope="module")
def rows(world) -> pd.DataFrame:
    """Two rooms x three products of the world, as a user of the model gives them."""
    rooms = pq.read_table(world.out_dir / ROOMS_FILE).to_pylist()[:2]
    products = pq.read_table(world.out_dir / CATALOGUE_FILE).to_pylist()[:3]
    return pd.DataFrame(
        [
            {
                "room_image": room["path"],
                "query": "bed",
                "product_image": product["image_path"],
                **{k: product.get(k) for k in ("name", "category", "color", "material", "style")},
            }
            for room in rooms
            for product in products
        ]
    )


def test_pyfunc_load_model_on_the_champion_alias_scores_rows(champion, rows, cfg, model_cache):
    model = mlflow.pyfunc.load_model(champion)
    scored = model.predict(rows)
    assert list(scored.columns) == ["score", "rationale"] and len(scored) == len(rows)
    assert scored["score"].between(0, 1).all()
    assert all(isinstance(text, str) for text in scored["rationale"])
    # The funnel's agent, given the same URI, scores the same pairs the same.
    student = dataclasses.replace(cfg.student, adapter=champion)
    scorer = AgentScorer.from_config(student, model_cache)
    for room_path, group in rows.groupby("room_image", sort=False):
        room = load_image(room_path, cfg.data.max_image_pixels)
        views = [
            ProductView(
                load_image(row["product_image"], cfg.data.max_image_pixels),
                product_text({k: v for k, v in row.items() if isinstance(v, str)}),
            )
            for row in group.to_dict("records")
        ]
        expected = scorer.score(room, "bed", views)
        assert scored.loc[group.index, "score"].tolist() == pytest.approx(expected, abs=1e-5)


def test_images_may_come_inline_and_a_missing_column_is_named(champion, rows):
    model = mlflow.pyfunc.load_model(champion)
    inline = rows.head(1).copy()
    data = base64.b64encode(Path(inline.at[0, "room_image"]).read_bytes()).decode()
    inline.at[0, "room_image"] = f"data:image/jpeg;base64,{data}"
    assert model.predict(inline)["score"].tolist() == pytest.approx(
        model.predict(rows.head(1))["score"].tolist(), abs=1e-6
    )
    assert len(model.predict(example_input())) == 1  # the logged example runs anywhere
    with pytest.raises(MlflowException, match=r"missing inputs.*product_image"):
        model.predict(rows.drop(columns=["product_image"]))
    without_style = model.predict(rows.drop(columns=["style"]).head(1))
    assert without_style["score"].between(0, 1).all()


def test_the_model_declares_what_it_takes_and_gives(champion):
    info = mlflow.models.get_model_info(champion)
    required = {c["name"]: c["required"] for c in info.signature.inputs.to_dict()}
    assert required == {name: name in REQUIRED for name in (*REQUIRED, *OPTIONAL)}
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["score", "rationale"]
