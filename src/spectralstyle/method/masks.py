"""Where a result is stylised: a grey-level mask image (white = style, black = photo, grey blends).

A mask of any size is resized to the photo it applies to, optionally inverted and feathered; the
result is blended with the photo through it (``controls.apply_controls``), and during ``transfer`` CLIP
sees that blend and the crops are drawn where the mask is set (``window_shares`` feeds
``augment.sample_masked_crop_params``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import open_rgb


@dataclass(frozen=True)
class MaskSpec:
    """A mask file and how to use it; ``at(width, height)`` gives the mask for a photo of that size."""

    path: Path
    feather: float = 0.0
    """Gaussian blur of the edge: sigma = feather / 2 pixels (of the photo the mask is resized to)."""
    invert: bool = False

    def at(self, width: int, height: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """[1, 1, height, width] in [0, 1]."""
        return prepare_mask(load_mask(self.path, (width, height)), self.feather, self.invert).to(device)


def load_mask(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """The grey levels of the image at ``path`` resized (bilinear) to ``size`` = (width, height): [1, 1, H, W]."""
    path = Path(path)
    if not path.is_file():
        raise SpectralStyleError(f"mask {path} does not exist" if not path.exists() else f"mask {path} is not a file")
    grey = open_rgb(path).convert("L")
    if grey.size != tuple(size):
        grey = grey.resize(tuple(size), Image.BILINEAR)
    return TF.to_tensor(grey).unsqueeze(0)


def feather(mask: torch.Tensor, pixels: float) -> torch.Tensor:
    """Gaussian blur (sigma = pixels / 2, reflected at the border) of [1, 1, H, W]; 0 leaves it as it is."""
    if pixels <= 0:
        return mask
    sigma = pixels / 2
    radius = min(math.ceil(3 * sigma), (min(mask.shape[-2:]) - 1))  # reflect padding needs radius < side
    if radius < 1:
        return mask
    return TF.gaussian_blur(mask, [2 * radius + 1, 2 * radius + 1], [sigma, sigma])


def prepare_mask(mask: torch.Tensor, feather_pixels: float = 0.0, invert: bool = False) -> torch.Tensor:
    """Inverted (1 - m) if asked, then feathered: [1, 1, H, W] in [0, 1]."""
    return feather(1 - mask if invert else mask, feather_pixels).clamp(0, 1)


def window_shares(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Mean mask value of every ``size`` x ``size`` window: [H - size + 1, W - size + 1] for [1, 1, H, W];
    entry (t, l) belongs to the window whose top-left pixel is (t, l)."""
    return F.avg_pool2d(mask.float(), size, stride=1)[0, 0]


def check_not_empty(mask: torch.Tensor, path: Path | str) -> None:
    """A transfer through a mask with nothing set would only give the photo back: say so."""
    if float(mask.max()) <= 0:
        raise SpectralStyleError(f"mask {path} selects nothing (black everywhere, after --invert-mask if given): "
                                 "white marks where the style goes")
