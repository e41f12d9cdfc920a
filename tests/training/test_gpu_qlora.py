"""On a CUDA machine: one real-size QLoRA step on the Qwen2-VL-2B architecture runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_one_qlora_step_on_the_2b_architecture():
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_qlora_step", "--steps", "2"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "peak GPU memory" in done.stdout and "4-bit linears: 196" in done.stdout
