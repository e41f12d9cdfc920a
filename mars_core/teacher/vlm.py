"""The in-process VLM teacher: Qwen2.5-VL (7B on a GPU, or the tiny one offline) via transformers.

Pairs of different rooms go into one left-padded batch (generation appends on the right, so
every row's answer starts at the same column). The first attempt is greedy; an answer that
does not parse is asked again by sampling at `teacher.retry_temperature` (greedy would repeat
it word for word).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from mars_core.config import TeacherConfig
from mars_core.infra.batching import batched
from mars_core.infra.errors import UserInputError
from mars_core.models.loading import load_vlm
from mars_core.prompt import product_text, prompt_messages
from mars_core.teacher.base import Label, LabelRequest, Teacher, label_with_retries
from mars_core.teacher.pair_images import pair_images, unloadable


class VLMTeacher(Teacher):
    """Generates the prompt's answer JSON with a loaded Qwen2-VL-family model."""

    def __init__(self, cfg: TeacherConfig, cache_dir: Path | str, max_image_pixels: int) -> None:
        loaded = load_vlm(cfg, cache_dir)
        self.cfg = cfg
        self.max_image_pixels = max_image_pixels
        self.name = cfg.name
        self.model = loaded.model
        self.processor = loaded.processor
        self.device = loaded.device

    def label(self, requests: Sequence[LabelRequest]) -> list[Label]:
        labels: list[Label | None] = [None] * len(requests)
        loadable: list[tuple[int, str, list[Image.Image]]] = []
        for index, request in enumerate(requests):
            try:
                images = pair_images(request, self.max_image_pixels)
            except UserInputError as e:
                labels[index] = Label(None, None, unloadable(e), "failed", 0)
                continue
            loadable.append((index, self._prompt_text(request), images))

        def ask(indices: list[int], attempt: int) -> list[str]:
            answers: list[str] = []
            for part in batched(indices, self.cfg.batch_size):
                chunk = [loadable[i] for i in part]
                answers += self.generate(
                    [t for _, t, _ in chunk], [im for *_, im in chunk], attempt
                )
            return answers

        asked = label_with_retries(len(loadable), ask, self.cfg.max_attempts)
        for (index, _, _), label in zip(loadable, asked, strict=True):
            labels[index] = label
        return [label for label in labels if label is not None]

    @torch.inference_mode()
    def generate(
        self, texts: list[str], images: list[list[Image.Image]], attempt: int
    ) -> list[str]:
        """One left-padded batch of answers; greedy on the first attempt, sampled after."""
        inputs = self.processor(
            text=texts, images=images, padding=True, padding_side="left", return_tensors="pt"
        ).to(self.device)
        sampling = {"do_sample": False}
        if attempt > 1:
            sampling = {"do_sample": True, "temperature": self.cfg.retry_temperature}
        out = self.model.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, **sampling)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)

    def _prompt_text(self, request: LabelRequest) -> str:
        messages = prompt_messages(request.pair["query"], product_text(request.product))
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)
