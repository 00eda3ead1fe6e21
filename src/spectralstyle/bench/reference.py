"""The reference computation pattern of one CLIPstyler + SpectralCLIP step, written out literally.

This is the yardstick of ``spectralstyle bench`` and of the equivalence test of the fast pipeline.
It repeats what docs/method.md and the original code do, including their costs, on purpose:

- 64 (``config.crops``) crops augmented one at a time in a Python loop (``augment.apply_per_crop``);
- the spectral filter as DCT -> mask -> IDCT of the whole [B, 50, 768] token sequence at every call,
  with an FFT-based unnormalised DCT-II (Makhoul's algorithm, as torch-dct's ``norm=None``);
- CLIP with ``requires_grad=True`` on its weights (``clip.load`` does not freeze them), so every
  backward pass also computes (and accumulates) CLIP weight gradients;
- separate CLIP forward passes for the crops and for the whole image, each resized with
  ``F.interpolate(bicubic)`` to 224 even when already 224;
- all 37 layers of torchvision's ``vgg19().features``, reading layers 21 and 31 as ``get_features``
  does (the in-place ReLU after layer 21 turns the stored conv4_2 into relu4_2);
- no compilation; CLIP in the precision the original runs it in on the device (``REFERENCE_DTYPES``:
  ``clip.load`` keeps CLIP's fp16 weights on CUDA and converts them to fp32 on CPU, and ``encode_image``
  casts its input to ``clip_model.dtype``), StyleNet and VGG in fp32. ``bench --reference-precision``
  chooses another; the DCT filter is computed in fp32 and cast back (cuFFT has no fp16 FFT of 50 tokens).

It shares with the fast pipeline only StyleNet, the crop parameter sampling (so both can use the
same crops) and the unfiltered building blocks (model construction, templated text features).
One deliberate difference from the original script: the learning-rate scheduler steps after the
optimiser (the standard order, as ``transfer.optimize``); the original calls it first, which shifts
the schedule by one step but does not change what a step computes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spectralstyle.device import resolve_device
from spectralstyle.method.augment import PatchAugmenter, apply_per_crop
from spectralstyle.method.clip_model import CLIP_MEAN, CLIP_STD, encode_templated_text, load_clip
from spectralstyle.method.spectral import parse_bands
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.method.vgg import IMAGENET_MEAN, IMAGENET_STD, build_vgg19
from spectralstyle.settings import TransferConfig

REFERENCE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
"""Reference precision -> CLIP's weight dtype in the reference pattern (StyleNet and VGG stay fp32)."""

VGG_LAYERS = {"21": "conv4_2", "31": "conv5_2"}
"""The layers the original ``get_features`` keeps for the content loss (its names, ReLU outputs)."""


# --- DCT-II and its inverse via the FFT (Makhoul 1980), unnormalised like torch-dct's norm=None ---------
def _twiddle(n: int, like: torch.Tensor) -> torch.Tensor:
    """exp(-i pi k / 2n) for k = 0..n-1."""
    k = torch.arange(n, dtype=like.dtype, device=like.device)
    return torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))


