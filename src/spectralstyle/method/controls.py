"""The controls of a result, composed in one order: stylised result -> colours -> mask and strength blend.

``apply_controls`` is the step after the contrast of the written image, shared by ``transfer`` (and
``batch``), ``apply`` and ``video``; each input keeps its own size (a mask is resized to it). Outside the
mask, and everywhere at strength 0, the written pixels are the photo's: the blend is
``photo + strength * mask * (result - photo)``.

``loss_view`` is what the loss of ``transfer`` sees instead of the raw StyleNet output: the same
composition without the strength (strength only scales the written blend, and at 0 it would leave
nothing to optimise) and with colour kept only in ``luminance`` mode, which is linear and
differentiable; ``histogram`` matching ranks pixels and acts on the written image only.

All images are [B, 3, H, W] in [0, 1]; masks [1, 1, H, W] in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spectralstyle.media.images import load_image
from spectralstyle.method.colors import keep_photo_chroma, preserve_colors
from spectralstyle.method.masks import MaskSpec, check_not_empty


@dataclass(frozen=True)
class ResultControls:
    """The declared settings ``preserve_color``, ``mask`` (+ ``mask_feather``, ``invert_mask``), ``strength``."""

    preserve_color: str = "off"
    mask: MaskSpec | None = None
    strength: float = 1.0

    @classmethod
    def of(cls, settings: Any) -> "ResultControls":
        """From any settings object that declares these fields (TransferConfig, ApplyControls)."""
        mask = None
        if getattr(settings, "mask", None):
            mask = MaskSpec(Path(settings.mask), settings.mask_feather, settings.invert_mask)
        return cls(settings.preserve_color, mask, settings.strength)

    @property
    def changes_nothing(self) -> bool:
        return self.preserve_color == "off" and self.mask is None and self.strength == 1.0

    def mask_for(self, image: torch.Tensor) -> torch.Tensor | None:
        """The mask at the size of ``image`` [B, C, H, W] on its device, or None without one."""
        if self.mask is None:
            return None
        return self.mask.at(image.shape[-1], image.shape[-2], image.device)

    def check_mask(self, width: int, height: int) -> None:
        """Read the mask at a working size: a missing, unreadable or empty mask fails with one line (before
        any model loads, when a command calls it first)."""
        if self.mask is not None:
            check_not_empty(self.mask.at(width, height), self.mask.path)

    def as_dict(self) -> dict[str, Any]:
        return {"preserve_color": self.preserve_color, "strength": self.strength,
                "mask": None if self.mask is None else {"path": str(self.mask.path), "feather": self.mask.feather,
                                                        "invert": self.mask.invert}}


def blend(result: torch.Tensor, photo: torch.Tensor, strength: float = 1.0,
          mask: torch.Tensor | None = None) -> torch.Tensor:
    """``photo + strength * mask * (result - photo)``: the photo where the mask is 0 or at strength 0."""
    weight = strength if mask is None else strength * mask.to(result)
    if mask is None and strength == 1.0:
        return result
    return photo.to(result) + weight * (result - photo.to(result))


def apply_controls(result: torch.Tensor, photo: torch.Tensor, controls: ResultControls,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """The written image: the finished ``result`` (after contrast) with the photo's colours kept as asked,
    then blended with the photo through the mask (given, else from ``controls`` at the photo's size) and
    the strength."""
    if controls.changes_nothing:
        return result
    photo = photo.to(result)
    colored = preserve_colors(result, photo, controls.preserve_color)
    if mask is None:
        mask = controls.mask_for(photo)
    return blend(colored, photo, controls.strength, mask).clamp(0, 1)


def loss_view(output: torch.Tensor, photo: torch.Tensor, controls: ResultControls,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """What CLIP and VGG see of a StyleNet output during transfer (differentiable): luminance colour
    kept if asked, then the composite through the mask, so the content loss keeps the rest as the photo."""
    view = keep_photo_chroma(output, photo) if controls.preserve_color == "luminance" else output
    return view if mask is None else blend(view, photo, 1.0, mask)


def photo_controls(controls: ResultControls, photo_path: str | Path,
                   working_photo: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``apply_controls`` against the photo at the size of each image it gets: the working-size photo for
    snapshots, the photo read again at the output size for the result (``output_size.result_at_output_size``),
    so that the mask and strength blend the result with the photo at the size it is written at. None when
    the controls change nothing."""
    if controls.changes_nothing:
        return None
    cache: dict[tuple[int, int], torch.Tensor] = {}

    def at_size(image: torch.Tensor) -> torch.Tensor:
        size = (image.shape[-1], image.shape[-2])
        if working_photo is not None and tuple(working_photo.shape[-1:-3:-1]) == size:
            photo = working_photo
        else:
            if size not in cache:
                cache.clear()
                cache[size] = load_image(photo_path, size)
            photo = cache[size]
        return apply_controls(image, photo.to(image.device), controls)

    return at_size
