"""The result at its output size: a run optimises at the working size, the photo comes back at its own.

Why: the StyleNet trained at the working size (``--size``) is a function of pixels, so it can be applied
to the photo itself instead of to the small working copy: the result keeps the photo's resolution
(``--output-size``, see ``sizes``) instead of being a 512 px thumbnail. Large photos go through the tiled
apply machinery (``apply.tiling.stylize_large``: whole-image norm statistics, bounded memory), which
equals an untiled pass up to float rounding. When the output size is the working size the optimised
output itself is the result, exactly as before (the paper's 512x512, ``--config paper``).

One step between the optimisation and the written file, on its own so that later steps (colour, mask,
strength) compose with it: it takes the run's network and output and gives the finished RGB image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from spectralstyle.apply.tiling import stylize_large
from spectralstyle.media.images import finish_image, open_rgb, to_pil
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.settings import TransferConfig
from spectralstyle.sizes import output_dimensions


def output_size_of(config: TransferConfig, content: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the result of ``config`` (resolved by ``for_content`` or not) for this content size."""
    resolved = config.for_content(content)
    return output_dimensions(resolved.output_size, content, resolved.size)[0]


def result_at_output_size(net: StyleNet, working_output: torch.Tensor, content: str | Path | Image.Image,
                          config: TransferConfig, device: torch.device) -> Image.Image:
    """The finished (clamped, contrast-adjusted) result at the output size of ``config``.

    ``working_output`` is ``net`` applied to the working-size content ([1, 3, h, w] in [0, 1]); it is the
    result when the output size is the working size. Otherwise the photo (``content``: its path or the RGB
    image), resized to the output size if that differs from its own, is stylised by ``net`` (tiled when large).
    """
    photo = content if isinstance(content, Image.Image) else open_rgb(content)
    target = output_size_of(config, photo.size)
    if target == tuple(working_output.shape[-1:-3:-1]):
        return to_pil(finish_image(working_output, config.contrast))
    if photo.size != target:
        photo = photo.resize(target, Image.LANCZOS if target[0] < photo.width else Image.BICUBIC)
    was_training = net.training
    net.eval()
    try:
        return stylize_large(net, photo, config.contrast, device).image
    finally:
        net.train(was_training)
