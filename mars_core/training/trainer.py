"""Supervised fine-tuning of the student on SFT examples with trl's `SFTTrainer`.

* `method=full`: every weight trains (the only way a randomly initialised tiny student
  learns: LoRA over a frozen random base barely moves).
* `method=lora`: LoRA adapters on the language model's `train.lora_targets`; base and vision
  tower frozen.
* `method=qlora`: as lora, over a 4-bit base (`train.quant_type`, `double_quant`,
  `compute_dtype`) whose vision tower and head stay unquantized.

The loss covers completion tokens only (the answer, from `{"score": ` on, so the digits the
agent's fast path reads are trained); `max_length=None`, so no image token is ever cut. Each
example is collated once before training (`train.collate_once`, `training.collate`) and the
output layer runs only at the labelled positions (`train.loss_positions`,
`training.sft_trainer`): the same model as trl's stock path, about 1.5x faster on a CPU
(bench/train_speed.py). Validation loss on held-out rooms and products is computed every
`train.eval_steps`; training stops at `train.max_steps` or after `train.patience` validations
without improvement, and the best checkpoint is what is saved. Both are counted in steps, so
the same seed and data give the same model on a quiet machine or a busy one;
`train.time_budget_s` is only a safety net, and a run it stops is a loud warning and says so
(`stopped_by` = `time`), since how far it got then depends on the machine's load. What else a
result depends on (thread count, the CPU's kernels) is pinned by `training.numerics`.
Checkpoints live in a work folder named by the run's inputs, so a re-run after a crash (even
SIGKILL) resumes from the last one.

torch, transformers and trl are imported when a run starts: the flows import this module for
`TrainResult` and `registry_entry` alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mars_core.config import StudentConfig, TrainConfig
from mars_core.infra.io import atomic_write_text
from mars_core.training.augment import RoomViews
from mars_core.training.data import SFTData

# Module-name pattern of the language model's linears; LoRA never lands on the vision tower.
LANGUAGE_MODEL = r"model\.language_model\..*"
VISION_TOWER = "model.visual"
CARD = "README.md"
# What ended a training run: its step count, its patience, or (a warning) the wall clock.
STOPPED_BY_STEPS, STOPPED_BY_PATIENCE, STOPPED_BY_TIME = "steps", "patience", "time"
logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced: the model folder and its loss history."""

    folder: str
    method: str
    steps: int
    resumed_from: str | None
    stopped_by: str  # STOPPED_BY: "steps", "patience" or "time"
    best_val_loss: float | None
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    learning_rate: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0  # collation, training steps and validations (not the model load)
    trainable_parameters: int = 0


def checkpoint_dir(root: Path, data: SFTData, train: TrainConfig, student: StudentConfig) -> Path:
    """The work folder of one training job: same data + config -> same folder -> resume.

    The time budget is left out: a re-run with more time continues the same job.
    """
    knobs = dataclasses.asdict(train) | {"time_budget_s": None}
    key = json.dumps(
        [data.dataset_hash, knobs, dataclasses.asdict(student)],
        sort_keys=True,
        default=str,
    )
    return Path(root) / hashlib.sha256(key.encode()).hexdigest()[:16]


