"""Image generators for text-to-image: learnable parameters in, one image [1, 3, H, W] in [0, 1] out.

- ``FourierGenerator``: weight-free. The image is the inverse FFT of a learnable spectrum scaled by
  1/f (so all frequencies learn at a similar rate), in a decorrelated colour space mapped back with
  the square root of ImageNet's colour covariance, then a sigmoid (Lucid's ``fft_image`` and
  ``to_valid_rgb``; Olah et al., "Feature Visualization", Distill 2017).
- ``VQGANGenerator`` (in ``method/vqgan.py``): a frozen VQGAN decoder whose latent is optimised.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn

# Square root of ImageNet's colour covariance (from its SVD), as published with Lucid.
COLOR_CORRELATION_SVD_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


class Generator(nn.Module, ABC):
    """Produces the image being optimised; only its learnable parameters change during a run."""

    @abstractmethod
    def forward(self) -> torch.Tensor:
        """The current image [1, 3, H, W] with values in [0, 1]."""

    def after_step(self) -> None:
        """Called after each optimiser step (for example to keep a latent in range)."""


# --- Fourier parameterisation -------------------------------------------------------------------


def color_matrix() -> torch.Tensor:
    """Lucid's decorrelation matrix: the covariance square root scaled so its largest column norm is 1."""
    m = torch.tensor(COLOR_CORRELATION_SVD_SQRT, dtype=torch.float64)
    return (m / m.norm(dim=0).max()).float()


def spectrum_scale(height: int, width: int, decay_power: float) -> torch.Tensor:
    """Per-frequency factor sqrt(HW) / max(f, 1/max(H, W))^decay of the rfft2 grid [H, W//2+1]."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    freqs = (fy**2 + fx**2).sqrt()
    return freqs.clamp(min=1.0 / max(height, width)).pow(-decay_power) * math.sqrt(height * width)


class FourierGenerator(Generator):
    """Image = sigmoid(colour_matrix @ irfft2(scale * spectrum) / 4): no pretrained weights needed."""

    OUTPUT_DIVISOR = 4.0  # Lucid's constant: keeps the initial pre-sigmoid values small

    def __init__(self, width: int, height: int, decay_power: float = 1.0, std: float = 0.01) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.register_buffer("scale", spectrum_scale(height, width, decay_power), persistent=False)
        self.register_buffer("color", color_matrix(), persistent=False)
        self.spectrum = nn.Parameter(torch.randn(1, 3, height, width // 2 + 1, 2) * std)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.height, self.width)) / self.OUTPUT_DIVISOR
        rgb = torch.einsum("ij,bjhw->bihw", self.color, decorrelated)
        return torch.sigmoid(rgb)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        """Set the spectrum so that ``forward()`` returns ``image`` [1, 3, H, W] (up to the [0, 1] clamp)."""
        target = image.to(self.spectrum.device, torch.float32).clamp(1e-3, 1 - 1e-3)
        logits = torch.logit(target)
        decorrelated = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.color), logits) * self.OUTPUT_DIVISOR
        spectrum = torch.fft.rfft2(decorrelated, s=(self.height, self.width)) / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum))
