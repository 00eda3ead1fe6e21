"""The state dicts of VGG19 and VQGAN files, and strict loading into a model, with one-line errors.

The readers live here, beside ``safeload`` and ``clip_formats``, so that ``method/`` (which builds
the networks) and the ``weights`` command's checks share one loader and neither imports the other's
private names. Each reader has a ``*_from`` form that takes what ``read_weights`` returned, so a
file whose kind is unknown (``weights import``) is read once and tried as every kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spectralstyle.errors import WeightsMissingError
from spectralstyle.weights.safeload import read_weights, tensors_only

VGG19_WHAT = "VGG19 state dict"
VQGAN_WHAT = "VQGAN checkpoint"
VQGAN_PREFIXES = ("decoder.", "quantize.", "post_quant_conv.")  # the decoding half of a taming VQModel


def _wrapped_state(data: Any) -> Any:
    return data["state_dict"] if isinstance(data, dict) and isinstance(data.get("state_dict"), dict) else data


def vgg19_state_from(data: Any) -> dict[str, torch.Tensor]:
    """The feature layers' tensors of what a VGG19 file held, keyed as in ``vgg19().features`` ('0.weight'):
    a whole model's ``features.*`` without the prefix, or a bare ``features`` dict as it is."""
    state = tensors_only(_wrapped_state(data))
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return features or state


def read_vgg19_state(path: Path) -> dict[str, torch.Tensor]:
    """The feature layers' tensors of a VGG19 file (torch or safetensors), read without running code from it."""
    return vgg19_state_from(read_weights(path, VGG19_WHAT))


def vqgan_state_from(data: Any, path: Path) -> dict[str, torch.Tensor]:
    """The decoder, codebook and post_quant_conv tensors of a taming checkpoint ({"state_dict": ...}) or of
    a bare state dict. Lightning checkpoints pickle training objects beside the weights; ``safeload`` keeps
    those as inert placeholders."""
    state = tensors_only(_wrapped_state(data))
    if not state:
        raise WeightsMissingError(f"{path} holds no VQGAN state dict (expected a taming-transformers checkpoint)")
    return {k: v for k, v in state.items() if k.startswith(VQGAN_PREFIXES)}


def read_vqgan_state(path: Path) -> dict[str, torch.Tensor]:
    return vqgan_state_from(read_weights(path, VQGAN_WHAT), path)


def load_strictly(model: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str, hint: str = "") -> nn.Module:
    """``model`` with ``state`` loaded key for key and shape for shape; one line naming the first differences."""
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        parts = [f"{len(names)} {label} (first: {', '.join(names[:3])})"
                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise WeightsMissingError(f"{path} does not match {what}: keys {'; '.join(parts)}{hint}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        first = next((line.strip() for line in lines if "size mismatch" in line), lines[0] if lines else str(exc))
        raise WeightsMissingError(f"{path} does not match {what}: {first}") from None
    return model
