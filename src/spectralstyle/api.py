"""The Python API: ``stylize`` one picture, ``StyleModel`` to apply a trained style, in a few lines.

    import spectralstyle
    result = spectralstyle.stylize("photo.jpg", "pop art", steps=100)
    result.image.show()            # a PIL image
    result.save("photo_pop-art.png")   # the image, its settings in the PNG and a .json sidecar beside it

The same settings as the command line (``settings.TransferConfig``: ``band``, ``steps``, ``size``,
``crops``, ``weights``, ``device``, ...) are keyword arguments; ``config="quick"`` reads a preset or YAML
file first. Models are loaded once per process and reused by later calls with the same weights and device.
Nothing here is imported by ``import spectralstyle`` until it is used (``__init__`` imports lazily).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import TransferConfig, resolve_settings

ImageLike = str | Path | Image.Image
_MODELS: dict[tuple[Any, ...], Any] = {}


def _models_for(config: TransferConfig) -> Any:
    """The frozen networks of ``config`` (CLIP, VGG), loaded once per process and reused."""
    from spectralstyle.runs.models import Models

    key = (config.clip_model, config.weights, config.clip_weights, config.vgg_weights, config.device, config.precision)
    if key not in _MODELS:
        _MODELS[key] = Models.load(config)
    return _MODELS[key]


def _paths_as_text(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as the declarations take them: a ``Path`` (``mask=``, ``clip_weights=``) as its text."""
    return {name: str(value) if isinstance(value, Path) else value for name, value in settings.items()}


def _as_rgb_image(image: ImageLike) -> tuple[Image.Image, str]:
    """A PIL RGB image and how the record names it (an absolute path, or ``<PIL image>``)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB"), "<PIL image>"
    from spectralstyle.media.images import open_rgb

    path = Path(image)
    return open_rgb(path), str(path.resolve())


@dataclass
class StyleModel:
    """A trained StyleNet and the record of the run that trained it; ``apply`` stylises any picture.

    ``StyleModel.load("pop-art_c2.stylenet.pt")`` reads files saved by ``transfer --save-model`` and
    ``train`` without running code from them (``weights.safeload``).
    """

    net: Any
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # not the whole network and record
        config = self.record.get("config") or {}
        text, band = self.record.get("text", "?"), self.record.get("band", config.get("band", "?"))
        return f"StyleModel({text!r}, band={band!r}, steps={self.record.get('steps_done', config.get('steps'))})"

    @classmethod
    def load(cls, path: str | Path) -> "StyleModel":
        from spectralstyle.apply.images import load_stylenet

        net, record = load_stylenet(Path(path))
        return cls(net, record)

    def apply(self, image: ImageLike, *, contrast: float | None = None, device: str = "auto",
              tile: int | None = None, norm_stats: str = "exact", mix: "StyleModel | str | Path | None" = None,
              **controls: Any) -> Image.Image:
        """The stylised picture at the input's own size (large pictures in tiles with exact statistics).

        ``contrast`` defaults to the one the model was trained with (1.5 in the reference). ``controls`` are
        those of ``spectralstyle apply`` (``settings.ApplyControls``): ``preserve_color`` ("luminance" or
        "histogram"; by default what the model was trained with), ``mask`` (an image file: white is styled,
        black keeps the photo), ``mask_feather``, ``invert_mask``, ``strength`` (0 = the photo, 1 = the full
        style) and ``mix_weight``, the share of ``mix``, a second model (or its file) to blend with.
        """
        from spectralstyle.apply.images import controlled, mix_images, trained_choices
        from spectralstyle.apply.tiling import stylize_large
        from spectralstyle.device import resolve_device
        from spectralstyle.method.controls import ResultControls
        from spectralstyle.settings import ApplyControls

        trained_contrast, trained_colors = trained_choices(self.record)
        if controls.get("preserve_color") is None:
            controls["preserve_color"] = trained_colors
        other = StyleModel.load(mix) if isinstance(mix, (str, Path)) else mix
        checked = resolve_settings(ApplyControls, None, mix=None if other is None else "<StyleModel>",
                                   **_paths_as_text(controls))
        pil, _ = _as_rgb_image(image)
        if contrast is None:
            contrast = float(trained_contrast)
        dev = resolve_device(device)

        def run(net: Any) -> Image.Image:
            return stylize_large(net.to(dev), pil, contrast, dev, tile=tile, stats=norm_stats).image

        result = run(self.net)
        if other is not None:
            result = mix_images(result, run(other.net), checked.mix_weight)
        return controlled(result, pil, ResultControls.of(checked))

    def save(self, path: str | Path) -> Path:
        """Write the model (``.stylenet.pt``) for ``spectralstyle apply`` or ``StyleModel.load``."""
        from spectralstyle.runs.outputs import save_stylenet

        path = Path(path)
        save_stylenet(self.net, path, self.record)
        return path


@dataclass
class Result:
    """What ``stylize`` returns: ``image`` (PIL), ``record`` (the run record as a dict) and the trained model."""

    image: Image.Image
    record: dict[str, Any]
    model: StyleModel

    def __repr__(self) -> str:  # not the whole record
        width, height = self.image.size
        return f"Result({self.record.get('text')!r}, {width}x{height}, model={self.model!r})"

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the image as PNG (the record in its ``spectralstyle`` text chunk) and ``<path>.json`` beside it.

        An existing file is kept unless ``overwrite=True`` (a one-line SpectralStyleError says so).
        """
        from spectralstyle.media.files import write_json
        from spectralstyle.media.images import save_png

        path = Path(path).with_suffix(".png")
        sidecar = path.with_suffix(".json")
        if not overwrite and (path.exists() or sidecar.exists()):
            raise SpectralStyleError(f"{path} already exists; choose another name or pass overwrite=True")
        record = {**self.record, "output": str(path)}
        save_png(self.image, path, record)
        write_json(record, sidecar)
        return path


