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


def batched_tv_loss(images: torch.Tensor) -> torch.Tensor:
    """``tv_loss`` of each image of a batch [B, 3, H, W] on its own: [B]."""

    def norms(diff: torch.Tensor) -> torch.Tensor:
        return diff.flatten(1).norm(dim=1)

    return (
        norms(images[:, :, :, :-1] - images[:, :, :, 1:])
        + norms(images[:, :, :-1, :] - images[:, :, 1:, :])
        + norms(images[:, :, 1:, :-1] - images[:, :, :-1, 1:])
        + norms(images[:, :, :-1, :-1] - images[:, :, 1:, 1:])
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
        self.prepare_text(text)
        self.source_features, self.content_features = self.content_targets(content)

    @torch.no_grad()
    def prepare_text(self, text: str) -> None:
        """Fix the target text direction only (training over many images brings its own content targets)."""
        self.text_direction = normalize(self.text_features(text) - self.text_features(self.source_text))

    @torch.no_grad()
    def content_targets(self, contents: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Source CLIP features [B, D] and VGG content features of a batch of content images [B, 3, H, W]."""
        pixels = clip_input(contents)
        source = encode_source(self.encoder, pixels, self.source_encoder)
        return normalize(source.float()), [f.detach() for f in self.vgg(contents)]

    def batch_terms(self, outputs: torch.Tensor, crops: torch.Tensor, sources: torch.Tensor,
                    content_features: list[torch.Tensor]) -> LossTerms:
        """The mean over images of each image's own ``forward`` loss, computed in one batched pass.

        ``outputs`` [B, 3, H, W] are StyleNet outputs of B content images, ``crops`` [B*n, 3, 224, 224]
        their augmented crops (n per image, image-major), ``sources`` [B, D] and ``content_features``
        (from ``content_targets``) each image's own targets. Every term is averaged over images, so a
        batch of one gives exactly the single-image terms and each image weighs the same.
        """
        if self.text_direction is None:
            raise RuntimeError("call prepare_text(text) before computing the loss")
        batch = outputs.shape[0]
        n = crops.shape[0] // batch
        views = torch.cat([clip_input(crops), clip_input(outputs)], dim=0)  # one CLIP pass
        features = self.encoder.encode_image(views).float()
        per_crop_source = sources.repeat_interleave(n, dim=0)
        crop_losses = directional_loss(features[: batch * n], per_crop_source, self.text_direction).view(batch, n)
        patch = torch.where(crop_losses < self.threshold, torch.zeros_like(crop_losses), crop_losses).mean(dim=1).mean()
        global_ = directional_loss(features[batch * n :], sources, self.text_direction).mean()
        content = sum(F.mse_loss(o, c, reduction="none").flatten(1).mean(dim=1)
                      for o, c in zip(self.vgg(outputs), content_features)).mean()
        tv = batched_tv_loss(outputs).mean()
        w = self.weights
        total = w.patch * patch + w.global_ * global_ + w.content * content + w.tv * tv
        return LossTerms(total, patch, global_, content, tv)

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
