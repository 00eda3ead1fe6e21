"""Applying a StyleNet to images of any size in bounded memory: overlapping tiles, whole-image norms.

Why not just cut the image into tiles: StyleNet has 18 InstanceNorm layers, and each normalises
with the mean and variance of the WHOLE feature map. Tiles normalised on their own get their own
colours and contrast, and the seams show. Here every tile is normalised with statistics of the whole
image instead, obtained in one of two ways:

- ``exact``: streamed. For norm layer k (in forward order) every tile is run up to layer k, with the
  already known statistics for layers < k, and the sum and sum of squares of layer k's input over
  the tile's interior are accumulated (float64). 18 partial passes plus the final one cost about
  10 full forward passes, and the result equals untiled processing up to float rounding.
- ``sampled``: as ``exact``, but measured on an evenly spread quarter of the tiles: a quarter of the
  cost of ``exact`` for the statistics, at full resolution (no scale bias), with a sampling error.
- ``downscaled``: the statistics of one untiled pass over the image scaled to ``stats_side`` pixels
  (longer side). One cheap extra pass; an approximation (README gives the measured difference).

Tiles have an interior of ``tile`` pixels (multiple of 8) plus a halo of ``HALO`` pixels on each side
that is computed and thrown away: it covers the network's receptive field, so a tile's interior equals
the same region of an untiled pass with the same statistics, and no seams appear. Tile origins are
multiples of 8, so the three stride-2 levels of every tile line up with the untiled grid.

Memory: the input and output stay uint8/float32 numpy arrays (4 + 12 bytes per pixel, and 3 for
the PNG written by PIL); the network only ever sees one tile (about 1 KB per pixel of a tile).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.stylenet import StyleNet

HALO = 72  # >= the receptive-field radius of StyleNet (63 pixels, measured: one changed pixel moves outputs up to 63 away), a multiple of 8
CPU_TILE = 768  # interior side on CPU: (768 + 2*72)^2 pixels of activations is about 1 GB
BYTES_PER_PIXEL = 1100  # StyleNet(ngf=16) forward without gradients, per input pixel (measured on CPU)
STATS_MODES = ("exact", "sampled", "downscaled")
SAMPLED_FRACTION = 0.25  # "sampled" measures the statistics exactly on this share of the tiles, spread evenly
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Norm:
    """Mean and (biased) variance per channel of one InstanceNorm layer's input, shape [C]."""

    mean: torch.Tensor
    var: torch.Tensor


class _Stop(Exception):
    """Ends a partial forward pass once the norm layer being measured has seen its input."""


def norm_layers(net: nn.Module) -> list[nn.InstanceNorm2d]:
    """The InstanceNorm layers in the order a forward pass reaches them (module order is that order in StyleNet)."""
    return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]


