"""StyleNet run one InstanceNorm layer at a time, so that many tiles can wait at a norm layer for its statistics.

Why: with whole-image statistics (apply/tiling.py) norm layer k can normalise a tile only once EVERY tile has
reached layer k. Running each tile from the input up to layer k again for every k costs about 10 forward
passes; here each tile's forward pass is cut into 19 stages (before norm 0, between consecutive norms, after
norm 17), and what a tile needs to go on (the input of the norm layer it stopped at, the pending residual
projection and the U-Net's skip tensors) is kept in a ``TileStore`` until the statistics are known. Every
layer then runs once per tile: the cost is one forward pass over the tiles (with their halos) plus the store.

The stages replay ``StyleNet.forward`` operation by operation (same modules, same order), so a tile's result
equals the network's own forward pass given the same statistics (tests/test_tiling.py checks it against
``net(x)``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spectralstyle.method.stylenet import ResidualConvBlock, StyleNet

# (norm layer index, the layer, its input [1, C, h, w]) -> the normalised input
Normalize = Callable[[int, nn.InstanceNorm2d, torch.Tensor], torch.Tensor]
MEMORY_BYTES = 384 * 2**20  # kept in memory at most; beyond it, tensors go to temporary files (3 GB at 24 MP)


def residual_blocks(net: StyleNet) -> list[ResidualConvBlock]:
    """The 9 residual blocks in forward order; each holds 2 of the 18 norms (conv, norm, relu, conv, norm, relu)."""
    return [net.init, net.down1.block, net.down2.block, net.down3.block, net.bottleneck,
            net.up3.block, net.up2.block, net.up1.block, net.fuse]


STAGES = 2 * 9 + 1  # stage k < 18 ends at the input of norm layer k; stage 18 ends at the output


class TileStore:
    """Tensors kept between stages, by key, on the CPU: in memory up to ``memory_bytes`` in all, beyond that each
    in its own file of a temporary folder (removed when taken back), so peak memory does not grow with the image.

    float32 as computed: the store adds no rounding, and results stay exactly those of untiled processing.
    """

    def __init__(self, memory_bytes: int = MEMORY_BYTES) -> None:
        self.memory_bytes = memory_bytes
        self.in_memory = 0
        self.spilled_bytes = 0  # the most ever held on disk at once (reported by the benchmark)
        self._on_disk = 0
        self._memory: dict[tuple[int, str], torch.Tensor] = {}
        self._files: dict[tuple[int, str], tuple[str, tuple[int, ...], torch.dtype]] = {}
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def put(self, key: tuple[int, str], tensor: torch.Tensor) -> None:
        tensor = tensor.detach().to("cpu").contiguous()
        size = tensor.numel() * tensor.element_size()
        if self.in_memory + size <= self.memory_bytes:
            self._memory[key] = tensor
            self.in_memory += size
            return
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="spectralstyle-tiles-")
        path = os.path.join(self._folder.name, f"{key[0]}-{key[1]}.raw")
        tensor.numpy().tofile(path)
        self._files[key] = (path, tuple(tensor.shape), tensor.dtype)
        self._on_disk += size
        self.spilled_bytes = max(self.spilled_bytes, self._on_disk)

    def take(self, key: tuple[int, str], device: torch.device) -> torch.Tensor:
        if key in self._memory:
            tensor = self._memory.pop(key)
            self.in_memory -= tensor.numel() * tensor.element_size()
            return tensor.to(device)
        path, shape, dtype = self._files.pop(key)
        array = np.fromfile(path, dtype=torch.empty(0, dtype=dtype).numpy().dtype).reshape(shape)
        os.remove(path)
        self._on_disk -= array.nbytes
        return torch.from_numpy(array).to(device)

    def close(self) -> None:
        self._memory.clear()
        self._files.clear()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> TileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TileState:
    """One tile's view of the store: its live tensors by name ("pre", "skip", "x", "s1", "s2", "s3")."""

    def __init__(self, store: TileStore, tile: int, device: torch.device) -> None:
        self.store, self.tile, self.device = store, tile, device

    def put(self, name: str, tensor: torch.Tensor) -> None:
        self.store.put((self.tile, name), tensor)

    def take(self, name: str) -> torch.Tensor:
        return self.store.take((self.tile, name), self.device)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _enter(block: ResidualConvBlock, t: torch.Tensor, state: TileState) -> torch.Tensor:
    """Start a residual block on its input ``t``: keep the 1x1 skip projection, return its first norm's input."""
    state.put("skip", block.skip(t))
    pre = block.conv[0](t)
    state.put("pre", pre)
    return pre


def _between_blocks(net: StyleNet, j: int, y: torch.Tensor, state: TileState) -> torch.Tensor:
    """What ``StyleNet.forward`` does between residual block j's output ``y`` and block j+1's input (or the end)."""
    if j == 0:  # init: x, also the fuse block's skip
        state.put("x", y)
        return y
    if j <= 3:  # down1..down3: the features are the U-Net skip s1..s3, the strided conv goes on
        state.put(f"s{j}", y)
        return (net.down1, net.down2, net.down3)[j - 1].downsample(y)
    if j <= 6:  # bottleneck, up3, up2: upsample and concatenate with s3, s2, s1
        return torch.cat([_upsample(y), state.take(f"s{7 - j}")], dim=1)
    if j == 7:  # up1, then fuse with x
        return torch.cat([y, state.take("x")], dim=1)
    return torch.sigmoid(net.head(y))


def run_stage(net: StyleNet, k: int, state: TileState, normalize: Normalize,
              tile_input: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Stage ``k`` of one tile: the input of norm layer k ([1, C, h, w], also kept in the store as "pre") for
    k < 18, the network's output [1, 3, H, W] for k == 18. Stage k > 0 needs norm layer k - 1's statistics,
    which ``normalize`` applies; stage 0 reads the tile ([1, 3, H, W] in [0, 1]) from ``tile_input()``."""
    blocks = residual_blocks(net)
    if k == 0:
        return _enter(blocks[0], net.stem(tile_input()), state)
    j, second = divmod(k - 1, 2)
    block = blocks[j]
    pre = state.take("pre")
    if not second:  # the block's first norm is known: relu, second conv
        pre = block.conv[3](block.conv[2](normalize(k - 1, block.conv[1], pre)))
        state.put("pre", pre)
        return pre
    y = block.conv[5](normalize(k - 1, block.conv[4], pre)) + state.take("skip")
    t = _between_blocks(net, j, y, state)
    return t if j == len(blocks) - 1 else _enter(blocks[j + 1], t, state)
