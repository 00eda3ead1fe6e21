"""What `spectralstyle apply` does with a saved StyleNet: images (tiled when large), folders and videos.

Kept out of cli.py so that `video` (which trains, then applies) and tests can call the same code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from spectralstyle.apply.frames import stylize_video
from spectralstyle.apply.tiling import stylize_large
from spectralstyle.device import is_out_of_memory
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import check_exists, write_json
from spectralstyle.media.images import IMAGE_SUFFIXES, finish_image, open_rgb, save_png, to_pil
from spectralstyle.media.video import VIDEO_SUFFIXES
from spectralstyle.method.controls import ResultControls, apply_controls, blend
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.record import RunRecord
from spectralstyle.weights.safeload import read_weights

ProgressFn = Callable[[int, int], None]


def load_stylenet(path: Path) -> tuple[StyleNet, dict[str, Any]]:
    """A StyleNet saved by ``transfer --save-model`` (or ``train``) and the record that trained it.

    Read through ``safeload``: a model file from someone else cannot run code.
    """
    check_exists(path, "model file", "file")
    saved = read_weights(path, "StyleNet saved by spectralstyle")  # runs no code from the file
    try:
        net = StyleNet(ngf=saved["ngf"])
        net.load_state_dict(saved["state_dict"])
    except Exception as exc:
        raise SpectralStyleError(
            f"{path} is not a StyleNet saved by spectralstyle ({exc.__class__.__name__})"
        ) from None
    return net.eval(), json.loads(saved.get("record_json", "{}"))


def trained_choices(record: dict[str, Any]) -> tuple[Any, str]:
    """What applying a model does where the user says nothing: the contrast (1.5 in the reference) and the
    colour mode it was trained with (a model trained with --preserve-color learned its style for them)."""
    config = record.get("config") or {}
    return config.get("contrast", 1.5), config.get("preserve_color", "off")


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the images and videos directly in them (sorted, hidden files skipped)."""
    found: list[Path] = []
    for path in paths:
        check_exists(path, "input")
        if path.is_dir():
            media = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not media:
                raise SpectralStyleError(f"folder {path} holds no images or videos")
            found.extend(media)
        else:
            found.append(path)
    return found


@dataclass
class ApplySettings:
    """How a model is applied here: the options (checked where they are declared, ``settings.ApplyConfig``)
    with the contrast resolved (the model's, unless given) and the device chosen."""

    contrast: float
    device: torch.device
    max_side: int | None = None
    tile: int | None = None
    stats: str = "exact"
    controls: ResultControls = field(default_factory=ResultControls)
    """Colours, mask and strength of each result (``method.controls``)."""
    mix: StyleNet | None = None
    """A second model; the result is ``(1 - mix_weight) * model + mix_weight * mix`` before the controls."""
    mix_weight: float = 0.5
    mix_path: Path | None = None
    """The file of ``mix`` (part of the result's hash, ``apply_digest``)."""


