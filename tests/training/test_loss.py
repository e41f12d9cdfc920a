"""The output layer at the labelled positions only gives trl's loss on the real tiny student:
the same loss, metrics and gradients, bit for bit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.sft import build_examples
from trl import SFTConfig

from mars_core.config import TrainConfig
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.collate import EXAMPLE
from mars_core.training.sft_trainer import LabelledPositions, StudentSFTTrainer
from mars_core.training.trainer import model_inputs, prepare_model, sft_args


def _loss_and_gradients(trainer, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_labelled_positions_give_the_loss_and_gradients_of_every_position(
    cfg, model_cache, sft_dir, tmp_path
):
    torch.manual_seed(0)
    train = dataclasses.replace(TrainConfig(), batch_size=4, eval_steps=1, max_steps=1)
    data = build_examples(sft_dir / LABELS_FILE, sft_dir)
    model, processor = prepare_model(train, cfg.student, model_cache)
    trainer = StudentSFTTrainer(
        model=model,
        args=SFTConfig(**sft_args(train, tmp_path, on_gpu=False, dtype=cfg.student.dtype)),
        processing_class=processor,
        loss_positions="all",
        **model_inputs(data, processor, train, cfg.data.max_image_pixels, None),
    )
    batch = trainer.data_collator([{EXAMPLE: n} for n in range(4)])
    labelled = (batch["labels"][:, 1:] != -100).sum()
    assert 0 < labelled < batch["attention_mask"].sum() / 4  # the answer is a small part
    every_loss, every_grad = _loss_and_gradients(trainer, batch)
    trainer.loss_positions = "labelled"
    loss, grad = _loss_and_gradients(trainer, batch)

    assert torch.equal(loss, every_loss)
    assert every_grad.keys() == grad.keys()
    assert [name for name, value in every_grad.items() if not torch.equal(grad[name], value)] == []
    assert any(value.abs().max() > 1e-3 for value in grad.values())  # the model does learn
    for metric in ("entropy", "mean_token_accuracy"):  # what trl logs beside the loss
        every, labelled_only = trainer._metrics["train"][metric]
        assert every == labelled_only, metric


def test_an_output_layer_it_cannot_reproduce_is_refused_naming_the_knob(cfg, model_cache):
    """Qwen2-VL's output layer has no bias and no logit scale; one that had would be wrong
    silently, so it is refused."""
    model, _ = prepare_model(TrainConfig(), cfg.student, model_cache)
    head = model.get_output_embeddings()
    head.bias = torch.nn.Parameter(torch.zeros(head.out_features))
    with pytest.raises(ValueError, match=r"a bias.*train\.loss_positions=all"):
        LabelledPositions(model, model)
