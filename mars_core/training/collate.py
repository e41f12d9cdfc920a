"""SFT examples as model inputs: trl's collator run once over every example, then batches
only padded.

trl's `DataCollatorForVisionLanguageModeling` renders the chat template, tokenizes and
processes both images of every example in every batch, so each example is re-done once per
epoch. `PaddedBatches` runs that same collator over all examples once, before training, a few
at a time, and keeps each example's tensors (each image's pixels once, however many examples
show it); a batch is then only padded and concatenated, tensor for tensor what trl's collator
makes of the same examples (`tests/training/test_collate.py`): sequences right-padded (trl
flushes its left-padded prompts left), labels -100 on padding, pixels and grids in example
order. `stock_dataset` is trl's way (`train.collate_once=false`), kept to measure against.

Either way an image is loaded once per run and shown as the agent is shown it
(`IMAGE_ORDER`; a product image within `student.product_max_pixels`); a training example may
show a view of its room photo instead (`training.augment`, `train.room_views`), each view
processed once too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from mars_core.agent.vision import bound_product_image
from mars_core.prompt import IMAGE_ORDER
from mars_core.training.augment import RoomViews
from mars_core.training.data import SFTExample
from mars_core.vision.images import load_image

# The one key of an index dataset's rows (`index_dataset`): which collated example to batch.
EXAMPLE = "example"
# Per-token inputs and what pads them; any other per-token input pads with 0.
_TOKEN_PADDING = {"attention_mask": 0, "labels": -100}
# Per-image inputs: each image's patches, and its (t, h, w) patch grid.
PIXELS, GRID = "pixel_values", "image_grid_thw"
# Examples per call of trl's collator while collating once.
COLLATE_CHUNK = 32

ImageKey = tuple[str, str, int]  # (part, path, view of the room photo; 0 = as it is)


class ShownImages:
    """Each (part, path, view) loaded once and shown as the agent shows it: the room as loaded
    (or a view of it, `room_views`), the product bounded to `student.product_max_pixels`."""

    def __init__(
        self,
        processor: Any,
        max_image_pixels: int,
        product_max_pixels: int | None,
        room_views: RoomViews | None = None,
    ):
        self.room_views = room_views
        self.shown: dict[str, Callable[[Any], Any]] = {
            "room": lambda image: image,
            "product": lambda image: bound_product_image(
                image, processor.image_processor, product_max_pixels
            ),
        }
        self.max_image_pixels = max_image_pixels
        self.cache: dict[ImageKey, Any] = {}

    def __call__(self, part: str, path: str, view: int = 0) -> Any:
        key = (part, path, view)
        if key not in self.cache:
            image = load_image(path, self.max_image_pixels)
            if view:
                image = self.room_views.draw(image, path, view)
            self.cache[key] = self.shown[part](image)
        return self.cache[key]

    def keys(self, example: SFTExample, view: int = 0) -> tuple[ImageKey, ...]:
        """The example's images in `IMAGE_ORDER`, its room photo in view `view`."""
        return tuple(
            (part, path, view if part == "room" else 0)
            for part, path in shown_parts(example.images)
        )

    def row(self, example: SFTExample, view: int = 0) -> dict[str, Any]:
        """The example's dataset row with its images loaded, as trl's collator takes it."""
        return example.row() | {"images": [self(*key) for key in self.keys(example, view)]}


def shown_parts(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Each image path with its part, in `IMAGE_ORDER`: a pair shows a room photo and a
    product image, a room-type example (`training.room_type`) the room photo alone."""
    if not 0 < len(paths) <= len(IMAGE_ORDER):
        raise ValueError(f"{len(paths)} images for an example; expected 1 to {len(IMAGE_ORDER)}")
    return list(zip(IMAGE_ORDER, paths, strict=False))


def stock_collator(processor: Any) -> DataCollatorForVisionLanguageModeling:
    """trl's collator as `SFTTrainer` builds it for this data (completion-only loss, no
    truncation: `max_length=None` never cuts an image token)."""
    return DataCollatorForVisionLanguageModeling(processor=processor, completion_only_loss=True)


def stock_dataset(examples: list[SFTExample], images: ShownImages) -> Any:
    """A `datasets.Dataset` of prompt/completion/images rows whose images load per batch: what
    trl's collator renders and processes on every batch (`train.collate_once=false`)."""
    from datasets import Dataset

    def with_images(batch: dict[str, list]) -> dict[str, list]:
        loaded = [
            [images(part, path) for part, path in shown_parts(paths)] for paths in batch["images"]
        ]
        return batch | {"images": loaded}

    return Dataset.from_list([e.row() for e in examples]).with_transform(with_images)


