"""Config of the `train` group: fine-tuning the student (full, LoRA or QLoRA)."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob

TRAIN_METHODS = ("full", "lora", "qlora")
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")
# Where the output layer runs: the labelled (completion) positions only, or every position.
LOSS_POSITIONS = ("labelled", "all")


@dataclass
class TrainConfig:
    """Student fine-tuning: full (tiny, random base) or LoRA / QLoRA (pretrained base).

    Training stops at `max_steps` or after `patience` validations without a better validation
    loss, both counted in steps so a busy machine trains the same model; `time_budget_s` is a
    safety net that warns. The best checkpoint (lowest validation loss) is what gets saved and
    registered.
    """

    name: str = knob("tiny", "label for logs and MLflow")
    method: str = knob("full", "full, lora or qlora", choices=TRAIN_METHODS)
    learning_rate: float = knob(1e-3, "peak learning rate (cosine schedule with warm-up)", gt=0)
    warmup_ratio: float = knob(0.05, "share of steps spent warming up", ge=0, lt=1)
    weight_decay: float = knob(0.1, "AdamW weight decay", ge=0)
    grade_balance: float = knob(
        0.0,
        "within each room type x category, repeat the rarer teacher grade (fit or misfit) up "
        "to this share of the commoner one's count (0 = as mined, 1 = equal)",
        ge=0,
        le=1,
    )
    room_views: int = knob(
        1,
        "views of each room photo among its training pairs: 1 = the photo as it is; more = "
        "each pair shows one of them, the others seeded crops and mirror images "
        "(mars_core/training/augment.py); with 6 photos per room type 8 views cut wrong fits "
        "but raised wrong abstentions (bench/RESULTS.md)",
        ge=1,
    )
    room_type_examples: int = knob(
        16,
        "training examples per training room photo that ask only what kind of room it shows, "
        "its room type the answer, beside its pairs (mars_core/training/room_type.py); 0 = "
        "none. With 24 photos per room type 16 kept every world draw's wrong abstention under "
        "10% (bench/RESULTS.md, learning on every world)",
        ge=0,
    )
    room_crop: float = knob(
        0.75, "room_views: smallest share of each side of the photo a view keeps", gt=0, le=1
    )
    room_flip: bool = knob(True, "room_views: mirror half the views left-right")
    max_steps: int = knob(1500, "most optimiser steps (the schedule's length)", ge=1)
    batch_size: int = knob(16, "samples per device step", ge=1)
    grad_accum: int = knob(
        1, "gradient accumulation steps (effective batch = batch_size x this)", ge=1
    )
    gradient_checkpointing: bool = knob(False, "recompute activations in backward to save memory")
    val_fraction: float = knob(
        0.15, "share of training rooms held out for validation (by room)", gt=0, lt=1
    )
    val_product_fraction: float = knob(
        0.2,
        "share of each category's training products held out for validation (by image "
        "group): never trained on, so the fit bar chosen on validation is one for unseen "
        "products",
        gt=0,
        lt=1,
    )
    max_val_examples: int = knob(
        256, "validation examples scored per check, a seeded sample of those rooms' (0 = all)"
    )
    eval_steps: int = knob(100, "validate and checkpoint every this many optimiser steps", ge=1)
    patience: int = knob(
        5, "stop after this many validations without a lower validation loss", ge=1
    )
    time_budget_s: float = knob(
        7200.0,
        "safety net: stop (and keep the best checkpoint) after this wall time, a loud warning "
        "and MLflow tag stopped_by=time, since the model then depends on the machine's load; "
        "0 = none. The tiny recipe's 1,500 steps took 7 min on one core of a shared 2-core "
        "box, 11 min on trl's stock path (bench/RESULTS.md)",
        ge=0,
    )
    keep_checkpoints: int = knob(
        2, "checkpoints kept for resuming (the best one is never dropped)", ge=1
    )
    logging_steps: int = knob(
        10, "log the training loss and learning rate every this many steps", ge=1
    )
    cpu_threads: int = knob(
        1,
        "CPU training: torch threads (1 is fastest on a shared small box, and the thread count "
        "changes the float rounding, so a fixed count keeps runs comparable across machines); "
        "0 = torch's default, one per core",
        ge=0,
    )
    deterministic: bool = knob(
        False,
        "train with torch's deterministic algorithms only (torch.use_deterministic_algorithms); "
        "for a GPU run that must repeat bit for bit, with CUBLAS_WORKSPACE_CONFIG=:4096:8 set "
        "before the process starts. A CPU run on train.cpu_threads threads already repeats "
        "bit for bit either way",
    )
    collate_once: bool = knob(
        True,
        "render, tokenize and process the images of each SFT example once before training "
        "instead of in every batch; the same batches (false: trl's collator every batch)",
    )
    loss_positions: str = knob(
        "labelled",
        "where the output layer runs: labelled (the completion tokens the loss covers, about "
        "a tenth of a batch) or all (trl's way on a CPU); the same loss, gradients equal up "
        "to float rounding",
        choices=LOSS_POSITIONS,
    )
    lora_r: int = knob(16, "LoRA rank", ge=1)
    lora_alpha: int = knob(32, "LoRA alpha", ge=1)
    lora_dropout: float = knob(0.05, "LoRA dropout", ge=0, lt=1)
    lora_targets: list[str] = knob(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "language-model modules that get LoRA adapters",
    )
    quant_type: str = knob("nf4", "qlora: 4-bit weight type, nf4 or fp4", choices=QUANT_TYPES)
    double_quant: bool = knob(True, "qlora: quantise the quantisation constants too")
    compute_dtype: str = knob(
        "bfloat16", "qlora: dtype 4-bit layers compute in", choices=COMPUTE_DTYPES
    )
    seed: int = knob(0, "training seed")

    def __post_init__(self) -> None:
        check_knobs(self, "train")
        if self.eval_steps > self.max_steps:
            raise ValueError(
                f"train.eval_steps ({self.eval_steps}) exceeds train.max_steps ({self.max_steps}): "
                "no validation would run; lower train.eval_steps"
            )
        if self.room_views > 1 and not self.collate_once:
            raise ValueError(
                f"train.room_views={self.room_views} needs train.collate_once=true: trl's "
                "collator path shows every photo as it is"
            )
        if self.method != "full" and not self.lora_targets:
            raise ValueError(
                f"train.method={self.method} needs train.lora_targets (e.g. [q_proj, v_proj]); "
                "for all weights use train.method=full"
            )
