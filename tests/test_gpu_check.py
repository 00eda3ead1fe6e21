"""scripts/gpu_check.sh without CUDA: one line naming CUDA, a non-zero exit, at once (docs/gpu.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def run_script(tmp_path: Path, path: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GPU_CHECK_")}
    env.update(PATH=path, OUT=str(tmp_path / "out"))
    start = time.monotonic()
    proc = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    return proc, time.monotonic() - start


def assert_one_cuda_line(proc: subprocess.CompletedProcess, seconds: float, reason: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and proc.stdout == "", (proc.returncode, proc.stdout)
    assert len(lines) == 1 and lines[0].startswith("error: CUDA is missing") and reason in lines[0], lines
    assert "Traceback" not in proc.stderr and seconds < 10


def test_without_nvidia_smi_it_stops_at_once(tmp_path):
    assert os.access(SCRIPT, os.X_OK)
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "dirname", "env"):  # what runs before the CUDA check, and nothing named nvidia-smi
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bare / tool)
    proc, seconds = run_script(tmp_path, str(bare))
    assert_one_cuda_line(proc, seconds, "no nvidia-smi")
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_with_nvidia_smi_but_no_gpu_it_stops_at_once(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    (fake / "nvidia-smi").chmod(0o755)
    proc, seconds = run_script(tmp_path, f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    assert_one_cuda_line(proc, seconds, "finds no GPU")


@pytest.mark.parametrize("device", ["tpu"])
def test_unknown_device_is_refused(tmp_path, device):
    env = {**os.environ, "GPU_CHECK_DEVICE": device, "OUT": str(tmp_path / "out")}
    proc = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: GPU_CHECK_DEVICE must be cuda or cpu, got '{device}'"
