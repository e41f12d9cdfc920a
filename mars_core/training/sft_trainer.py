"""trl's `SFTTrainer` with two changes for the student: whole-model checkpoints that reload as
they were saved, and the output layer computed only where the loss looks.

The loss covers the completion tokens only, about a tenth of a batch's positions. trl's
`compute_loss` asks the model for per-token log-probabilities with `model(**inputs,
fused_lm_head=True)`, which projects only the labelled positions through the output layer on
a GPU with Triton but every position elsewhere (on a CPU, an accelerator compiling per shape).
With `train.loss_positions=labelled`, `LabelledPositions` answers that same call by projecting
only the labelled positions, on any device, with trl's own kernel; trl then computes the loss
and its metrics from the answer as usual. The loss is the same to the bit and the gradients
differ by float rounding in the output layer's weight only (`tests/training/test_loss.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from trl import SFTTrainer
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.utils import FusedCausalLMOutput

from mars_core.config.train import LOSS_POSITIONS

LABELLED = "labelled"  # `train.loss_positions`: the output layer at labelled positions only
IGNORED = -100  # the label of a position outside the loss
# What trl's SFT loss and metrics read from the fused head (`log_probs`, `entropy`, `is_top1`).
_OUTPUTS = ("log_probs", "entropy", "is_top1")
_VOCAB_CHUNK = 32768  # vocabulary columns per projection tile, as trl's fused head uses
# Output-layer transforms trl's fused head applies for some model families; Qwen2-VL has none.
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


class StudentSFTTrainer(SFTTrainer):
    """`SFTTrainer` whose output layer runs at `loss_positions` (`labelled` or `all`) and
    whose whole-model checkpoints reload.

    transformers 5 saves Qwen2-VL under its original checkpoint key names (`visual.*`,
    `model.layers.*`) while the Trainer reloads checkpoints (resume, best model) with a plain
    `load_state_dict`, which then matches no key and silently keeps the current weights. The
    checkpoint's weights are written again under the in-memory names, which that load reads.
    The final model folder is saved with `save_pretrained` and loads with `from_pretrained`.
    """

    def __init__(self, *args: Any, loss_positions: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if loss_positions not in LOSS_POSITIONS:
            raise ValueError(f"loss_positions={loss_positions!r}; accepted: {LOSS_POSITIONS}")
        self.loss_positions = loss_positions

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.loss_positions == LABELLED:
            model = LabelledPositions(model, self.accelerator.unwrap_model(model))
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        model = self.accelerator.unwrap_model(self.model)
        if output_dir and not hasattr(model, "peft_config"):
            save_model(model, str(Path(output_dir) / "model.safetensors"))


class LabelledPositions:
    """The training model, called as trl's `compute_loss` calls it: with `fused_lm_head=True`
    the backbone runs on every position and the output layer only on those with a label;
    any other call goes to the model unchanged."""

    def __init__(self, model: Any, unwrapped: Any) -> None:
        self.model = model
        causal_lm = unwrapped.get_base_model() if hasattr(unwrapped, "peft_config") else unwrapped
        text_config = causal_lm.config.get_text_config()
        transforms = [n for n in _LOGIT_TRANSFORMS if getattr(text_config, n, None) is not None]
        if transforms:
            raise ValueError(
                f"the student's output layer is scaled ({', '.join(transforms)}), which "
                "train.loss_positions=labelled does not apply; set train.loss_positions=all"
            )
        self.causal_lm = causal_lm

    def __call__(self, *, fused_lm_head: bool = False, **inputs: Any) -> Any:
        if not fused_lm_head:
            return self.model(**inputs)
        return labelled_log_probs(self.causal_lm, **inputs)


def labelled_log_probs(causal_lm: Any, *, labels: torch.Tensor, **inputs: Any) -> Any:
    """trl's fused-head output (log-probabilities, entropy, top-1 hits of each next-token
    label, zero where the label is ignored) with the output layer run only where it is not."""
    hidden = causal_lm.base_model(**inputs).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    mask = targets != IGNORED
    head = causal_lm.get_output_embeddings()
    per_token = ChunkedLogProbFunction.apply(
        hidden[mask], head.weight, head.bias, targets[mask], 1.0, _VOCAB_CHUNK, None, 1.0, _OUTPUTS
    )
    # `masked_scatter` keeps a batch without labels connected to the graph (a zero loss).
    log_probs, entropy, _, _, is_top1 = (
        None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token
    )
    return FusedCausalLMOutput(
        log_probs=log_probs, entropy=entropy, is_top1=is_top1, label_mask=mask
    )
