"""Keeping the photo's colours in a stylised result (Gatys et al. 2016, "Preserving color in neural
artistic style transfer").

- ``luminance``: the result's luminance Y with the photo's chroma (Cb, Cr), in YCbCr (ITU-R BT.601, full
  range, as JPEG and PIL use). Linear and differentiable, so ``transfer`` also applies it inside the loss.
- ``histogram``: each RGB channel of the result remapped so that its histogram is the photo's (exact
  histogram specification by ranks): the style's tones, the photo's palette. Written images only.

All functions take and return [B, 3, H, W] tensors in [0, 1]; ``photo`` has the result's size.
"""

from __future__ import annotations

import torch

# BT.601 full range: rows give Y, Cb, Cr from R, G, B (Cb and Cr centred on 0 here, +0.5 in 8-bit terms)
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                             [-0.168736, -0.331264, 0.5],
                             [0.5, -0.418688, -0.081312]])
COLOR_MODES = ("off", "luminance", "histogram")


def _mix_channels(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Per-pixel 3x3 colour transform of [B, 3, H, W]."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> Y in [0, 1], Cb and Cr in [-0.5, 0.5]."""
    return _mix_channels(image, RGB_TO_YCBCR)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """The inverse of ``rgb_to_ycbcr`` (not clamped: a bright Y with saturated chroma may leave [0, 1])."""
    return _mix_channels(image, torch.linalg.inv(RGB_TO_YCBCR))


def keep_photo_chroma(result: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """The result's luminance with the photo's chroma, back in RGB (differentiable).

    Y is limited, per pixel, to the range where that chroma stays inside the RGB cube (never empty: the
    photo's own Y lies in it), so the chroma is kept exactly instead of being bent by clamping RGB.
    """
    y = rgb_to_ycbcr(result)[:, :1]
    chroma = rgb_to_ycbcr(photo)[:, 1:]
    offsets = ycbcr_to_rgb(torch.cat([torch.zeros_like(y), chroma], dim=1))  # RGB - Y of that chroma: [B, 3, H, W]
    low, high = -offsets.amin(dim=1, keepdim=True), 1 - offsets.amax(dim=1, keepdim=True)
    y = torch.minimum(torch.maximum(y, low), high)
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0, 1)  # the clamp only removes float rounding


def match_histograms(result: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Each channel of ``result`` takes the photo's values in the order of its own: the k-th darkest pixel
    of the result gets the k-th darkest value of the photo (ties broken by position). Shapes [B, 3, H, W];
    ``photo`` may have another size (its sorted values are resampled to the result's pixel count)."""
    b, c, h, w = result.shape
    flat = result.reshape(b, c, -1)
    reference = photo.reshape(photo.shape[0], c, -1).sort(dim=-1).values.expand(b, c, -1)
    if reference.shape[-1] != flat.shape[-1]:  # quantiles of the photo at the result's ranks
        positions = torch.linspace(0, reference.shape[-1] - 1, flat.shape[-1], device=result.device)
        low = positions.floor().long()
        high = (low + 1).clamp(max=reference.shape[-1] - 1)
        frac = positions - low
        reference = reference[..., low] * (1 - frac) + reference[..., high] * frac
    order = flat.argsort(dim=-1, stable=True)
    matched = torch.empty_like(flat).scatter_(-1, order, reference.to(flat.dtype).contiguous())
    return matched.reshape(b, c, h, w)


def preserve_colors(result: torch.Tensor, photo: torch.Tensor, mode: str) -> torch.Tensor:
    """``result`` with the photo's colours kept as ``mode`` says (off, luminance, histogram)."""
    if mode == "off":
        return result
    if mode == "luminance":
        return keep_photo_chroma(result, photo)
    if mode == "histogram":
        return match_histograms(result, photo)
    raise ValueError(f"unknown colour mode {mode!r}; use one of {', '.join(COLOR_MODES)}")