@contextmanager
def _patched_norms(net: nn.Module, handler: Callable[[int, nn.InstanceNorm2d, torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Route every InstanceNorm layer through ``handler(index, layer, x)`` for the duration of the block."""
    layers = norm_layers(net)
    for index, layer in enumerate(layers):
        layer.forward = (lambda x, i=index, m=layer: handler(i, m, x))  # type: ignore[method-assign]
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _normalize(layer: nn.InstanceNorm2d, x: torch.Tensor, norm: Norm) -> torch.Tensor:
    mean = norm.mean.to(x.device, x.dtype).view(1, -1, 1, 1)
    std = torch.sqrt(norm.var.to(x.device, x.dtype) + layer.eps).view(1, -1, 1, 1)
    y = (x - mean) / std
    if layer.affine:
        y = y * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
    return y


def pad_to_multiple(image: np.ndarray, multiple: int = StyleNet.SIZE_MULTIPLE, min_side: int = StyleNet.MIN_SIDE) -> np.ndarray:
    """Pad H x W x 3 at the bottom and right as ``StyleNet.stylize`` does (reflect, or edge when too small)."""
    h, w = image.shape[:2]
    ph, pw = (max(min_side, n + -n % multiple) - n for n in (h, w))
    if not (ph or pw):
        return image
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def _tensor(block: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 H x W x 3 -> [1, 3, H, W] float in [0, 1], as ``TF.to_tensor`` converts it."""
    return torch.from_numpy(np.array(block)).to(device).permute(2, 0, 1).unsqueeze(0).float().div(255)


@dataclass(frozen=True)
class Tile:
    """A tile's interior (what it writes) and its outer box (interior plus halo, clipped to the image)."""

    y0: int
    y1: int
    x0: int
    x1: int
    oy0: int
    oy1: int
    ox0: int
    ox1: int


def tiles(height: int, width: int, tile: int, halo: int = HALO) -> list[Tile]:
    """Interiors of ``tile`` pixels covering the (padded, multiple-of-8) image, each with its halo."""
    out = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(height, y0 + tile), min(width, x0 + tile)
            out.append(Tile(y0, y1, x0, x1, max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)))
    return out


def sampled_tiles(grid: list[Tile], fraction: float) -> list[Tile]:
    """``fraction`` of the tiles (at least one), evenly spread in raster order."""
    count = max(1, math.ceil(len(grid) * fraction))
    return [grid[i] for i in sorted({round(j * (len(grid) - 1) / max(1, count - 1)) for j in range(count)})]


def exact_norms(net: StyleNet, padded: np.ndarray, tile: int, device: torch.device,
                on_pass: ProgressFn | None = None, fraction: float = 1.0) -> list[Norm]:
    """Whole-image statistics of every norm layer, layer by layer, streamed over tiles (see module doc);
    with ``fraction`` < 1 measured on that share of the tiles only."""
    layers = norm_layers(net)
    height, width = padded.shape[:2]
    grid = tiles(height, width, tile)
    if fraction < 1:
        grid = sampled_tiles(grid, fraction)
    known: list[Norm] = []
    for k in range(len(layers)):
        sums: torch.Tensor | None = None
        squares: torch.Tensor | None = None
        count = 0

        def handler(i: int, layer: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
            nonlocal sums, squares, count
            if i < k:
                return _normalize(layer, x, known[i])
            scale = (t.oy1 - t.oy0) // x.shape[-2]
            inner = x[..., (t.y0 - t.oy0) // scale:(t.y1 - t.oy0) // scale,
                      (t.x0 - t.ox0) // scale:(t.x1 - t.ox0) // scale].double()
            s, q = inner.sum(dim=(0, 2, 3)), inner.square().sum(dim=(0, 2, 3))
            sums, squares = (s, q) if sums is None else (sums + s, squares + q)
            count += inner.shape[-1] * inner.shape[-2]
            raise _Stop

        with _patched_norms(net, handler), torch.no_grad():
            for t in grid:
                try:
                    net(_tensor(padded[t.oy0:t.oy1, t.ox0:t.ox1], device))
                except _Stop:
                    pass
        mean = sums / count
        known.append(Norm(mean.float(), (squares / count - mean.square()).clamp_min(0).float()))
        if on_pass:
            on_pass(k + 1, len(layers) + 1)
    return known


def recorded_norms(net: StyleNet, image: torch.Tensor) -> list[Norm]:
    """The statistics an untiled pass over ``image`` ([1,3,H,W], sides multiples of 8) uses."""
    recorded: list[Norm] = []

    def handler(i: int, layer: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        recorded.append(Norm(mean.detach(), var.detach()))
        return _normalize(layer, x, recorded[-1])

    with _patched_norms(net, handler), torch.no_grad():
        net(image)
    return recorded


def downscaled_norms(net: StyleNet, image: np.ndarray, stats_side: int, device: torch.device) -> list[Norm]:
    """Statistics of the image scaled to ``stats_side`` (longer side, bicubic) and padded like stylize pads."""
    pil = Image.fromarray(image)
    if max(pil.size) > stats_side:
        scale = stats_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.BICUBIC)
    small = pad_to_multiple(np.asarray(pil))
    return recorded_norms(net, _tensor(small, device))


def default_tile(device: torch.device, ngf: int = 16) -> int:
    """Interior tile side for the device: fixed on CPU (about 1 GB per tile); from free memory on CUDA."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        pixels = 0.5 * free / (BYTES_PER_PIXEL * ngf / 16)
        side = int(math.sqrt(pixels)) - 2 * HALO
        return int(min(8192, max(256, side - side % 8)))
    return CPU_TILE


@dataclass
class TiledResult:
    image: Image.Image
    tiles: int
    stats: str  # "untiled", "exact", "sampled" or "downscaled"


def stylize_large(net: StyleNet, image: Image.Image, contrast: float, device: torch.device, tile: int | None = None,
                  stats: str = "exact", stats_side: int = 512, on_tile: ProgressFn | None = None) -> TiledResult:
    """The finished (clamped, contrast-adjusted) RGB result of ``net`` on ``image``, in bounded memory.

    Images whose padded size fits in one tile (with its halo) run untiled, exactly as ``net.stylize``.
    """
    if stats not in STATS_MODES:
        raise SpectralStyleError(f"unknown statistics mode {stats!r}; use one of {', '.join(STATS_MODES)}")
    tile = tile or default_tile(device, getattr(net, "ngf", 16))
    if tile < 64 or tile % 8:
        raise SpectralStyleError(f"--tile must be a multiple of 8 and at least 64 pixels, got {tile}")
    source = np.asarray(image.convert("RGB"))
    height, width = source.shape[:2]
    padded = pad_to_multiple(source)
    ph, pw = padded.shape[:2]
    if ph * pw <= (tile + 2 * HALO) ** 2:
        from spectralstyle.media.images import finish_image, to_pil

        with torch.no_grad():
            result = net.stylize(_tensor(source, device))
        return TiledResult(to_pil(finish_image(result, contrast)), 1, "untiled")
    grid = tiles(ph, pw, tile)
    fraction = SAMPLED_FRACTION if stats == "sampled" else 1.0
    measured = len(sampled_tiles(grid, fraction)) if stats != "downscaled" else 0
    total = len(grid) + measured * len(norm_layers(net))
    done = 0

    def count_pass(k: int, _: int) -> None:
        if on_tile:
            on_tile(k * measured, total)

    if stats in ("exact", "sampled"):
        norms = exact_norms(net, padded, tile, device, on_pass=count_pass, fraction=fraction)
        done = total - len(grid)
    else:
        norms = downscaled_norms(net, source, stats_side, device)
    raw = np.empty((height, width, 3), np.float32)
    gray_sum = 0.0

    def fixed(i: int, layer: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
        return _normalize(layer, x, norms[i])

    with _patched_norms(net, fixed), torch.no_grad():
        for t in grid:
            done += 1
            if t.y0 >= height or t.x0 >= width:  # only padding: nothing of the image to write
                continue
            out = net(_tensor(padded[t.oy0:t.oy1, t.ox0:t.ox1], device))
            y1, x1 = min(t.y1, height), min(t.x1, width)
            inner = out[0, :, t.y0 - t.oy0:y1 - t.oy0, t.x0 - t.ox0:x1 - t.ox0].float().clamp(0, 1)
            gray_sum += float((0.2989 * inner[0] + 0.587 * inner[1] + 0.114 * inner[2]).double().sum())
            raw[t.y0:y1, t.x0:x1] = inner.permute(1, 2, 0).cpu().numpy()
            if on_tile:
                on_tile(done, total)
    del padded
    gray_mean = gray_sum / (height * width)
    result = np.empty((height, width, 3), np.uint8)
    for r0 in range(0, height, 256):  # contrast (a global mean) and 8-bit conversion, in bands of rows
        band = torch.from_numpy(raw[r0:r0 + 256])
        if contrast != 1.0:
            band = (contrast * band + (1.0 - contrast) * gray_mean).clamp(0, 1)
        result[r0:r0 + 256] = band.mul(255).to(torch.uint8).numpy()  # truncation, as TF.to_pil_image does
    del raw
    return TiledResult(Image.fromarray(result), len(grid), stats)
