"""Training mechanics on the tiny student: LoRA moves only the adapter, QLoRA quantizes only the
language model, full fine-tuning lowers the loss on a fixed small set, the same training twice is
the same model; and the trainer module is light to import."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import bitsandbytes as bnb
import pytest
import torch

from mars_core.config import TrainConfig
from mars_core.training.trainer import prepare_model, train_student

HEAVY = {"torch", "transformers", "trl"}


@pytest.fixture(scope="module")
def data(sft_data):
    return sft_data


def _train(cfg, model_cache, data, tmp_path, **knobs):
    train = dataclasses.replace(
        TrainConfig(), **({"batch_size": 4, "eval_steps": 3, "logging_steps": 1} | knobs)
    )
    return train_student(
        data,
        train,
        cfg.student,
        models_dir=model_cache,
        work_dir=tmp_path / "work",
        out_dir=tmp_path / "out",
        max_image_pixels=cfg.data.max_image_pixels,
    )


@pytest.mark.slow
def test_lora_steps_move_the_adapter_and_not_the_base(cfg, model_cache, data, tmp_path):
    from safetensors.torch import load_file

    train = dataclasses.replace(TrainConfig(), method="lora")
    model, _ = prepare_model(train, cfg.student, model_cache)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)

    result = _train(
        cfg, model_cache, data, tmp_path, method="lora", max_steps=3, learning_rate=1e-2
    )
    out = tmp_path / "out"
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
    assert (out / "README.md").read_text().startswith("# MARS student (lora)")
    assert result.steps == 3 and result.val_loss
    saved = load_file(out / "adapter_model.safetensors")
    assert saved and all("lora_" in k for k in saved)  # the base is not in the adapter
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: the adapter moved


@pytest.mark.slow
def test_qlora_quantizes_the_language_model_and_not_the_vision_tower(cfg, model_cache):
    train = dataclasses.replace(TrainConfig(), method="qlora", compute_dtype="float32")
    model, _ = prepare_model(train, cfg.student, model_cache)
    inner = model.base_model.model.model
    lm_linears = [
        m for n, m in inner.language_model.named_modules() if n.endswith(("q_proj", "down_proj"))
    ]
    assert lm_linears and all(isinstance(m.base_layer, bnb.nn.Linear4bit) for m in lm_linears)
    assert lm_linears[0].base_layer.weight.quant_state.quant_type == "nf4"
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in inner.visual.modules())
    assert not any(p.requires_grad for p in inner.visual.parameters())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.slow
def test_full_fine_tuning_lowers_the_loss_and_saves_a_whole_model(cfg, model_cache, data, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    result = _train(cfg, model_cache, data, tmp_path, method="full", max_steps=12, eval_steps=6)
    losses = [loss for _, loss in result.train_loss]
    assert losses[-1] < losses[0] * 0.8
    assert result.val_loss[-1][1] < result.val_loss[0][1]
    out = tmp_path / "out"
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    AutoModelForImageTextToText.from_pretrained(out)
    AutoProcessor.from_pretrained(out)


@pytest.mark.slow
def test_training_ends_by_steps_and_a_clock_stop_is_loud(cfg, model_cache, data, tmp_path, caplog):
    """Steps end a run whatever the machine's load; a budget the test sets far too short ends
    it by the clock instead, which says so (no assertion on how long anything took)."""
    ample = _train(cfg, model_cache, data, tmp_path / "a", max_steps=3, time_budget_s=3600)
    assert (ample.steps, ample.stopped_by) == (3, "steps")
    with caplog.at_level("WARNING", logger="mars_core.training.trainer"):
        short = _train(cfg, model_cache, data, tmp_path / "b", max_steps=50, time_budget_s=1e-6)
    assert short.stopped_by == "time" and short.steps < 50
    assert "stopped by train.time_budget_s" in caplog.text


@pytest.mark.slow
def test_the_same_training_twice_is_the_same_model_bit_for_bit(cfg, model_cache, data, tmp_path):
    """Same seed and data: the same loss curves and weights, even when the process's torch
    runs on another thread count in between (`train.cpu_threads` pins it for training), and
    with torch's deterministic algorithms only (on a CPU they change no bit)."""
    from safetensors.torch import load_file

    threads = torch.get_num_threads()
    knobs = {"max_steps": 4, "eval_steps": 2}
    try:
        first = _train(cfg, model_cache, data, tmp_path / "a", **knobs)
        torch.set_num_threads(2)
        second = _train(cfg, model_cache, data, tmp_path / "b", deterministic=True, **knobs)
    finally:
        torch.set_num_threads(threads)
    assert len(first.train_loss) == 4 and len(first.val_loss) == 2
    assert (first.train_loss, first.val_loss) == (second.train_loss, second.val_loss)
    weights = [load_file(tmp_path / run / "out" / "model.safetensors") for run in "ab"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
def test_a_finished_training_run_again_is_reloaded_not_trained_on(cfg, model_cache, data, tmp_path):
    """The same inputs trained before (its last checkpoint at max_steps): no step is taken
    past the schedule's end (the trainer would count max_steps + 1), the best weights come
    back and the logged curves are those of the training that made them."""
    from safetensors.torch import load_file

    knobs = {"max_steps": 4, "eval_steps": 2}
    first = _train(cfg, model_cache, data, tmp_path, **knobs)
    trained = load_file(tmp_path / "out" / "model.safetensors")
    again = _train(cfg, model_cache, data, tmp_path, **knobs)
    assert again.steps == 4 and again.stopped_by == "steps" and again.resumed_from
    assert (again.train_loss, again.val_loss) == (first.train_loss, first.val_loss)
    assert again.best_val_loss == first.best_val_loss
    assert max(int(p.name.split("-")[1]) for p in (tmp_path / "work").glob("checkpoint-*")) == 4
    reloaded = load_file(tmp_path / "out" / "model.safetensors")
    assert all(torch.equal(reloaded[k], w) for k, w in trained.items())


def test_importing_the_trainer_imports_no_torch_transformers_or_trl():
    """The flows import it for `TrainResult` and `registry_entry` alone: `-X importtime` lists
    every module the import loads."""
    command = [sys.executable, "-X", "importtime", "-c", "import mars_core.training.trainer"]
    log = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in log.splitlines()}
    assert "mars_core.training.trainer" in loaded
    assert not loaded & HEAVY


def test_deterministic_training_on_a_gpu_without_the_cublas_setting_is_one_clear_error(
    monkeypatch,
):
    from mars_core.infra.errors import UserInputError
    from mars_core.training.numerics import CUBLAS_WORKSPACE, pinned_numerics

    monkeypatch.delenv(CUBLAS_WORKSPACE, raising=False)
    train = dataclasses.replace(TrainConfig(), deterministic=True)
    with (
        pytest.raises(UserInputError, match=f"{CUBLAS_WORKSPACE}=:4096:8"),
        pinned_numerics(train, on_gpu=True),
    ):
        pass
    assert not torch.are_deterministic_algorithms_enabled()
