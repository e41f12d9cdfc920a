"""SFT examples from the teacher's labels, built with the one prompt (`mars_core.prompt`).

One example per `ok` label: the prompt messages (system text; room image, product image,
query and product text), the completion (`answer_message(score, rationale)`, which opens with
`{"score": ` so the digits the agent's fast path reads are trained tokens) and the two image
paths in `IMAGE_ORDER`. Labels whose teacher answer failed are left out and counted. Rooms and
products are joined by `room_id` and `key` from the ingest tables; a label naming a room or
product that is not there is a clear error, not a silent drop.

The validation split holds out whole rooms and whole products
(`catalogue.splits.validation_split`): a pair is trained on only when neither its room nor its
product is held out, so the validation loss measures what matters at search time: rooms and
products the student has not seen.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.catalogue.splits import validation_split
from mars_core.config import TrainConfig
from mars_core.infra.errors import UserInputError
from mars_core.prompt import (
    IMAGE_ORDER,
    PROMPT_VERSION,
    answer_message,
    product_text,
    prompt_messages,
)
from mars_core.training.balance import balance_grades
from mars_core.training.room_type import room_type_examples

OK = "ok"


class LabelsError(UserInputError):
    """Labels that cannot become training examples (missing file, unknown room or product)."""


@dataclass(frozen=True)
class SFTExample:
    """One training example: chat prompt + completion, and the image files they show."""

    pair_id: str
    room_id: str
    key: str  # the product's
    room_type: str
    category: str
    fits: bool  # the teacher's score at or over teacher.fit_threshold
    prompt: list[dict[str, Any]]
    completion: list[dict[str, Any]]
    images: list[str]  # room photo, product image (IMAGE_ORDER)

    def row(self) -> dict[str, Any]:
        """The dataset row trl's `SFTTrainer` reads (prompt/completion chat columns + images)."""
        return {
            "prompt": self.prompt,
            "completion": self.completion,
            "images": self.images,
            "room_id": self.room_id,
        }


@dataclass(frozen=True)
class SFTData:
    """Train and validation examples (split by room and product), and what they were built
    from."""

    train: list[SFTExample]
    val: list[SFTExample]
    failed_labels: int  # status != ok, left out
    held_out_products: int  # products on the validation side only
    dataset_hash: str  # sha256 of the examples (prompt version, text, image files)

    def sizes(self) -> dict[str, int]:
        return {
            "train_examples": len(self.train),
            "val_examples": len(self.val),
            "train_rooms": len({e.room_id for e in self.train}),
            "val_rooms": len({e.room_id for e in self.val}),
            "held_out_products": self.held_out_products,
            "failed_labels": self.failed_labels,
        }


def build_sft_data(
    labels_file: Path,
    catalogue_dir: Path,
    *,
    val_fraction: float,
    val_product_fraction: float,
    seed: int,
    fit_threshold: float,
    grade_balance: float,
    max_val_examples: int = 0,
    room_types_per_room: int = 0,
) -> SFTData:
    """Examples from `labels_file` joined with the rooms and catalogue in `catalogue_dir`;
    the pairs of neither a validation room (`val_fraction`) nor a validation product
    (`val_product_fraction`) are trained on, each room type x category's grades balanced
    (`training.balance`, `grade_balance`), then `room_types_per_room` room-type examples of
    each training room photo (`training.room_type`); validation keeps a seeded sample of at most
    `max_val_examples` (0 = all) of the others as labelled: each check costs a pass over it,
    time the budget would rather spend on training steps."""
    labels = _read(labels_file, "labels (run `python -m flows.label` first)")
    rooms = {r["room_id"]: r for r in _read(catalogue_dir / ROOMS_FILE, "rooms")}
    catalogue = _read_table(catalogue_dir / CATALOGUE_FILE, "catalogue")
    products = {p["key"]: p for p in catalogue.to_pylist()}
    ok = [label for label in labels if label["status"] == OK]
    if not ok:
        raise LabelsError(f"{labels_file}: no label has status {OK!r}; nothing to train on")
    examples = [_example(label, rooms, products, fit_threshold) for label in ok]
    held_out = validation_split(
        ((label["room_id"], label["key"]) for label in ok),
        catalogue,
        val_fraction,
        val_product_fraction,
        seed,
    )
    train = [e for e in examples if not held_out.holds(e.room_id, e.key)]
    val = [e for e in examples if held_out.holds(e.room_id, e.key)]
    return SFTData(
        train=[
            *balance_grades(train, grade_balance, seed),
            *room_type_examples(train, room_types_per_room),
        ],
        val=_sample(val, max_val_examples, seed),
        failed_labels=len(labels) - len(ok),
        held_out_products=len(held_out.products),
        dataset_hash=dataset_hash(examples),
    )


def sft_data_for(
    labels_file: Path, catalogue_dir: Path, train: TrainConfig, fit_threshold: float
) -> SFTData:
    """`build_sft_data` as the train flow calls it: split, balance and validation sample
    from `train.*`, fit from the teacher's `fit_threshold`."""
    return build_sft_data(
        labels_file,
        catalogue_dir,
        val_fraction=train.val_fraction,
        val_product_fraction=train.val_product_fraction,
        seed=train.seed,
        fit_threshold=fit_threshold,
        grade_balance=train.grade_balance,
        max_val_examples=train.max_val_examples,
        room_types_per_room=train.room_type_examples,
    )


def _sample(examples: list, limit: int, seed: int) -> list:
    """At most `limit` of `examples` (0 = all), a seeded choice kept in their order."""
    if not limit or len(examples) <= limit:
        return examples
    keep = set(random.Random(seed).sample(range(len(examples)), limit))
    return [e for i, e in enumerate(examples) if i in keep]


def dataset_hash(examples: list[SFTExample]) -> str:
    """Changes exactly when what the student would see changes (text, answers, image files)."""
    digest = hashlib.sha256(PROMPT_VERSION.encode())
    for example in sorted(examples, key=lambda e: e.pair_id):
        digest.update(json.dumps(example.row(), sort_keys=True).encode())
    return digest.hexdigest()


def _example(
    label: dict, rooms: dict[str, dict], products: dict[str, dict], fit_threshold: float
) -> SFTExample:
    room, product = rooms.get(label["room_id"]), products.get(label["key"])
    if room is None or product is None:
        missing = "room " + label["room_id"] if room is None else "product " + label["key"]
        raise LabelsError(
            f"label {label['pair_id']!r} names {missing}, which the catalogue tables do not "
            "hold; re-run mining and labelling on the current catalogue"
        )
    images = {"room": room["path"], "product": product["image_path"]}
    return SFTExample(
        pair_id=label["pair_id"],
        room_id=label["room_id"],
        key=label["key"],
        room_type=room["room_type"],
        category=product["category"],
        fits=label["score"] >= fit_threshold,
        prompt=prompt_messages(label["query"], product_text(product)),
        completion=[answer_message(label["score"], label["rationale"])],
        images=[images[part] for part in IMAGE_ORDER],
    )


def _read(path: Path, what: str) -> list[dict]:
    return _read_table(path, what).to_pylist()


def _read_table(path: Path, what: str) -> pa.Table:
    if not Path(path).is_file():
        raise LabelsError(f"{what}: {path} does not exist")
    return pq.read_table(path)