def train_student(
    data: SFTData,
    train: TrainConfig,
    student: StudentConfig,
    *,
    models_dir: Path,
    work_dir: Path,
    out_dir: Path,
    max_image_pixels: int,
    on_log: Callable[[dict[str, float], int], None] | None = None,
) -> TrainResult:
    """Train, keep the best checkpoint by validation loss, save it to `out_dir` with a card.

    `out_dir` receives a LoRA adapter folder (lora/qlora) or a whole model + processor folder
    (full). `on_log(metrics, step)` sees every logged training/validation metric as it comes.
    """
    import torch
    from transformers import EarlyStoppingCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig

    from mars_core.training.callbacks import History, TimeBudget
    from mars_core.training.numerics import pinned_numerics
    from mars_core.training.sft_trainer import StudentSFTTrainer

    torch.manual_seed(train.seed)
    model, processor = prepare_model(train, student, models_dir)
    on_gpu = _on_gpu(model)
    with pinned_numerics(train, on_gpu=on_gpu):
        work_dir.mkdir(parents=True, exist_ok=True)
        resume = get_last_checkpoint(str(work_dir))
        budget = TimeBudget(train.time_budget_s)
        history = History(on_log)
        started = time.monotonic()
        trainer = StudentSFTTrainer(
            model=model,
            args=SFTConfig(**sft_args(train, work_dir, on_gpu=on_gpu, dtype=student.dtype)),
            processing_class=processor,
            callbacks=[EarlyStoppingCallback(train.patience), budget, history],
            loss_positions=train.loss_positions,
            **model_inputs(data, processor, train, max_image_pixels, student.product_max_pixels),
        )
        run_or_reload(trainer, resume, train.max_steps, history)
    result = TrainResult(
        folder=str(out_dir),
        method=train.method,
        steps=trainer.state.global_step,
        resumed_from=resume,
        stopped_by=_stopped_by(trainer.state.global_step, train, budget.exceeded),
        best_val_loss=trainer.state.best_metric,
        train_loss=history.series("loss"),
        val_loss=history.series("eval_loss"),
        learning_rate=history.series("learning_rate"),
        seconds=time.monotonic() - started,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
    save_student(trainer.model, processor, out_dir, result, data, train, student)
    return result


def run_or_reload(trainer: Any, resume: str | None, max_steps: int, history: Any) -> None:
    """Train, resuming from the last checkpoint `resume` if any. A run whose last checkpoint
    is already at `max_steps` (the same inputs trained before: a sweep job at the default
    learning rate after `make demo`) is not resumed, since the trainer would take one step
    past the schedule's end: its state and best weights are loaded and its logged curves
    replayed, so its MLflow run shows the training that made it."""
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(Path(resume, "trainer_state.json"))) if resume else None
    if state is None or state.global_step < max_steps:
        trainer.train(resume_from_checkpoint=resume)
        return
    trainer.state = state
    best = trainer.state.best_model_checkpoint  # an absolute path, where the work folder was
    trainer._load_from_checkpoint(str(Path(resume).with_name(Path(best).name)) if best else resume)
    history.replay(trainer.state.log_history)
    logger.info("training had finished at step %d: reloaded %s", max_steps, resume)


def model_inputs(
    data: SFTData,
    processor: Any,
    train: TrainConfig,
    max_image_pixels: int,
    product_max_pixels: int | None,
) -> dict[str, Any]:
    """`SFTTrainer`'s datasets (and collator): every example collated once, training and
    validation alike, with `train.collate_once`; else trl's collator on every batch."""
    from mars_core.training import collate

    views = RoomViews(train.room_views, train.room_crop, train.room_flip, train.seed)
    images = collate.ShownImages(processor, max_image_pixels, product_max_pixels, views)
    if not train.collate_once:
        return {
            "train_dataset": collate.stock_dataset(data.train, images),
            "eval_dataset": collate.stock_dataset(data.val, images),
        }
    started = time.monotonic()
    batches = collate.PaddedBatches(
        processor,
        [*data.train, *data.val],
        images,
        views=[*views.pick(len(data.train)), *[0] * len(data.val)],
    )
    logger.info("collated %d SFT examples once in %.0f s", len(batches), time.monotonic() - started)
    seen = len(data.train)
    return {
        "train_dataset": collate.index_dataset(range(seen)),
        "eval_dataset": collate.index_dataset(range(seen, len(batches))),
        "data_collator": batches,
    }


def prepare_model(train: TrainConfig, student: StudentConfig, models_dir: Path) -> tuple[Any, Any]:
    """The student ready to train: all weights (full) or LoRA over a frozen (4-bit) base."""
    from mars_core.models.loading import load_vlm

    quantized = train.method == "qlora"
    loaded = load_vlm(
        dataclasses.replace(student, load_in_4bit=quantized, adapter=None),
        models_dir,
        quantization=train if quantized else None,
    )
    model = loaded.model
    model.train()
    if train.method == "full":
        model.requires_grad_(True)
        return model, loaded.processor
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=train.gradient_checkpointing
        )
    lora = LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules=lora_target_pattern(train.lora_targets),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.get_submodule(f"base_model.model.{VISION_TOWER}").requires_grad_(False)
    return model, loaded.processor


def lora_target_pattern(targets: list[str]) -> str:
    """A regex peft matches against full module names: the targets inside the language model."""
    names = "|".join(re.escape(t) for t in targets)
    return rf"{LANGUAGE_MODEL}\.({names})"


