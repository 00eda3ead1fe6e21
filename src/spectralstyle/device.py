"""Choosing the torch device: CUDA when present, then Apple MPS, then CPU; never hard-coded."""

from __future__ import annotations

import torch

from .errors import SpectralStyleError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """torch.device for 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; a clear error if unavailable."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise SpectralStyleError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise SpectralStyleError("CUDA was requested but torch sees no CUDA device here; use --device cpu or auto")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise SpectralStyleError(f"bad CUDA device {name!r}") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpectralStyleError(f"{name} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
        return device
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SpectralStyleError("Apple MPS was requested but is not available here; use --device cpu or auto")
    return torch.device(kind)


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse autocast modes that the device would run slower than fp32 or not at all, with the reason."""
    if precision == "fp16" and device.type == "cpu":
        raise SpectralStyleError("--precision fp16 is for GPUs (on CPU it is emulated and many times slower); "
                                 "use bf16 or fp32 on CPU")
    if (precision == "bf16" and device.type == "cuda"
            and not torch.cuda.is_bf16_supported(including_emulation=False)):
        raise SpectralStyleError(f"{torch.cuda.get_device_name(device)} has no native bf16 (it needs an Ampere "
                                 "or newer GPU); use --precision fp16 or fp32")
