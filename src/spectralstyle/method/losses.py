"""CLIPstyler's loss as one module: cached text directions and the weighted terms (docs/method.md, section 2).

total = patch * 9000 + global * 500 + content * 150 + tv * 0.002, where
- patch: per crop, d = normalise(normalise(f(crop)) - source), 1 - cos(d, text direction), entries below
  the threshold set to 0, mean over crops;
- global: the same for the whole output resized to 224, no threshold;
- content: MSE of VGG19 relu4_2 and relu5_2 features of output and content, summed;
- tv: sum of the L2 norms of horizontal, vertical and both diagonal pixel differences.
f is the SpectralCLIP image encoder; source is the unfiltered CLIP embedding of the content image
(the reference's choice; ``source_encoder="filtered"`` embeds it with f instead, see ``clip_model.encode_source``).

Several prompts with weights (``"pop art|neon lights:0.5|written text:-1"``, see ``prompts.py``): each
prompt p has its own direction from the source text, and the patch and global terms are the weighted
sums sum_p w_p * term_p of each prompt's term, so one prompt of weight 1 is exactly the reference loss.
A negative weight pushes away from that prompt; the threshold, which stops pulling crops that are close
enough, applies to prompts of positive weight only (for a negative prompt it would stop pushing exactly
the crops that come close to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spectralstyle.method.clip_model import SpectralCLIP, clip_input, encode_source, encode_templated_text
from spectralstyle.method.prompts import Prompt, parse_prompts
from spectralstyle.method.vgg import VGGContent
from spectralstyle.settings import DEFAULT_LOSS_WEIGHTS, LOSS_TERMS


@dataclass
class LossTerms:
    """The weighted total and the unweighted terms (by name, in ``LOSS_TERMS`` order) of one step."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.terms[name]

    def as_floats(self) -> dict[str, float]:
        """The total and every term as Python floats with one device-to-host copy (one GPU sync per step)."""
        names = ["total", *self.terms]
        values = torch.stack([self.total.detach().float(), *(t.detach().float() for t in self.terms.values())]).tolist()
        return dict(zip(names, values))


@dataclass
class StepViews:
    """What the terms of one step read, computed once: B outputs, their per-crop and whole-image
    directional losses from ONE CLIP pass, and each image's content targets."""

    outputs: torch.Tensor
    crop_losses: torch.Tensor
    """[B, n, P]: 1 - cos of each crop's direction with each prompt's text direction."""
    global_losses: torch.Tensor
    """[B, P]: the same for each whole output resized to 224."""
    content_features: list[torch.Tensor]


def normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Sum of L2 norms of horizontal, vertical and the two diagonal differences of one image [1, 3, H, W]."""
    return batched_tv_loss(image).sum()


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


def thresholded_mean(losses: torch.Tensor, threshold: float, dim: int | None = None) -> torch.Tensor:
    """Mean (over ``dim``, else all) after zeroing entries below ``threshold`` (crops already close to the
    text direction)."""
    kept = torch.where(losses < threshold, torch.zeros_like(losses), losses)
    return kept.mean() if dim is None else kept.mean(dim=dim)


def content_loss(output_features: list[torch.Tensor], content_features: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(o, c) for o, c in zip(output_features, content_features))


class CLIPStyleLoss(nn.Module):
    """Owns the encoders, the cached text directions and the content targets of one style transfer.

    A loss term is one method ``<name>_term(step)``, one weight (the setting ``lambda_<name>``) and one
    line (``<name>`` in ``settings.LOSS_TERMS``); tests/test_losses.py checks the three agree.
    """

    def __init__(
        self,
        encoder: SpectralCLIP,
        vgg: VGGContent,
        weights: dict[str, float] | None = None,
        threshold: float = 0.7,
        source_text: str = "a Photo",
        source_encoder: str = "plain",
        text_cache: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.vgg = vgg
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **(weights or {})}
        """Weight of each term of ``LOSS_TERMS`` (the settings' ``lambda_<name>``)."""
        self.threshold = threshold
        self.source_text = source_text
        self.source_encoder = source_encoder
        self._text_cache = text_cache if text_cache is not None else {}
        self.prompts: list[Prompt] = []
        self.text_directions: torch.Tensor | None = None
        """[P, D]: each prompt's unit direction from the source text."""
        self.source_features: torch.Tensor | None = None
        self.content_features: list[torch.Tensor] | None = None

    def text_features(self, text: str) -> torch.Tensor:
        """Template-averaged text embedding, computed once per text and kept."""
        if text not in self._text_cache:
            self._text_cache[text] = encode_templated_text(self.encoder.clip, text)
        return self._text_cache[text]

    @torch.no_grad()
    def prepare(self, content: torch.Tensor, text: str | list[Prompt]) -> None:
        """Fix the target text directions and the content image's CLIP and VGG features."""
        self.prepare_text(text)
        self.source_features, self.content_features = self.content_targets(content)

    @torch.no_grad()
    def prepare_text(self, text: str | list[Prompt]) -> None:
        """Fix the text directions only (training over many images brings its own content targets).

        ``text`` is a prompt spec (``"a|b:0.5|c:-1"``) or prompts (``prompts.style_prompts``).
        """
        self.prompts = parse_prompts(text) if isinstance(text, str) else list(text)
        source = self.text_features(self.source_text)
        self.text_directions = torch.cat([normalize(self.text_features(p.text) - source) for p in self.prompts])

    @property
    def text_direction(self) -> torch.Tensor:
        """[1, D]: the direction of the first prompt (the only one of a plain text)."""
        if self.text_directions is None:
            raise RuntimeError("call prepare(content, text) or prepare_text(text) before computing the loss")
        return self.text_directions[:1]

    @torch.no_grad()
    def content_targets(self, contents: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Source CLIP features [B, D] and VGG content features of a batch of content images [B, 3, H, W]."""
        pixels = clip_input(contents)
        source = encode_source(self.encoder, pixels, self.source_encoder)
        return normalize(source.float()), [f.detach() for f in self.vgg(contents)]

    def views(self, outputs: torch.Tensor, crops: torch.Tensor, sources: torch.Tensor,
              content_features: list[torch.Tensor]) -> StepViews:
        """One CLIP pass over all crops and whole outputs; ``crops`` [B*n, 3, 224, 224] are image-major."""
        if self.text_directions is None:
            raise RuntimeError("call prepare(content, text) or prepare_text(text) before computing the loss")
        batch = outputs.shape[0]
        n = crops.shape[0] // batch
        features = self.encoder.encode_image(torch.cat([clip_input(crops), clip_input(outputs)], dim=0)).float()
        crop_sources = sources.repeat_interleave(n, dim=0)
        crop_losses = torch.stack([directional_loss(features[: batch * n], crop_sources, direction[None])
                                   for direction in self.text_directions], dim=-1)
        global_losses = torch.stack([directional_loss(features[batch * n:], sources, direction[None])
                                     for direction in self.text_directions], dim=-1)
        return StepViews(outputs, crop_losses.view(batch, n, -1), global_losses, content_features)

    # --- the terms: one method each, named in settings.LOSS_TERMS, weighted by the setting lambda_<name> ---------
    def patch_term(self, step: StepViews) -> torch.Tensor:
        """Per prompt, crops already closer to its direction than the threshold count as 0 (positive weights
        only); mean per image, weighted sum over the prompts."""
        total = 0
        for k, prompt in enumerate(self.prompts):
            losses = step.crop_losses[..., k]
            per_image = thresholded_mean(losses, self.threshold, dim=1) if prompt.weight > 0 else losses.mean(dim=1)
            total = total + prompt.weight * per_image.mean()
        return total  # type: ignore[return-value]

    def global_term(self, step: StepViews) -> torch.Tensor:
        return sum(prompt.weight * step.global_losses[:, k].mean() for k, prompt in enumerate(self.prompts))

    def content_term(self, step: StepViews) -> torch.Tensor:
        """MSE of VGG relu4_2 and relu5_2 features, summed over the layers, per image."""
        return sum(F.mse_loss(o, c, reduction="none").flatten(1).mean(dim=1)
                   for o, c in zip(self.vgg(step.outputs), step.content_features)).mean()

    def tv_term(self, step: StepViews) -> torch.Tensor:
        return batched_tv_loss(step.outputs).mean()

    def batch_terms(self, outputs: torch.Tensor, crops: torch.Tensor, sources: torch.Tensor,
                    content_features: list[torch.Tensor]) -> LossTerms:
        """The mean over images of each image's own loss, computed in one batched pass.

        ``outputs`` [B, 3, H, W] are StyleNet outputs of B content images, ``crops`` [B*n, 3, 224, 224]
        their augmented crops (n per image, image-major), ``sources`` [B, D] and ``content_features``
        (from ``content_targets``) each image's own targets. Every term is averaged over images, so a
        batch of one is exactly the single-image loss and each image weighs the same.
        """
        step = self.views(outputs, crops, sources, content_features)
        terms = {name: getattr(self, f"{name}_term")(step) for name in self.active_terms}
        total = sum((self.weights[name] * value for name, value in terms.items()), outputs.new_zeros(()).float())
        return LossTerms(total, terms)

    @property
    def active_terms(self) -> tuple[str, ...]:
        """The terms of non-zero weight: a term of weight 0 is not computed (``lambda_content 0`` skips the VGG
        pass over the outputs), and is absent from the step's record."""
        return tuple(name for name in LOSS_TERMS if self.weights[name] != 0)

    def forward(self, output: torch.Tensor, crops: torch.Tensor) -> LossTerms:
        """Loss of a StyleNet output [1, 3, H, W] and its augmented crops [n, 3, 224, 224]."""
        if self.source_features is None or self.content_features is None:
            raise RuntimeError("call prepare(content, text) before computing the loss")
        return self.batch_terms(output, crops, self.source_features, self.content_features)
