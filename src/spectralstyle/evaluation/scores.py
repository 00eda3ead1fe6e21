"""The numbers measured on a result: CLIP agreement with the text (plain score and CLIPstyler's directional
score), and content preservation (SSIM, implemented here in torch, and the VGG19 content distance that the
transfer loss itself minimises); ``ImageMetrics`` holds them for one result.

The CLIP scores use the plain (unfiltered) image encoder, so every band is judged by the same yardstick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from spectralstyle.evaluation.inputs import EvalInput
from spectralstyle.evaluation.ocr import TextSummary
from spectralstyle.method.clip_model import clip_input, encode_templated_text
from spectralstyle.method.losses import content_loss, normalize
from spectralstyle.method.prompts import Prompt
from spectralstyle.method.vgg import VGGContent

SOURCE_TEXT = "a Photo"
"""The directional score's source text (CLIPstyler's)."""

def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def clip_image_features(clip_model: Any, image: torch.Tensor) -> torch.Tensor:
    """Unit-norm unfiltered CLIP embeddings [B, E] of images [B, 3, H, W] in [0, 1]."""
    pixels = clip_input(image.float().to(_device_of(clip_model)))
    return normalize(clip_model.encode_image(pixels).float())


@dataclass
class ClipScorer:
    """CLIP scores of many images against a few texts; each text is embedded once (79 templates).

    ``text_cache`` may be shared with ``transfer.Models.text_cache`` (same CLIP model), so texts
    already embedded for a transfer are not embedded again.
    """

    clip: Any
    source_text: str = SOURCE_TEXT
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return _device_of(self.clip)

    def text(self, text: str) -> torch.Tensor:
        """Unit templated text embedding [1, E]."""
        if text not in self.text_cache:
            self.text_cache[text] = encode_templated_text(self.clip, text)
        return self.text_cache[text].float()

    def score(self, image: torch.Tensor, text: str) -> float:
        """cos(CLIP image embedding, templated text embedding)."""
        return self.weighted_score(image, (Prompt(text),))

    def weighted_score(self, image: torch.Tensor, prompts: Sequence[Prompt]) -> float:
        """Weight-averaged ``score`` over ``prompts`` (all weights must be positive); the image is encoded once."""
        features = clip_image_features(self.clip, image)
        return _weighted_mean([(float((features @ self.text(p.text).T).mean()), p.weight) for p in prompts])

    def directional(self, image: torch.Tensor, content: torch.Tensor, text: str) -> float:
        """cos(normalise(img - content), normalise(text - source text)): did the image move towards the text?"""
        return self.weighted_directional(image, content, (Prompt(text),))

    def weighted_directional(self, image: torch.Tensor, content: torch.Tensor, prompts: Sequence[Prompt]) -> float:
        """Weight-averaged ``directional`` over ``prompts`` (positive weights); NaN when image == content."""
        features = clip_image_features(self.clip, torch.cat([image, resize_like(content, image)]))
        delta = features[:1] - features[1:]
        if float(delta.norm()) < 1e-8:  # the image is the content: no edit, no direction
            return float("nan")
        image_dir = normalize(delta)
        source = self.text(self.source_text)
        return _weighted_mean([(float((image_dir @ normalize(self.text(p.text) - source).T).squeeze()), p.weight)
                               for p in prompts])


def _weighted_mean(values: list[tuple[float, float]]) -> float:
    total = sum(w for _, w in values)
    if not values or total <= 0:
        raise ValueError("a weighted CLIP score needs at least one prompt with a positive weight")
    return sum(v * w for v, w in values) / total


def clip_score(clip_model: Any, image: torch.Tensor, text: str) -> float:
    """Cosine similarity of the unfiltered CLIP image embedding and the templated text embedding."""
    return ClipScorer(clip_model).score(image, text)


def directional_clip_score(clip_model: Any, image: torch.Tensor, content: torch.Tensor, text: str,
                           source_text: str = SOURCE_TEXT) -> float:
    """CLIPstyler's directional similarity of the edit content -> image with the edit source_text -> text."""
    return ClipScorer(clip_model, source_text).directional(image, content, text)


# --- content preservation ---------------------------------------------------------------------------
def resize_like(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if image.shape[-2:] == like.shape[-2:]:
        return image.to(like)
    return F.interpolate(image.to(like), size=like.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian [size]."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) of two images [B, 3, H, W] in [0, data_range], averaged over channels.

    Gaussian window 11 / sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid' filtering; the window shrinks (odd
    size) for images smaller than 11 px. 1 for identical images, lower for any distortion.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim needs images of the same shape, got {list(a.shape)} and {list(b.shape)}")
    size = min(window, *a.shape[-2:])
    size -= 1 - size % 2
    c = a.shape[1]
    g = gaussian_window(size, sigma).to(a.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=c)

    a, b = a.float(), b.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


@torch.no_grad()
def vgg_content_distance(vgg: VGGContent, image: torch.Tensor, content: torch.Tensor) -> float:
    """The transfer's content loss (MSE of VGG19 relu4_2 and relu5_2 features) between image and content."""
    device = next(vgg.parameters()).device
    image = image.float().to(device)
    return float(content_loss(vgg(image), vgg(resize_like(content, image))))


@dataclass
class ImageMetrics:
    """Every measurement of one evaluated result (None when it could not be computed)."""

    item: EvalInput
    text: TextSummary
    clip_score: float
    directional: float | None = None
    ssim: float | None = None
    vgg_distance: float | None = None
    note: str = ""
    temporal_stability: float | None = None
    """Videos only: output flicker / input flicker (1.0 = no added flicker)."""

    def row(self) -> dict[str, Any]:
        """A flat record for CSV files: the measurements, then the result's key settings from its record."""
        settings = self.item.key_settings
        return {
            "image": str(self.item.image), "band": self.item.band, "text": self.item.text,
            "scored_text": self.item.scored_text,
            "content": str(self.item.content) if self.item.content else "", "text_boxes": self.text.count,
            "text_area_fraction": round(self.text.area_fraction, 6), "ocr_strings": " | ".join(self.text.strings),
            "ocr_max_confidence": round(max((b.confidence for b in self.text.boxes), default=0.0), 4),
            "clip_score": round(self.clip_score, 6), "directional_clip": rounded(self.directional),
            "ssim": rounded(self.ssim), "vgg_content_distance": rounded(self.vgg_distance), "note": self.note,
            "temporal_stability": rounded(self.temporal_stability),
            **{name: settings.get(name, "") for name in SETTING_COLUMNS},
        }


SETTING_COLUMNS = ("weights", "steps", "size", "seed", "precision")
"""The result's own settings in metrics.csv (from its record; empty when it has none)."""


def rounded(value: float | None) -> float | str:
    return "" if value is None or math.isnan(value) else round(value, 6)