def sft_args(train: TrainConfig, work_dir: Path, *, on_gpu: bool, dtype: str) -> dict[str, Any]:
    """`SFTConfig` keyword arguments from `train.*`: one place maps knobs to trl."""
    return {
        "output_dir": str(work_dir),
        "max_steps": train.max_steps,
        "per_device_train_batch_size": train.batch_size,
        "per_device_eval_batch_size": train.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_checkpointing": train.gradient_checkpointing,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": "cosine",
        "warmup_steps": train.warmup_ratio,  # below 1: a share of max_steps
        "weight_decay": train.weight_decay,
        "eval_strategy": "steps",
        "eval_steps": train.eval_steps,
        "save_strategy": "steps",
        "save_steps": train.eval_steps,
        "save_total_limit": train.keep_checkpoints,
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "logging_steps": train.logging_steps,
        "seed": train.seed,
        "max_length": None,  # truncation could cut image tokens
        "completion_only_loss": True,
        "remove_unused_columns": False,  # the collator reads every column
        # Collated once, the datasets hold example numbers, not prompt/completion rows.
        "dataset_kwargs": {"skip_prepare_dataset": True} if train.collate_once else None,
        "dataloader_num_workers": 0,
        "report_to": [],
        "disable_tqdm": False,
        "use_cpu": not on_gpu,
        "bf16": on_gpu and dtype == "bfloat16",
        "fp16": on_gpu and dtype == "float16",
    }


def save_student(
    model: Any,
    processor: Any,
    out_dir: Path,
    result: TrainResult,
    data: SFTData,
    train: TrainConfig,
    student: StudentConfig,
) -> None:
    """The adapter (lora/qlora) or whole model + processor (full) in Hugging Face format,
    plus a model card. Loads with `PeftModel.from_pretrained` / `from_pretrained`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    if train.method == "full":
        processor.save_pretrained(str(out_dir))
    atomic_write_text(out_dir / CARD, model_card(result, data, train, student))


def model_card(
    result: TrainResult, data: SFTData, train: TrainConfig, student: StudentConfig
) -> str:
    """A short model card: what was trained on what, how, and how well (validation loss)."""
    from mars_core.prompt import PROMPT_VERSION

    kind = "whole model (all weights fine-tuned)" if train.method == "full" else "LoRA adapter"
    sizes = ", ".join(f"{k} {v}" for k, v in data.sizes().items())
    best = "n/a" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    return (
        f"# MARS student ({train.method})\n\n"
        f"A {kind} for the MARS agent: scores how well a product fits a room photo and a "
        f'query, answering `{{"score": 0.x, "rationale": "..."}}`.\n\n'
        f"* base: {student.pretrained or 'tiny recipe ' + student.name}\n"
        f"* prompt: {PROMPT_VERSION} (mars_core/prompt.py)\n"
        f"* data: {sizes}; dataset sha256 {data.dataset_hash[:16]}\n"
        f"* training: {result.steps} steps, stopped by {result.stopped_by}, lr "
        f"{train.learning_rate}, batch {train.batch_size} x {train.grad_accum}\n"
        f"* best validation loss (held-out rooms and products): {best}\n\n"
        "Load it with `student.adapter=<this folder>` or "
        "`student.adapter=models:/mars-student@candidate`.\n"
    )


def registry_entry(
    result: TrainResult, data: SFTData, train: TrainConfig, *, data_name: str, teacher: str
) -> tuple[str, dict[str, str]]:
    """A registered version's one-line description and its tags: what it learned from and how
    its training ended, as the registry page lists them side by side."""
    sizes = data.sizes()
    description = (
        f"data {data_name} ({sizes['train_examples']} examples, sha256 "
        f"{data.dataset_hash[:12]}), teacher {teacher}, seed {train.seed}, "
        f"{result.steps} of {train.max_steps} steps, stopped by {result.stopped_by}"
    )
    tags = {
        "data": data_name,
        "dataset_hash": data.dataset_hash[:16],
        "teacher": teacher,
        "seed": str(train.seed),
        "steps": str(result.steps),
        "stopped_by": result.stopped_by,
        "method": train.method,
    }
    return description, tags


def _on_gpu(model: Any) -> bool:
    return next(model.parameters()).device.type == "cuda"


def _stopped_by(step: int, train: TrainConfig, out_of_time: bool) -> str:
    if out_of_time:
        logger.warning(
            "WARNING: training stopped by train.time_budget_s=%s after %d of %d steps: the "
            "model depends on how busy this machine was; raise the budget (or 0 = none) for a "
            "run that ends by steps or patience",
            train.time_budget_s,
            step,
            train.max_steps,
        )
        return STOPPED_BY_TIME
    return STOPPED_BY_STEPS if step >= train.max_steps else STOPPED_BY_PATIENCE
