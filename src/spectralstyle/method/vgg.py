"""VGG19 content features for the content loss, truncated after relu5_2 (nothing later is used)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from spectralstyle.errors import WeightsMissingError
from spectralstyle.seeding import repeatable_init
from spectralstyle.weights.resolve import fetch_model, local_file
from spectralstyle.weights.state_dicts import read_vgg19_state

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONTENT_LAYERS = {22: "relu4_2", 31: "relu5_2"}
"""Index in ``vgg19().features`` -> name. The reference keys them conv4_2/conv5_2 but reads them after
the in-place ReLU, so they are the ReLU outputs (docs/method.md, section 2)."""


class VGGContent(nn.Module):
    """VGG19 ``features[:32]``; returns the relu4_2 and relu5_2 maps of ImageNet-normalised input."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.layers = features[: max(CONTENT_LAYERS) + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Content feature maps of an image in [0, 1]."""
        x = self.normalize(image)
        out = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in CONTENT_LAYERS:
                out.append(x)
        return out


def vgg19_features() -> nn.Sequential:
    """torchvision's VGG19 ``features`` (its 37 layers, nothing of the classifier), initialised as torchvision's
    ``VGG.__init__`` initialises their convolutions. The classifier holds 120M of VGG19's 143M parameters and
    no run reads it: building only these layers saves about 480 MB and 1.5 s per load."""
    features = make_layers(cfgs["E"])
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(module.bias, 0)
    return features


def build_vgg19(weights: str = "pretrained", path: str | None = None) -> nn.Sequential:
    """VGG19's feature layers with pretrained (``path``, or the first place that has it) or random weights."""
    if weights == "random" and path is None:
        with repeatable_init():
            return vgg19_features()
    features = vgg19_features()
    file = local_file(path, "VGG19") if path else fetch_model("vgg19")
    missing, _ = features.load_state_dict(read_vgg19_state(file), strict=False)
    if missing:
        raise WeightsMissingError(f"{file} does not hold VGG19 feature weights (missing features.{missing[0]})")
    return features


def load_vgg_content(
    weights: str = "pretrained", path: str | None = None, device: str | torch.device = "cpu"
) -> VGGContent:
    """The frozen, truncated content network on ``device``."""
    net = VGGContent(build_vgg19(weights, path))
    net.requires_grad_(False)
    return net.eval().to(device)