def dct(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised DCT-II over the last axis: X_k = 2 sum_n x_n cos(pi k (2n + 1) / 2N).

    Makhoul: reorder to v = (x_0, x_2, x_4, ..., x_5, x_3, x_1), then X_k = 2 Re(exp(-i pi k / 2N) FFT(v)_k).
    """
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    return 2 * (torch.fft.fft(v, dim=-1) * _twiddle(n, x)).real


def idct(spectrum: torch.Tensor) -> torch.Tensor:
    """Exact inverse of ``dct``: idct(dct(x)) == x.

    Rebuild FFT(v)_k = exp(i pi k / 2N) (X_k - i X_{N-k}) / 2 (with X_N = 0), inverse real FFT, undo the
    even/odd reordering.
    """
    n = spectrum.shape[-1]
    mirrored = torch.cat([torch.zeros_like(spectrum[..., :1]), spectrum[..., 1:].flip(-1)], dim=-1)
    v_hat = torch.complex(spectrum, -mirrored) / 2 * _twiddle(n, spectrum).conj()
    v = torch.fft.irfft(v_hat[..., : n // 2 + 1], n=n, dim=-1)
    x = torch.empty_like(v)
    x[..., ::2] = v[..., : n - n // 2]
    x[..., 1::2] = v.flip(-1)[..., : n // 2]
    return x


# --- the reference encoders ---------------------------------------------------------------------------
def clip_normalize(image: torch.Tensor) -> torch.Tensor:
    """The original ``clip_normalize``: bicubic resize to 224 (always), then CLIP mean/std."""
    image = F.interpolate(image, size=224, mode="bicubic")
    mean = torch.tensor(CLIP_MEAN, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=image.device).view(1, 3, 1, 1)
    return (image - mean) / std


def img_normalize(image: torch.Tensor) -> torch.Tensor:
    """The original ``img_normalize`` (ImageNet statistics) before VGG."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(1, 3, 1, 1)
    return (image - mean) / std


def spectral_encode_image(clip_model: Any, image: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """CLIP's VisionTransformer forward with DCT -> mask -> IDCT of the full token sequence before ln_post.

    ``keep`` None means plain CLIP (``clip_model.encode_image``), the reference baseline.
    """
    if keep is None:
        return clip_model.encode_image(image)
    v = clip_model.visual
    x = v.conv1(image.type(v.conv1.weight.dtype))  # as clip's encode_image: the input in CLIP's dtype
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    zeros = torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
    x = torch.cat([v.class_embedding.to(x.dtype) + zeros, x], dim=1)
    x = v.ln_pre(x + v.positional_embedding.to(x.dtype))
    x = v.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # [B, N, D]
    spectrum = dct(x.transpose(1, 2).float())  # along the token axis, for every channel (in fp32)
    x = idct(spectrum * keep.to(spectrum.dtype)).transpose(1, 2).to(v.conv1.weight.dtype)
    x = v.ln_post(x[:, 0, :])
    return x @ v.proj if v.proj is not None else x


def convert_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """clip's ``convert_weights`` for any dtype: what ``clip.load`` does on CUDA (with fp16). Conv, Linear and
    attention weights and the projections change dtype; LayerNorms stay fp32 (clip's LayerNorm computes in
    fp32 and casts back) as do the class and positional embeddings (cast where they are added)."""
    def convert(layer: nn.Module) -> None:
        tensors = []
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            tensors += [layer.weight, layer.bias]
        if isinstance(layer, nn.MultiheadAttention):
            tensors += [getattr(layer, f"{s}_proj_weight") for s in ("in", "q", "k", "v")]
            tensors += [layer.in_proj_bias, layer.bias_k, layer.bias_v]
        tensors += [getattr(layer, name, None) for name in ("text_projection", "proj")]
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                tensor.data = tensor.data.to(dtype)

    model.apply(convert)


def get_features(image: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
    """The original ``get_features``: run every layer, keep the named ones (after in-place ReLUs)."""
    features = {}
    x = image
    for name, layer in model._modules.items():
        x = layer(x)
        if name in VGG_LAYERS:
            features[VGG_LAYERS[name]] = x
    return features


def get_image_prior_losses(image: torch.Tensor) -> torch.Tensor:
    """The original TV prior: L2 norms of the four neighbour differences."""
    diff1 = image[:, :, :, :-1] - image[:, :, :, 1:]
    diff2 = image[:, :, :-1, :] - image[:, :, 1:, :]
    diff3 = image[:, :, 1:, :-1] - image[:, :, :-1, 1:]
    diff4 = image[:, :, :-1, :-1] - image[:, :, 1:, 1:]
    return torch.norm(diff1) + torch.norm(diff2) + torch.norm(diff3) + torch.norm(diff4)


@dataclass
class ReferenceModels:
    """Trainable-weight CLIP (as ``clip.load`` returns it) and frozen full VGG19 features."""

    clip: Any
    vgg: nn.Sequential
    device: torch.device
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def text_features(self, text: str) -> torch.Tensor:
        """Template-averaged text features, computed once per text (set-up, not part of a step)."""
        if text not in self.text_cache:
            self.text_cache[text] = encode_templated_text(self.clip, text)
        return self.text_cache[text].to(self.clip.visual.conv1.weight.dtype)  # the original's are in CLIP's dtype

    @classmethod
    def load(cls, config: TransferConfig) -> "ReferenceModels":
        device = resolve_device(config.device)
        clip_source = config.clip_weights or config.clip_model
        clip_mode = "pretrained" if config.clip_weights else config.weights
        clip_model = load_clip(clip_source, device=device, weights=clip_mode)
        clip_model.requires_grad_(True)  # the original never freezes CLIP
        convert_weights(clip_model, REFERENCE_DTYPES[config.precision])  # the bench sets the reference precision
        vgg = build_vgg19(config.weights, config.vgg_weights).to(device)
        for parameter in vgg.parameters():
            parameter.requires_grad_(False)
        return cls(clip_model, vgg, device)


@dataclass
class ReferenceResult:
    net: StyleNet
    history: list[dict[str, float]]
    seconds: float


def optimize_reference(
    content: torch.Tensor,
    text: str,
    config: TransferConfig,
    models: ReferenceModels,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> ReferenceResult:
    """The original training loop for ``config.steps`` steps, with the fast pipeline's seeds and crops.

    Same seed handling as ``transfer.optimize`` (so the StyleNet starts identical) and the crop
    parameters drawn from the same ``PatchAugmenter`` generator sequence; per-step records have the
    same keys (step, lr, total, patch, global, content, tv).
    """
    device = models.device
    clip_model, vgg = models.clip, models.vgg
    torch.manual_seed(config.seed)
    content_image = content.to(device)
    keep = None if bool(parse_bands(config.band).all()) else parse_bands(config.band).to(device)

    with torch.no_grad():
        text_features = models.text_features(text)
        text_source = models.text_features(config.source_text)
        if config.source_encoder == "filtered":
            source_features = spectral_encode_image(clip_model, clip_normalize(content_image), keep)
        else:  # the original: the unfiltered encoder
            source_features = clip_model.encode_image(clip_normalize(content_image))
        source_features /= source_features.clone().norm(dim=-1, keepdim=True)
    content_features = get_features(img_normalize(content_image), vgg)

    style_net = StyleNet().to(device)
    cropper = PatchAugmenter(config.crops, config.crop_size, config.distortion, seed=config.seed)
    optimizer = torch.optim.Adam(style_net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        target = style_net(content_image).to(device)
        target.requires_grad_(True)

        target_features = get_features(img_normalize(target), vgg)
        content_loss = 0
        content_loss += torch.mean((target_features["conv4_2"] - content_features["conv4_2"]) ** 2)
        content_loss += torch.mean((target_features["conv5_2"] - content_features["conv5_2"]) ** 2)

        params = cropper.sample(*target.shape[-2:])
        img_aug = apply_per_crop(target, params)  # one crop, perspective and resize call per crop
        image_features = spectral_encode_image(clip_model, clip_normalize(img_aug), keep)
        image_features /= image_features.clone().norm(dim=-1, keepdim=True)
        img_direction = image_features - source_features
        img_direction /= img_direction.clone().norm(dim=-1, keepdim=True)
        text_direction = (text_features - text_source).repeat(image_features.size(0), 1)
        text_direction /= text_direction.norm(dim=-1, keepdim=True)
        loss_temp = 1 - torch.cosine_similarity(img_direction, text_direction, dim=1)
        loss_temp[loss_temp < config.threshold] = 0
        loss_patch = loss_temp.mean()

        glob_features = spectral_encode_image(clip_model, clip_normalize(target), keep)
        glob_features /= glob_features.clone().norm(dim=-1, keepdim=True)
        glob_direction = glob_features - source_features
        glob_direction /= glob_direction.clone().norm(dim=-1, keepdim=True)
        loss_glob = (1 - torch.cosine_similarity(glob_direction, text_direction, dim=1)).mean()

        tv = get_image_prior_losses(target)
        total_loss = (config.lambda_patch * loss_patch + config.lambda_content * content_loss
                      + config.lambda_tv * tv + config.lambda_global * loss_glob)
        optimizer.zero_grad()
        total_loss.backward()
        optimizer.step()
        record = {"step": step, "lr": optimizer.param_groups[0]["lr"], "total": total_loss.item(),
                  "patch": loss_patch.item(), "global": loss_glob.item(), "content": content_loss.item(),
                  "tv": tv.item()}
        scheduler.step()
        history.append(record)
        if on_step:
            on_step(step, record)
    return ReferenceResult(style_net, history, time.perf_counter() - start)
