"""The frozen networks a run needs, loaded once per process and device: CLIP, VGG19, the spectral
encoders of each band and the text-feature cache, shared by every job of a command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from spectralstyle.device import check_precision, resolve_device
from spectralstyle.method.clip_model import SpectralCLIP, load_clip
from spectralstyle.method.losses import CLIPStyleLoss
from spectralstyle.method.vgg import VGGContent, load_vgg_content
from spectralstyle.settings import TransferConfig, loss_weights
from spectralstyle.weights.resolve import resolve_model_files


@dataclass
class Models:
    """Frozen CLIP and VGG on one device, shared by every job run there, with a text-feature cache."""

    clip: Any
    vgg: VGGContent
    device: torch.device
    weights: str
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)
    encoders: dict[tuple[str, bool], SpectralCLIP] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, config: TransferConfig, on_loading: Callable[[torch.device], None] | None = None) -> "Models":
        """CLIP and VGG19 of ``config`` on its device; ``on_loading(device)`` is told once both are found and
        the precision fits the device, just before the seconds of loading (a status line)."""
        device = resolve_device(config.device)
        check_precision(device, config.precision)
        clip_source = config.clip_weights or config.clip_model
        clip_mode = "pretrained" if config.clip_weights else config.weights
        # both found (or one message listing every missing one) before either is loaded
        clip_file, vgg_file = resolve_model_files(clip_source, clip_mode, config.vgg_weights, config.weights,
                                                  config.clip_model)
        if on_loading is not None:
            on_loading(device)
        clip_model = load_clip(clip_file or clip_source, device=device, weights=clip_mode)
        vgg = load_vgg_content(config.weights, vgg_file or config.vgg_weights, device=device)
        if device.type == "cpu":  # oneDNN convolutions avoid layout reorders: measured 5-20% faster VGG on CPU
            vgg = vgg.to(memory_format=torch.channels_last)
        return cls(clip_model, vgg, device, config.weights)

    def encoder(self, band: str, compiled: bool = False) -> SpectralCLIP:
        """The SpectralCLIP encoder of a band, built once (and compiled once) per Models."""
        key = (band, compiled)
        if key not in self.encoders:
            encoder = SpectralCLIP(self.clip, band)
            if compiled:  # the ViT trunk; the filter and projection are a few small ops
                encoder.tokens = torch.compile(encoder.tokens)  # type: ignore[method-assign]
            self.encoders[key] = encoder
        return self.encoders[key]

    def loss_for(self, config: TransferConfig) -> CLIPStyleLoss:
        loss = CLIPStyleLoss(
            self.encoder(config.band, config.compile),
            self.vgg,
            loss_weights(config),
            threshold=config.threshold,
            source_text=config.source_text,
            source_encoder=config.source_encoder,
            text_cache=self.text_cache,
        )
        return loss.to(self.device)
