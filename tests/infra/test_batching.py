"""`batched`: consecutive slices of the same kind as the input, the last one shorter."""

import numpy as np
import pyarrow as pa
import pytest

from mars_core.infra.batching import batched


def test_a_list_comes_in_slices_of_size_the_last_shorter():
    assert list(batched([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(batched([1, 2, 3, 4], 2)) == [[1, 2], [3, 4]]
    assert list(batched([1, 2], 5)) == [[1, 2]]


def test_nothing_in_gives_no_batches():
    assert list(batched([], 3)) == []
    assert list(batched(range(0), 3)) == []


def test_a_range_gives_the_offsets_of_each_batch():
    assert list(batched(range(7), 3)) == [range(0, 3), range(3, 6), range(6, 7)]


def test_tables_and_arrays_stay_tables_and_arrays():
    table = pa.table({"key": ["a", "b", "c"]})
    parts = list(batched(table, 2))
    assert all(isinstance(part, pa.Table) for part in parts)
    assert [part["key"].to_pylist() for part in parts] == [["a", "b"], ["c"]]
    arrays = list(batched(np.arange(5), 2))
    assert all(isinstance(part, np.ndarray) for part in arrays)
    assert [part.tolist() for part in arrays] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("size", [0, -1])
def test_a_size_below_one_is_refused_by_name(size):
    with pytest.raises(ValueError, match=f"batch size must be at least 1, got {size}"):
        batched([1, 2], size)
