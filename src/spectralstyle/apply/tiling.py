"""Applying a StyleNet to images of any size in bounded memory: overlapping tiles, whole-image norms.

Why not just cut the image into tiles: StyleNet has 18 InstanceNorm layers, and each normalises
with the mean and variance of the WHOLE feature map. Tiles normalised on their own get their own
colours and contrast, and the seams show. Here every tile is normalised with statistics of the whole
image instead, obtained in one of two ways:

- ``exact``: layer by layer. Every tile runs up to norm layer k (in forward order) and waits there,
  its live tensors kept (apply/staged.py: in memory, beyond a budget in temporary files); the sums and
  sums of squares of layer k's input over the tiles' interiors (float64) give the statistics; then every
  tile goes on to layer k + 1. Each layer runs once per tile: about one forward pass over the tiles and
  their halos, and the result equals untiled processing up to float rounding.
- ``sampled``: as ``exact``, but measured on an evenly spread quarter of the tiles: a quarter of the
  cost of ``exact`` for the statistics, at full resolution (no scale bias), with a sampling error.
- ``downscaled``: the statistics of one untiled pass over the image scaled to ``stats_side`` pixels
  (longer side). One cheap extra pass; an approximation (README gives the measured difference).

Tiles have an interior of ``tile`` pixels (multiple of 8) plus a halo of ``HALO`` pixels on each side
that is computed and thrown away: it covers the network's receptive field, so a tile's interior equals
the same region of an untiled pass with the same statistics, and no seams appear. Tile origins are
multiples of 8, so the three stride-2 levels of every tile line up with the untiled grid.

Memory: the input and output stay uint8/float32 numpy arrays (4 + 12 bytes per pixel, and 3 for
the PNG written by PIL); the network only ever sees one tile (about 1 KB per pixel of a tile); ``exact``
keeps up to ``staged.MEMORY_BYTES`` of waiting tiles in memory and the rest on disk (about 200 bytes per pixel).
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

from spectralstyle.apply.staged import STAGES, TileState, TileStore, run_stage
from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.stylenet import StyleNet

# >= the receptive-field radius of StyleNet (63 px, measured: one changed pixel moves outputs 63 px away), multiple of 8
HALO = 72
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


def norm_layers(net: nn.Module) -> list[nn.InstanceNorm2d]:
    """The InstanceNorm layers in the order a forward pass reaches them (module order is that order in StyleNet)."""
    return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]


@contextmanager
def _patched_norms(net: nn.Module,
                   handler: Callable[[int, nn.InstanceNorm2d, torch.Tensor], torch.Tensor]) -> Iterator[None]:
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


def pad_to_multiple(image: np.ndarray, multiple: int = StyleNet.SIZE_MULTIPLE,
                    min_side: int = StyleNet.MIN_SIDE) -> np.ndarray:
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
            out.append(Tile(y0, y1, x0, x1, max(0, y0 - halo), min(height, y1 + halo),
                            max(0, x0 - halo), min(width, x1 + halo)))
    return out


def sampled_tiles(grid: list[Tile], fraction: float) -> list[Tile]:
    """``fraction`` of the tiles (at least one), evenly spread in raster order."""
    count = max(1, math.ceil(len(grid) * fraction))
    return [grid[i] for i in sorted({round(j * (len(grid) - 1) / max(1, count - 1)) for j in range(count)})]


def _accumulate(sums: list[torch.Tensor], t: Tile, x: torch.Tensor) -> int:
    """Add the per-channel sum and sum of squares (float64) of ``x`` over the tile's interior; return its pixels."""
    scale = (t.oy1 - t.oy0) // x.shape[-2]
    inner = x[..., (t.y0 - t.oy0) // scale:(t.y1 - t.oy0) // scale,
              (t.x0 - t.ox0) // scale:(t.x1 - t.ox0) // scale].double()
    s, q = inner.sum(dim=(0, 2, 3)), inner.square().sum(dim=(0, 2, 3))
    if sums:
        sums[0] += s
        sums[1] += q
    else:
        sums.extend((s, q))
    return inner.shape[-1] * inner.shape[-2]


def staged_pass(net: StyleNet, padded: np.ndarray, grid: list[Tile], device: torch.device,
                on_output: Callable[[Tile, torch.Tensor], None] | None = None, on_tile: ProgressFn | None = None,
                store: TileStore | None = None) -> list[Norm]:
    """Whole-image statistics of every norm layer over ``grid``, and with ``on_output`` each tile's result.

    Layer by layer (apply/staged.py): every tile runs up to norm layer k, keeping what it needs to go on;
    the sums over the tiles' interiors give layer k's statistics; then every tile goes on to layer k + 1.
    Each layer runs once per tile. ``on_tile(done, total)`` counts tile stages.
    """
    layers = norm_layers(net)
    known: list[Norm] = []
    last = STAGES if on_output else len(layers)  # without outputs, stop once the last statistics are known

    def normalize(i: int, layer: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
        return _normalize(layer, x, known[i])

    with store or TileStore() as kept, torch.no_grad():
        for k in range(last):
            sums: list[torch.Tensor] = []
            count = 0
            for index, t in enumerate(grid):
                state = TileState(kept, index, device)
                result = run_stage(net, k, state, normalize,
                                   lambda t=t: _tensor(padded[t.oy0:t.oy1, t.ox0:t.ox1], device))
                if k < len(layers):
                    count += _accumulate(sums, t, result)
                elif on_output:
                    on_output(t, result)
                del result
                if on_tile:
                    on_tile(k * len(grid) + index + 1, last * len(grid))
            if k < len(layers):
                mean = sums[0] / count
                known.append(Norm(mean.float(), (sums[1] / count - mean.square()).clamp_min(0).float()))
    return known


def exact_norms(net: StyleNet, padded: np.ndarray, tile: int, device: torch.device,
                on_tile: ProgressFn | None = None, fraction: float = 1.0) -> list[Norm]:
    """Whole-image statistics of every norm layer, streamed over tiles (see module doc);
    with ``fraction`` < 1 measured on that share of the tiles only."""
    grid = tiles(*padded.shape[:2], tile)
    return staged_pass(net, padded, grid if fraction >= 1 else sampled_tiles(grid, fraction), device, on_tile=on_tile)


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
    raw = np.empty((height, width, 3), np.float32)
    gray_sum = 0.0

    def write(t: Tile, out: torch.Tensor) -> None:
        nonlocal gray_sum
        if t.y0 >= height or t.x0 >= width:  # only padding: nothing of the image to write
            return
        y1, x1 = min(t.y1, height), min(t.x1, width)
        inner = out[0, :, t.y0 - t.oy0:y1 - t.oy0, t.x0 - t.ox0:x1 - t.ox0].float().clamp(0, 1)
        gray_sum += float((0.2989 * inner[0] + 0.587 * inner[1] + 0.114 * inner[2]).double().sum())
        raw[t.y0:y1, t.x0:x1] = inner.permute(1, 2, 0).cpu().numpy()

    if stats == "exact":  # statistics and results in one layer-by-layer pass
        staged_pass(net, padded, grid, device, on_output=write, on_tile=on_tile)
    else:
        measured = sampled_tiles(grid, SAMPLED_FRACTION) if stats == "sampled" else []
        total = len(measured) * len(norm_layers(net)) + len(grid)
        if measured:
            norms = staged_pass(net, padded, measured, device,
                                on_tile=(lambda done, _: on_tile(done, total)) if on_tile else None)
        else:
            norms = downscaled_norms(net, source, stats_side, device)

        def fixed(i: int, layer: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
            return _normalize(layer, x, norms[i])

        with _patched_norms(net, fixed), torch.no_grad():
            for done, t in enumerate(grid, start=total - len(grid) + 1):
                if t.y0 < height and t.x0 < width:
                    write(t, net(_tensor(padded[t.oy0:t.oy1, t.ox0:t.ox1], device)))
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
    return TiledResult(Image.fromarray(result), len(grid), stats)
