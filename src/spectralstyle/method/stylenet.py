"""StyleNet: CLIPstyler's small U-Net that maps the content image to the stylised image.

It is trained from scratch for each (image, text) pair. Being fully convolutional, a trained
network applies to any image whose sides are multiples of 8 (three stride-2 downsamplings);
``stylize`` pads other sizes by reflection and crops back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1), nn.InstanceNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1), nn.InstanceNorm2d(cout), nn.ReLU(),
    )


class ResidualConvBlock(nn.Module):
    """Two conv3x3-InstanceNorm-ReLU layers plus a 1x1 skip projection."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv_block(cin, cout)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.skip(x)


class DownBlock(nn.Module):
    """Residual block, then a strided 4x4 conv halving the resolution; returns (down, skip)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = ResidualConvBlock(cin, cout)
        self.downsample = nn.Conv2d(cout, cout, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.block(x)
        return self.downsample(features), features


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip features, residual block."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = ResidualConvBlock(cin + cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class StyleNet(nn.Module):
    """U-Net with ngf base channels and a sigmoid output in [0, 1] (docs/method.md, section 2)."""

    SIZE_MULTIPLE = 8
    MIN_SIDE = 16  # the 1/8 bottleneck needs 2x2 pixels for InstanceNorm

    def __init__(self, ngf: int = 16, channels: int = 3) -> None:
        super().__init__()
        self.ngf = ngf
        self.stem = nn.Conv2d(channels, ngf, 1)
        self.init = ResidualConvBlock(ngf, ngf)
        self.down1 = DownBlock(ngf, ngf)
        self.down2 = DownBlock(ngf, 2 * ngf)
        self.down3 = DownBlock(2 * ngf, 4 * ngf)
        self.bottleneck = ResidualConvBlock(4 * ngf, 8 * ngf)
        self.up3 = UpBlock(8 * ngf, 4 * ngf)
        self.up2 = UpBlock(4 * ngf, 2 * ngf)
        self.up1 = UpBlock(2 * ngf, ngf)
        self.fuse = ResidualConvBlock(2 * ngf, ngf)
        self.head = nn.Conv2d(ngf, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.SIZE_MULTIPLE or x.shape[-2] % self.SIZE_MULTIPLE:
            raise ValueError(f"StyleNet needs height and width that are multiples of 8, got {tuple(x.shape[-2:])}")
        x = self.init(self.stem(x))
        d1, s1 = self.down1(x)
        d2, s2 = self.down2(d1)
        d3, s3 = self.down3(d2)
        h = self.up1(self.up2(self.up3(self.bottleneck(d3), s3), s2), s1)
        return torch.sigmoid(self.head(self.fuse(torch.cat([h, x], dim=1))))

    @torch.no_grad()
    def stylize(self, image: torch.Tensor) -> torch.Tensor:
        """Apply to an image of any size: pad to multiples of 8 (at least 16), run, crop back."""
        h, w = image.shape[-2:]
        ph, pw = (max(self.MIN_SIDE, n + -n % self.SIZE_MULTIPLE) - n for n in (h, w))
        mode = "reflect" if ph < h and pw < w else "replicate"  # reflection needs the pad smaller than the image
        padded = F.pad(image, (0, pw, 0, ph), mode=mode) if (ph or pw) else image
        return self(padded)[..., :h, :w]
