"""Room-type examples: each training room photo asked alone what kind of room it shows."""

from __future__ import annotations

import pytest
import torch
from support.sft import build_examples

from mars_core.models.loading import load_vlm
from mars_core.prompt import ROOM_TYPE_QUESTION
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.collate import (
    EXAMPLE,
    PaddedBatches,
    ShownImages,
    shown_parts,
    stock_collator,
)


@pytest.fixture(scope="module")
def with_room_types(sft_dir):
    """The session's SFT data with two room-type examples per training room, and without."""
    labels = sft_dir / LABELS_FILE
    return build_examples(labels, sft_dir, room_types=2), build_examples(labels, sft_dir)


def test_each_training_room_photo_is_asked_its_type_and_validation_is_left_alone(
    with_room_types,
):
    data, plain = with_room_types
    asked = data.train[len(plain.train) :]
    assert data.train[: len(plain.train)] == plain.train and data.val == plain.val
    rooms = {pair.room_id: pair for pair in plain.train}
    assert len(asked) == 2 * len(rooms) and len({e.pair_id for e in asked}) == len(asked)
    for example in asked:
        pair = rooms[example.room_id]
        assert example.images == [pair.images[0]]  # the room photo alone
        assert example.prompt[1]["content"][-1]["text"] == ROOM_TYPE_QUESTION
        answer = example.completion[0]["content"][0]["text"]
        assert answer == pair.room_type.replace("_", " ") and "_" not in answer
    held_out = {e.room_id for e in data.val} - set(rooms)  # validation rooms
    assert held_out and {e.room_id for e in asked} == set(rooms)


def test_a_room_type_example_collated_once_is_what_trl_collates(cfg, model_cache, with_room_types):
    """A batch mixing pairs (two images) and room-type examples (one) is trl's batch, tensor
    for tensor, and a room-type example's loss covers its answer only."""
    data, plain = with_room_types
    processor = load_vlm(cfg.student, model_cache).processor
    images = ShownImages(processor, cfg.data.max_image_pixels, cfg.student.product_max_pixels)
    chosen = [data.train[0], data.train[len(plain.train)], data.train[1], data.train[-1]]
    batches = PaddedBatches(processor, chosen, images, chunk=3)
    expected = stock_collator(processor)([images.row(example) for example in chosen])
    batch = batches([{EXAMPLE: n} for n in range(len(chosen))])
    assert set(batch) == set(expected)
    for name, value in expected.items():
        assert torch.equal(batch[name], value), name
    assert len(batches.examples[1].images) == 1
    answer = chosen[1].completion[0]["content"][0]["text"]
    labels = batch["labels"][1]
    trained = processor.tokenizer.decode(labels[labels != -100])
    assert trained.startswith(answer)


def test_an_example_shows_one_or_two_images_and_no_other_count():
    assert shown_parts(["room.jpg"]) == [("room", "room.jpg")]
    assert shown_parts(["r.jpg", "p.jpg"]) == [("room", "r.jpg"), ("product", "p.jpg")]
    for paths in ([], ["a", "b", "c"]):
        with pytest.raises(ValueError, match="images for an example"):
            shown_parts(paths)
