"""Examples collated once make the batches trl's collator makes of them, tensor for tensor."""

from __future__ import annotations

import pytest
import torch
from support.sft import build_examples

from mars_core.models.loading import load_vlm
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.augment import RoomViews
from mars_core.training.collate import (
    EXAMPLE,
    PaddedBatches,
    ShownImages,
    index_dataset,
    stock_collator,
)


@pytest.fixture(scope="module")
def collated(cfg, model_cache, sft_dir):
    """The session's SFT examples collated once, four at a time (the last chunk shorter), with
    the processor and images they used."""
    data = build_examples(sft_dir / LABELS_FILE, sft_dir)
    processor = load_vlm(cfg.student, model_cache).processor
    images = ShownImages(processor, cfg.data.max_image_pixels, cfg.student.product_max_pixels)
    examples = [*data.train, *data.val]
    return examples, processor, images, PaddedBatches(processor, examples, images, chunk=4)


@pytest.mark.parametrize("chosen", [[0], [3, 1, 4, 1, 5], [7, 2, 9, 11], "all"])
def test_a_batch_of_examples_collated_once_is_the_batch_trl_collates(collated, chosen):
    """Same keys, dtypes and values: prompts and answers of different lengths padded alike,
    an example twice in one batch, pixels and grids in example order."""
    examples, processor, images, batches = collated
    numbers = range(len(examples)) if chosen == "all" else chosen
    expected = stock_collator(processor)([images.row(examples[n]) for n in numbers])
    batch = batches([{EXAMPLE: n} for n in numbers])
    assert set(batch) == set(expected)
    for name, value in expected.items():
        assert batch[name].dtype == value.dtype, name
        assert torch.equal(batch[name], value), name


def test_each_image_is_kept_once_however_many_examples_show_it(collated):
    examples, _, _, batches = collated
    shown = {key for example in batches.examples for key in example.images}
    assert len(batches) == len(examples)
    assert set(batches.pixels) == shown and len(shown) < 2 * len(examples)


def test_the_index_dataset_names_examples_for_the_sampler():
    rows = index_dataset(range(5, 9))
    assert len(rows) == 4 and rows[0] == {EXAMPLE: 5} and rows[-1] == {EXAMPLE: 8}


def test_a_training_example_shows_its_room_photo_in_its_view(cfg, collated):
    """Each example's room photo is collated in its view (kept once per photo and view); view
    0 is the photo as it is, another view other pixels of the same size."""
    examples, processor, _, plain = collated
    views = RoomViews(views=4, min_crop=0.75, flip=True, seed=0)
    images = ShownImages(
        processor, cfg.data.max_image_pixels, cfg.student.product_max_pixels, views
    )
    chosen, picks = examples[:6], [1, 2, 0, 3, 1, 0]
    batches = PaddedBatches(processor, chosen, images, views=picks, chunk=4)
    for n, (example, view) in enumerate(zip(chosen, picks, strict=True)):
        room = ("room", example.images[0], view)
        assert batches.examples[n].images[0] == room
        expected = stock_collator(processor)([images.row(example, view)])
        assert torch.equal(batches([{EXAMPLE: n}])["pixel_values"], expected["pixel_values"])
    as_is, viewed = ("room", chosen[2].images[0], 0), ("room", chosen[0].images[0], 1)
    assert torch.equal(batches.pixels[as_is], plain.pixels[as_is])
    other = plain.pixels[("room", chosen[0].images[0], 0)]
    assert batches.pixels[viewed].shape == other.shape
    assert not torch.equal(batches.pixels[viewed], other)
