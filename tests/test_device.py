"""Device choice, precision checks and out-of-memory classification."""

from __future__ import annotations

import pytest
import torch

from spectralstyle.device import check_precision, is_out_of_memory, out_of_memory_message, resolve_device
from spectralstyle.errors import SpectralStyleError


def test_fp16_refused_on_cpu_bf16_and_fp32_accepted():
    cpu = torch.device("cpu")
    with pytest.raises(SpectralStyleError, match="fp16 is for GPUs"):
        check_precision(cpu, "fp16")
    check_precision(cpu, "bf16")
    check_precision(cpu, "fp32")


def test_real_cpu_allocation_failure_is_out_of_memory():
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**45)  # 128 TiB: the CPU allocator refuses at once
    assert is_out_of_memory(info.value)
    assert out_of_memory_message(info.value) == "out of memory: use a smaller --size or fewer --crops"


def test_gpu_out_of_memory_messages():
    mps = RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)")
    assert is_out_of_memory(mps) and "on the GPU" in out_of_memory_message(mps)
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_out_of_memory(cuda) and "--precision bf16" in out_of_memory_message(cuda)
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu"])
def test_unknown_devices(name):
    with pytest.raises(SpectralStyleError):
        resolve_device(name)
