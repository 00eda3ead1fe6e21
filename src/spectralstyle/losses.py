"""CLIPstyler's loss as one module: cached text directions and the four weighted terms (docs/method.md, section 2).

total = patch * 9000 + global * 500 + content * 150 + tv * 0.002, where
- patch: per crop, d = normalise(normalise(f(crop)) - source), 1 - cos(d, text direction), entries below
  the threshold set to 0, mean over crops;
- global: the same for the whole output resized to 224, no threshold;
- content: MSE of VGG19 relu4_2 and relu5_2 features of output and content, summed;
- tv: sum of the L2 norms of horizontal, vertical and both diagonal pixel differences.
f is the SpectralCLIP image encoder; source is the unfiltered CLIP embedding of the content image
(the reference's choice; ``source_encoder="filtered"`` embeds it with f instead, see ``clip_model.encode_source``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .clip_model import SpectralCLIP, clip_input, encode_source, encode_templated_text
from .vgg import VGGContent



@dataclass
class LossWeights:
    patch: float = 9000.0
    global_: float = 500.0
    content: float = 150.0
    tv: float = 0.002


@dataclass
class LossTerms:
    """Unweighted terms and the weighted total of one step."""

    total: torch.Tensor
    patch: torch.Tensor
    global_: torch.Tensor
    content: torch.Tensor
    tv: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """All terms as Python floats with one device-to-host copy (one GPU sync per step, not five)."""
        names = [f.name for f in fields(self)]
        values = torch.stack([getattr(self, name).detach().float() for name in names]).tolist()
        return {("global" if name == "global_" else name): value for name, value in zip(names, values)}


def normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Sum of L2 norms of horizontal, vertical and the two diagonal differences."""
    return (
        torch.norm(image[:, :, :, :-1] - image[:, :, :, 1:])
        + torch.norm(image[:, :, :-1, :] - image[:, :, 1:, :])
        + torch.norm(image[:, :, 1:, :-1] - image[:, :, :-1, 1:])
        + torch.norm(image[:, :, :-1, :-1] - image[:, :, 1:, 1:])
    )


def directional_loss(image_features: torch.Tensor, source: torch.Tensor, text_direction: torch.Tensor) -> torch.Tensor:
    """Per-sample 1 - cos(normalise(normalise(image) - source), text direction)."""
    direction = normalize(normalize(image_features) - source)
    return 1 - F.cosine_similarity(direction, text_direction.expand_as(direction), dim=1)


def thresholded_mean(losses: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mean after zeroing entries below ``threshold`` (crops already close to the text direction)."""
    return torch.where(losses < threshold, torch.zeros_like(losses), losses).mean()


def content_loss(output_features: list[torch.Tensor], content_features: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(o, c) for o, c in zip(output_features, content_features))


class CLIPStyleLoss(nn.Module):
    """Owns the encoders, the cached text directions and the content targets of one style transfer."""

    def __init__(
        self,
        encoder: SpectralCLIP,
        vgg: VGGContent,
        weights: LossWeights | None = None,
        threshold: float = 0.7,
        source_text: str = "a Photo",
        source_encoder: str = "plain",
        text_cache: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.vgg = vgg
        self.weights = weights or LossWeights()
        self.threshold = threshold
        self.source_text = source_text
        self.source_encoder = source_encoder
        self._text_cache = text_cache if text_cache is not None else {}
        self.text_direction: torch.Tensor | None = None
        self.source_features: torch.Tensor | None = None
        self.content_features: list[torch.Tensor] | None = None

    def text_features(self, text: str) -> torch.Tensor:
        """Template-averaged text embedding, computed once per text and kept."""
        if text not in self._text_cache:
            self._text_cache[text] = encode_templated_text(self.encoder.clip, text)
        return self._text_cache[text]

    @torch.no_grad()
    def prepare(self, content: torch.Tensor, text: str) -> None:
        """Fix the target text direction and the content image's CLIP and VGG features."""
        self.text_direction = normalize(self.text_features(text) - self.text_features(self.source_text))
        pixels = clip_input(content)
        source = encode_source(self.encoder, pixels, self.source_encoder)
        self.source_features = normalize(source.float())
        self.content_features = [f.detach() for f in self.vgg(content)]

    def forward(self, output: torch.Tensor, crops: torch.Tensor) -> LossTerms:
        """Loss of a StyleNet output [1, 3, H, W] and its augmented crops [n, 3, 224, 224]."""
        if self.text_direction is None:
            raise RuntimeError("call prepare(content, text) before computing the loss")
        views = torch.cat([clip_input(crops), clip_input(output)], dim=0)  # one CLIP pass
        features = self.encoder.encode_image(views).float()
        losses = directional_loss(features, self.source_features, self.text_direction)
        patch = thresholded_mean(losses[:-1], self.threshold)
        global_ = losses[-1:].mean()
        content = content_loss(self.vgg(output), self.content_features)
        tv = tv_loss(output)
        w = self.weights
        total = w.patch * patch + w.global_ * global_ + w.content * content + w.tv * tv
        return LossTerms(total, patch, global_, content, tv)