def index_dataset(examples: range) -> Any:
    """A `datasets.Dataset` whose rows only name their example (`EXAMPLE`, a number in
    `examples`): the sampler shuffles these exactly as it would the examples, and
    `PaddedBatches` looks up what each was collated to."""
    from datasets import Dataset

    return Dataset.from_dict({EXAMPLE: list(examples)})


@dataclass(frozen=True)
class CollatedExample:
    """One example's per-token inputs (1-D, unpadded) and the images it shows, in order."""

    tokens: dict[str, torch.Tensor]
    images: tuple[ImageKey, ...]


class PaddedBatches:
    """The data collator of examples collated once: pads their tokens and concatenates their
    images' pixels and grids into the batch trl's collator would have made. `views` gives
    each example's room-photo view (none: every photo as it is)."""

    def __init__(
        self,
        processor: Any,
        examples: list[SFTExample],
        images: ShownImages,
        views: Sequence[int] | None = None,
        chunk: int = COLLATE_CHUNK,
    ):
        collate = stock_collator(processor)
        self.pad_token_id = processor.tokenizer.pad_token_id
        self.pixels: dict[ImageKey, torch.Tensor] = {}
        self.grids: dict[ImageKey, torch.Tensor] = {}
        self.examples: list[CollatedExample] = []
        views = list(views) if views is not None else [0] * len(examples)
        for start in range(0, len(examples), chunk):
            end = start + chunk
            self._collate(collate, images, examples[start:end], views[start:end])

    def _collate(
        self, collate: Callable, images: ShownImages, chunk: list[SFTExample], views: list[int]
    ) -> None:
        """trl's collator on a few examples at once (its set-up costs more than one example),
        each example's tokens cut back to its own (trl flushes them left) and its images
        kept once."""
        done = collate([images.row(e, view) for e, view in zip(chunk, views, strict=True)])
        grids = done.pop(GRID)
        patches = iter(done.pop(PIXELS).split(grids.prod(-1).tolist()))
        grids, lengths = iter(grids), done["attention_mask"].sum(-1).tolist()
        for row, (example, view, length) in enumerate(zip(chunk, views, lengths, strict=True)):
            keys = images.keys(example, view)
            for key in keys:
                pixels, grid = next(patches), next(grids)
                if key not in self.pixels:  # a copy: a view would keep the whole chunk's pixels
                    self.pixels[key], self.grids[key] = pixels.clone(), grid
            tokens = {name: value[row, :length] for name, value in done.items()}
            self.examples.append(CollatedExample(tokens, keys))

    def __len__(self) -> int:
        return len(self.examples)

    def __call__(self, rows: list[dict[str, int]]) -> dict[str, torch.Tensor]:
        chosen = [self.examples[row[EXAMPLE]] for row in rows]
        batch = {
            name: torch.nn.utils.rnn.pad_sequence(
                [c.tokens[name] for c in chosen],
                batch_first=True,
                padding_value=self._padding(name),
            )
            for name in chosen[0].tokens
        }
        keys = [key for c in chosen for key in c.images]
        batch[PIXELS] = torch.cat([self.pixels[key] for key in keys])
        batch[GRID] = torch.stack([self.grids[key] for key in keys])
        return batch

    def _padding(self, name: str) -> int:
        return self.pad_token_id if name == "input_ids" else _TOKEN_PADDING.get(name, 0)
