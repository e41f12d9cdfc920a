"""What a training run's numbers depend on besides its seed and data, pinned where it can be.

Measured on the tiny student (bench/RESULTS.md, "Training speed and reproducibility"): on one
CPU thread a run repeats bit for bit, in the same process or another, whatever
`OMP_NUM_THREADS` says. Three things change its float rounding, each by about 1e-7 in the
loss and 1e-5 in the weights after 100 steps, and such differences grow: gradients that
differed by 5e-8 in one sum's order gave validation losses of 0.058 and 0.047 by step 300
and students whose best validation loss was 0.0200 and 0.0171 after 1,500 steps.

* The thread count: torch splits a CPU matrix product across its threads, which changes the
  order of float additions, and its default is one thread per core, a property of the
  machine. `train.cpu_threads` (1) fixes it for CPU training.
* The CPU's kernels: torch (`ATEN_CPU_CAPABILITY`), MKL (`MKL_CBWR`) and oneDNN
  (`ONEDNN_MAX_CPU_ISA`) each pick the widest instructions the CPU has (AVX-512 or AVX2),
  which round differently (each variable set to AVX2 on an AVX-512 machine changed the run),
  so two machines with different CPUs train different students. Not pinned here: the
  variables are read when torch loads, before any config. Setting all three to AVX2 on both
  machines asks each for the same kernels; that two machines then agree was not measured.
* Non-deterministic algorithms (GPU atomics, cuBLAS's split reductions): `train.deterministic`
  asks torch for deterministic ones during training. On a CPU it changes no bit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mars_core.config import TrainConfig
from mars_core.infra.errors import UserInputError

# What cuBLAS needs to repeat a GPU run (torch's reproducibility notes).
CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"


@contextmanager
def pinned_numerics(train: TrainConfig, *, on_gpu: bool) -> Iterator[None]:
    """Train inside this: CPU threads as `train.cpu_threads` says (kept after, as torch's
    setting for the process), deterministic algorithms as `train.deterministic` says (set
    back to what they were on the way out: evaluation is not bound by them)."""
    if train.deterministic and on_gpu and not os.environ.get(CUBLAS_WORKSPACE):
        raise UserInputError(
            f"train.deterministic=true on a GPU needs {CUBLAS_WORKSPACE}=:4096:8 in the "
            "environment before the process starts; set it, or train.deterministic=false"
        )
    if train.cpu_threads and not on_gpu:
        torch.set_num_threads(train.cpu_threads)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(train.deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