def stylize(content: ImageLike, text: str, *, config: str | Path | None = None,
            on_step: Callable[[int, dict[str, float]], None] | None = None, **settings: Any) -> Result:
    """Stylise ``content`` (a path or PIL image) to match ``text``: the same optimisation as ``transfer``.

    ``settings`` are ``TransferConfig`` fields (``steps=100``, ``band="c2"``, ``weights="random"``, ...) and
    ``size="WxH"``; ``on_step(step, losses)`` is called after every step. Writes no file: call
    ``Result.save``. Bad settings raise ``SpectralStyleError`` with one line.
    """
    from spectralstyle.media.images import to_pil
    from spectralstyle.method.controls import ResultControls, apply_controls
    from spectralstyle.method.prompts import prompts_record, style_prompts
    from spectralstyle.record import RunRecord
    from spectralstyle.runs.output_size import result_at_output_size
    from spectralstyle.runs.outputs import environment_info
    from spectralstyle.runs.transfer import optimize

    size = settings.pop("size", None)
    cfg = resolve_settings(TransferConfig, config, size=None if size is None else str(size),
                           **_paths_as_text(settings))
    prompts = style_prompts(text, cfg.avoid_text)  # bad prompts: one line before any model loads
    pil, source = _as_rgb_image(content)
    cfg = cfg.for_content(pil.size)  # size=N: the long side, the picture's aspect ratio (sizes.py)
    tensor = _to_tensor(pil, cfg.size)
    models = _models_for(cfg)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run = optimize(tensor, text, cfg, models, on_step=on_step)
    if run.interrupted:
        raise KeyboardInterrupt
    image = result_at_output_size(run.net, run.output, pil, cfg, models.device)  # output_size: the picture's own
    controls = ResultControls.of(cfg)
    if not controls.changes_nothing:  # colour, mask, strength: against the picture at the output size
        finished = _to_tensor(image, image.size)
        image = to_pil(apply_controls(finished, _to_tensor(pil, image.size), controls))
    record = RunRecord(
        content=source, text=text, band=cfg.band, config=cfg.to_dict(), config_hash=cfg.digest(),
        environment=environment_info(models.device), started=started, status="finished",
        losses=run.history, steps_done=run.steps_done, wall_time_s=round(run.seconds, 3),
        extra={"content_size": list(pil.size), "working_size": list(cfg.size), "output_size": list(image.size),
               "prompts": prompts_record(prompts)},
    ).to_dict()  # the same run record transfer writes
    json.dumps(record, default=str)  # the record is JSON all the way down
    return Result(image, record, StyleModel(run.net.cpu().eval(), {k: v for k, v in record.items() if k != "losses"}))


def _to_tensor(pil: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """[1, 3, H, W] in [0, 1] at the working ``size`` = (width, height), resized bicubically."""
    import torchvision.transforms.functional as TF

    if pil.size != tuple(size):
        pil = pil.resize(tuple(size), Image.BICUBIC)
    return TF.to_tensor(pil).unsqueeze(0)
