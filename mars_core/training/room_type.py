"""Room-type examples: training examples that ask the student only what kind of room a photo
shows, beside the pairs.

A pair's answer says whether a product fits; the room type it rests on is read from the photo
but never asked for on its own. Its rationale names the room ("a bed belongs in a bedroom"),
yet after the score and the product, from which the room often follows ("a bed" that fits
is in a bedroom) without a look at the photo. On held-out photos a student trained so hedges
between the indoor types: beds in a bedroom photo score about 0.5, between its fit and misfit
labels, and fall under the fit bar. Each training room photo is therefore also shown alone
`train.room_type_examples` times with `ROOM_TYPE_QUESTION`, its room type (the class folder a
room photo comes from, `rooms.parquet` `room_type`, what the teacher reads too) as the answer.
They are training examples only: validation (its loss picks the checkpoint) and search ask
the pair prompt alone, which they leave unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mars_core.prompt import room_type_answer, room_type_messages

if TYPE_CHECKING:  # built by replacing a pair's fields: data.py builds SFT data with these
    from mars_core.training.data import SFTExample

# The pair id of a room's k-th room-type example: never a mined pair's (`<room_id>|<key>`).
ROOM_TYPE_PAIR = "{room_id}:room-type:{k}"


def room_type_examples(pairs: list[SFTExample], per_room: int) -> list[SFTExample]:
    """`per_room` room-type examples for each room photo among `pairs` (the training ones),
    rooms in the order they first appear. Repeats of a room may show other views of its photo
    (`train.room_views`), as its pairs do."""
    rooms: dict[str, SFTExample] = {}
    for pair in pairs:
        rooms.setdefault(pair.room_id, pair)
    return [
        replace(
            pair,
            pair_id=ROOM_TYPE_PAIR.format(room_id=room_id, k=k),
            key="",
            category="",
            fits=False,
            prompt=room_type_messages(),
            completion=[room_type_answer(pair.room_type)],
            images=pair.images[:1],
        )
        for room_id, pair in rooms.items()
        for k in range(per_room)
    ]
