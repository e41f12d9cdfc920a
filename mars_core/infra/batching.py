"""Consecutive batches of anything that slices: lists, tuples, ranges, numpy arrays, pyarrow
tables. Python 3.11 has no `itertools.batched`, and that one yields tuples, where a batch of
a table or an array must stay a table or an array."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, Self, TypeVar


class Sliceable(Protocol):
    """What `batched` needs: a length and slicing that returns the same kind."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Self: ...


S = TypeVar("S", bound=Sliceable)


def batched(items: S, size: int) -> Iterator[S]:
    """`items` in consecutive slices of `size` (the last may be shorter; none when empty).

    A range gives ranges, so `batched(range(n), size)` is the row offsets of each batch. A
    size below 1 is refused at the call, not at the first batch."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return (items[start : start + size] for start in range(0, len(items), size))
