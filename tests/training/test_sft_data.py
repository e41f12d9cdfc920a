"""SFT examples: the one prompt, failed labels out, rooms and products held out, score digits
trained."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
import torch
from support.sft import build_examples
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from mars_core.agent.types import SCORE_PROBE
from mars_core.catalogue.schema import CATALOGUE_FILE
from mars_core.catalogue.splits import validation_split
from mars_core.config import TrainConfig
from mars_core.models.loading import load_vlm
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.data import LabelsError
from mars_core.vision.images import load_image


def test_examples_leave_failed_labels_out_and_train_on_no_held_out_room_or_product(sft_dir):
    data = build_examples(sft_dir / LABELS_FILE, sft_dir)
    assert data.failed_labels == 2
    assert len(data.train) + len(data.val) == 8 * 4 - 2
    labels = pq.read_table(sft_dir / LABELS_FILE).to_pylist()
    held_out = validation_split(
        [(row["room_id"], row["key"]) for row in labels if row["status"] == "ok"],
        pq.read_table(sft_dir / CATALOGUE_FILE),
        0.25,
        0.2,
        seed=0,
    )
    assert len(held_out.rooms) == 2
    assert not any(held_out.holds(e.room_id, e.key) for e in data.train)
    assert all(held_out.holds(e.room_id, e.key) for e in data.val)
    assert data.sizes()["held_out_products"] == len(held_out.products)
    example = data.train[0]
    assert example.images[0].endswith(".jpg") or "rooms" in example.images[0]
    assert example.completion[0]["content"][0]["text"].startswith('{"score": 0.')
    again = build_examples(sft_dir / LABELS_FILE, sft_dir)
    assert again.dataset_hash == data.dataset_hash


def test_a_label_naming_an_unknown_room_is_a_clear_error(sft_dir, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    for name in ("rooms.parquet", "catalogue.parquet"):
        shutil.copy(sft_dir / name, tmp_path / name)
    labels = pq.read_table(sft_dir / LABELS_FILE).to_pylist()
    labels[-1]["room_id"] = "Nowhere/none.jpg"
    pq.write_table(pq.read_table(sft_dir / LABELS_FILE).from_pylist(labels), tmp_path / "l.pq")
    with pytest.raises(LabelsError, match=r"Nowhere/none\.jpg"):
        build_examples(tmp_path / "l.pq", tmp_path)
    with pytest.raises(LabelsError, match="does not exist"):
        build_examples(tmp_path / "missing.parquet", tmp_path)


def test_the_score_digits_the_fast_path_reads_are_trained_tokens(cfg, model_cache, sft_dir):
    """trl tokenizes prompt and completion apart; the agent tokenizes prompt + `{"score": 0.`
    at once. Both must give the same tokens, and the loss must cover the score's digits."""
    data = build_examples(sft_dir / LABELS_FILE, sft_dir)
    processor = load_vlm(cfg.student, model_cache).processor
    example = data.train[0]
    row = example.row() | {"images": [load_image(p, 10**8) for p in example.images]}
    batch = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)([row])
    trained = batch["input_ids"][0][batch["labels"][0] != -100]
    prompt = processor.apply_chat_template(example.prompt, add_generation_prompt=True)
    probe = processor(text=[prompt + SCORE_PROBE], images=[row["images"]], return_tensors="pt")
    prompt_ids = processor(text=[prompt], images=[row["images"]], return_tensors="pt")
    probe_tail = probe["input_ids"][0][prompt_ids["input_ids"].shape[1] :]
    assert torch.equal(trained[: len(probe_tail)], probe_tail)
    answer = example.completion[0]["content"][0]["text"]
    digits = processor.tokenizer.decode(trained[len(probe_tail) - 2 : len(probe_tail) + 1])
    assert digits == answer[len('{"score": ') : len('{"score": ') + 3]  # "0.9" / "0.1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eval_steps": 500, "max_steps": 100}, "lower train.eval_steps"),
        ({"method": "lora", "lora_targets": []}, "train.lora_targets"),
        ({"quant_type": "int3"}, "train.quant_type"),
        ({"compute_dtype": "float8"}, "train.compute_dtype"),
        ({"val_fraction": 1.0}, "train.val_fraction"),
        ({"patience": 0}, "train.patience"),
        ({"time_budget_s": -1}, "train.time_budget_s"),
    ],
)
def test_contradicting_train_knobs_are_rejected_naming_what_to_change(change, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        dataclasses.replace(TrainConfig(), **change)


def test_balancing_repeats_training_examples_and_leaves_validation_as_labelled(sft_dir):
    plain = build_examples(sft_dir / LABELS_FILE, sft_dir)
    balanced = build_examples(sft_dir / LABELS_FILE, sft_dir, balance=1.0)
    assert balanced.val == plain.val
    assert balanced.train[: len(plain.train)] == plain.train
    cells = {}
    for e in balanced.train:
        cells.setdefault((e.room_type, e.category), []).append(e.fits)
    for grades in cells.values():
        if len(set(grades)) == 2:
            assert grades.count(True) == grades.count(False)
