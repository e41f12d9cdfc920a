"""trl's `SFTTrainer` with two changes for the student: whole-model checkpoints that reload as
they were saved, and the output layer computed only where the loss looks.

The loss covers the completion tokens only, about a tenth of a batch's positions. trl's
`compute_loss` asks the model for per-token log-probabilities with `model(**inputs,
fused_lm_head=True)`; on a GPU with Triton trl's fused head projects only the labelled
positions through the output layer, but on a CPU it projects every position (and computes
their softmax, entropy and top-1, twice: again in the backward pass). With
`train.loss_positions=labelled`, a CPU run answers that call with `LabelledLogProbs`, which
does trl's CPU arithmetic, operation for operation, on the labelled positions only, and
accumulates the output layer's weight gradient over every position's row as trl does (the
others' rows are zero), so that even its rounding is trl's: the loss, its metrics and every
gradient are trl's to the bit (`tests/training/test_loss.py`), for a vocabulary within one
of trl's projection tiles (32,768 tokens: the tiny student's 736; a larger one is the same
within float rounding). trl then computes the loss and its metrics from the answer as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from trl import SFTTrainer
from trl.trainer.utils import FusedCausalLMOutput

from mars_core.config.train import LOSS_POSITIONS

LABELLED = "labelled"  # `train.loss_positions`: the output layer at labelled positions only
IGNORED = -100  # the label of a position outside the loss
# trl's fused head: rows per projection chunk (its `TOKEN_CHUNK_SIZE`), whose order the
# weight gradient's sums follow.
_TOKEN_CHUNK = 4096
# Output-layer transforms trl's fused head applies for some model families; Qwen2-VL has none
# (nor a bias in its output layer).
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
        if self.loss_positions == LABELLED and self.args.device.type == "cpu":
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
        if causal_lm.get_output_embeddings().bias is not None:
            transforms.append("a bias")
        if transforms:
            raise ValueError(
                f"the student's output layer has {', '.join(transforms)}, which "
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
    log_probs, entropy, is_top1 = LabelledLogProbs.apply(
        hidden.reshape(-1, hidden.shape[-1]), head.weight, targets.reshape(-1)
    )
    # `masked_scatter` keeps a batch without labels connected to the graph (a zero loss).
    log_probs, entropy, is_top1 = (
        x.new_zeros(mask.shape).masked_scatter(mask, x) for x in (log_probs, entropy, is_top1)
    )
    return FusedCausalLMOutput(
        log_probs=log_probs, entropy=entropy, is_top1=is_top1, label_mask=mask
    )


class LabelledLogProbs(torch.autograd.Function):
    """Log-probability, entropy and top-1 hit of each labelled row's target under
    `hidden @ weight.T`, as trl's `ChunkedLogProbFunction` computes them on a CPU (its torch
    fallback, one vocabulary tile, no logit transform, temperature 1), for the labelled rows
    only; the backward pass returns the gradients trl's would, bit for bit."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
        ctx.set_materialize_grads(False)
        rows = targets != IGNORED
        dtype = _compute_dtype(hidden)
        z = torch.mm(hidden[rows].to(dtype), weight.to(dtype).t()).float()
        target = targets[rows]
        top = z.amax(-1)
        e = torch.exp(z - top.unsqueeze(-1))
        sum_exp = e.sum(-1)
        log_z = top + torch.log(sum_exp)
        target_logit = z.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        entropy = log_z - (e * z).sum(-1) / sum_exp
        # The first maximum is the top-1 prediction: a tie with an earlier token is a miss.
        earlier = torch.arange(z.shape[-1], device=z.device) < target.unsqueeze(-1)
        best_earlier = z.masked_fill(~earlier, -torch.inf).amax(-1)
        is_top1 = (target_logit >= top) & (target_logit > best_earlier)
        ctx.save_for_backward(hidden, weight, targets, log_z, entropy)
        ctx.mark_non_differentiable(is_top1)
        return target_logit - log_z, entropy, is_top1

    @staticmethod
    def backward(ctx: Any, grad_log_probs: Any, grad_entropy: Any, _: Any) -> Any:
        hidden, weight, targets, log_z, entropy = ctx.saved_tensors
        rows = targets != IGNORED
        dtype = _compute_dtype(hidden)
        w = weight.to(dtype)
        z = torch.mm(hidden[rows].to(dtype), w.t()).float()
        log_p = z - log_z.unsqueeze(-1)
        p = torch.exp(log_p)
        grad = torch.zeros_like(z)
        if grad_log_probs is not None:
            is_target = torch.arange(z.shape[-1], device=z.device) == targets[rows].unsqueeze(-1)
            grad += grad_log_probs.float().unsqueeze(-1) * (is_target.float() - p)
        if grad_entropy is not None:
            grad -= grad_entropy.float().unsqueeze(-1) * p * (log_p + entropy.unsqueeze(-1))
        logits_grad = hidden.new_zeros(len(targets), weight.shape[0], dtype=dtype)
        logits_grad[rows] = grad.to(dtype)
        grad_hidden = torch.zeros(hidden.shape, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, device=weight.device)
        grad_hidden[rows] = grad_hidden[rows].addmm_(logits_grad[rows].float(), w.float())
        for start in range(0, len(targets), _TOKEN_CHUNK):
            chunk = slice(start, start + _TOKEN_CHUNK)
            grad_weight.addmm_(logits_grad[chunk].t().float(), hidden[chunk].to(dtype).float())
        return grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype), None


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype trl projects in: autocast's, else the hidden states'."""
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
