"""What a training run's numbers depend on besides its seed and data, pinned where it can be.

* Thread count: torch splits a CPU matrix product or reduction across its threads, and the
  split changes the order of float additions, so a run on 2 threads drifts from the same run
  on 1 (bench/RESULTS.md, "Training speed and reproducibility"). torch's default is one thread
  per core, a property of the machine; `train.cpu_threads` (1) fixes it for CPU training.
* Algorithms: `train.deterministic` makes torch pick deterministic kernels during training
  and raise on an operation that has none, instead of one that accumulates in arrival order
  (on a GPU, set `CUBLAS_WORKSPACE_CONFIG=:4096:8` before the process starts, as torch's
  error says). Set back when training ends: evaluation is not bound by it.
* The CPU's instruction set is not pinned: torch and MKL choose kernels for the CPU they run
  on (AVX-512 here, AVX2 elsewhere), which round differently. A run is bit-for-bit the same
  on one machine, not across machines; `ATEN_CPU_CAPABILITY=avx2` and `MKL_CBWR=AVX2` in the
  environment before Python starts make two x86 machines pick the same kernels (slower).

torch is imported by the caller first (this module is imported when a run starts).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mars_core.config import TrainConfig


@contextmanager
def pinned_numerics(train: TrainConfig, *, on_gpu: bool) -> Iterator[None]:
    """Train inside this: CPU threads as `train.cpu_threads` says (kept after, as torch's
    setting for the process), deterministic algorithms as `train.deterministic` says (set
    back to what they were on the way out)."""
    if train.cpu_threads and not on_gpu:
        torch.set_num_threads(train.cpu_threads)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(train.deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