APPLIED_KIND = "applied"
"""The ``kind`` of an image written by ``apply`` (``runs.naming``: a transfer's result is never one of them)."""
APPLIED_SUFFIX = "_applied"
"""Ends every name ``apply`` writes (``<image>_<model>_applied.png``): no other command's name ends so."""


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def apply_digest(model: Path, settings: ApplySettings) -> str:
    """Short hash of what makes an ``apply`` result: the model file's bytes and the settings that change pixels."""
    key: dict[str, Any] = {"model": _file_digest(model), "contrast": settings.contrast,
                           "max_side": settings.max_side, "stats": settings.stats}
    if not settings.controls.changes_nothing:  # neutral controls leave the hash as it was before they existed
        key["controls"] = settings.controls.as_dict()
    if settings.mix is not None:
        key["mix"] = _file_digest(settings.mix_path) if settings.mix_path is not None else "given"
        key["mix_weight"] = settings.mix_weight
    return "apply-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def output_names(images: list[Path], model_stem: str) -> dict[Path, str]:
    """``<image stem>_<model>_applied`` for each input; images sharing a stem (boat.jpg, boat.webp, a/boat.jpg)
    get a short hash of their path, so no result of one call overwrites another."""
    stems = [path.stem for path in images]
    names = {}
    for path, stem in zip(images, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        names[path] = f"{stem}_{model_stem}{APPLIED_SUFFIX}"
    return names


def out_of_memory_error(settings: ApplySettings, what: Path, size: tuple[int, int] | None = None) -> SpectralStyleError:
    """One line naming the options that help here: --tile, and --max-side with a value (half the longer side)."""
    tile = f"--tile (now {settings.tile})" if settings.tile else "--tile (for example 512)"
    side = f"--max-side {max(8, max(size) // 2)}" if size else "--max-side"
    at = f" at {size[0]}x{size[1]}" if size else ""
    return SpectralStyleError(f"out of memory applying the model to {what}{at}: use a smaller {tile} or {side} "
                              "(or smaller) to scale it down")


def apply_image(net: StyleNet, path: Path, target: Path, settings: ApplySettings, metadata: dict[str, Any],
                on_tile: ProgressFn | None = None) -> dict[str, Any]:
    """Stylise one image at its own size (or ``max_side``) in tiles when large; write ``target`` (PNG)."""
    size = None
    try:
        img = open_rgb(path)
        size = img.size
        if settings.max_side and max(img.size) > settings.max_side:
            img.thumbnail((settings.max_side, settings.max_side))
        result = stylize_large(net, img, settings.contrast, settings.device, tile=settings.tile,
                               stats=settings.stats, on_tile=on_tile)
        image = result.image
        if settings.mix is not None:
            other = stylize_large(settings.mix, img, settings.contrast, settings.device, tile=settings.tile,
                                  stats=settings.stats, on_tile=on_tile)
            image = mix_images(image, other.image, settings.mix_weight)
        image = controlled(image, img, settings.controls)
        del img
        info = {"tiles": result.tiles, "norm_stats": result.stats}
        save_png(image, target, {**metadata, **info})
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise out_of_memory_error(settings, path, size) from None
    return info


def mix_images(first: Image.Image, second: Image.Image, weight: float) -> Image.Image:
    """``(1 - weight) * first + weight * second`` of two results of one photo (CLIPstyler's style interpolation)."""
    a, b = TF.to_tensor(first).unsqueeze(0), TF.to_tensor(second).unsqueeze(0)
    return to_pil(blend(b, a, weight))


def controlled(result: Image.Image, photo: Image.Image, controls: ResultControls) -> Image.Image:
    """The result with the colour, mask and strength controls applied against ``photo`` (same size)."""
    if controls.changes_nothing:
        return result
    return to_pil(apply_controls(TF.to_tensor(result).unsqueeze(0), TF.to_tensor(photo).unsqueeze(0), controls))


def apply_video(net: StyleNet, path: Path, target: Path, settings: ApplySettings, metadata: dict[str, Any],
                on_frame: ProgressFn | None = None, on_note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Stylise every frame of a video (each frame as one image) into ``target`` (mp4) plus ``target``.json;
    ``on_note`` hears of every input stream that could not be kept (also listed in the sidecar)."""
    device = settings.device
    masks: dict[tuple[int, ...], torch.Tensor | None] = {}  # one mask for all frames, resized once

    def frame_fn(frame: torch.Tensor) -> torch.Tensor:
        frame = frame.to(device)
        with torch.no_grad():
            styled = finish_image(net.stylize(frame), settings.contrast)
            if settings.mix is not None:
                mixed = finish_image(settings.mix.stylize(frame), settings.contrast)
                styled = blend(mixed, styled, settings.mix_weight)
        if tuple(frame.shape) not in masks:
            masks[tuple(frame.shape)] = settings.controls.mask_for(frame)
        return apply_controls(styled, frame, settings.controls, masks[tuple(frame.shape)]).cpu()

    try:
        result = stylize_video(path, target, frame_fn, max_side=settings.max_side, on_frame=on_frame, on_note=on_note)
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise SpectralStyleError(f"out of memory applying the model to {path}: use a smaller --max-side") from None
    trained = metadata.get("trained_with") or {}
    # text, band and source at the top level, as in transfer sidecars: evaluate reads them from there
    named = {key: trained[key] for key in ("text", "band") if isinstance(trained.get(key), str)}
    record = RunRecord.from_dict({**metadata, **named, "kind": "video", "content": str(path.resolve()),
                                  "output": str(target), "video": result.as_dict(),
                                  "temporal_stability": result.temporal_stability})
    write_json(record.to_dict(), target.with_suffix(".json"))
    return record.to_dict()
