"""SFT examples as the train flow builds them, at a split the tests' small label files hold."""

from __future__ import annotations

from pathlib import Path

from mars_core.training.data import SFTData, build_sft_data


def build_examples(
    labels: Path, folder: Path, balance: float = 0.0, room_types: int = 0
) -> SFTData:
    """`labels` joined with `folder`'s tables: a quarter of the rooms and a fifth of the
    products for validation, fit at 0.5, the training side's grades balanced by `balance`
    (`train.grade_balance`), `room_types` room-type examples per training room photo."""
    return build_sft_data(
        labels,
        folder,
        val_fraction=0.25,
        val_product_fraction=0.2,
        seed=0,
        fit_threshold=0.5,
        grade_balance=balance,
        room_types_per_room=room_types,
    )
