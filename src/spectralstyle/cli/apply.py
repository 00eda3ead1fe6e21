"""``spectralstyle apply``: a trained StyleNet on images, folders and videos, at any size, in bounded memory."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import ApplyControls
from spectralstyle.cli.common import DeviceOpt, OutOpt, console, resolve_from_flags, user_errors, with_settings


def output_names(images: list[Path], model_stem: str) -> dict[Path, str]:
    """``<image stem>_<model>.png``; images sharing a stem (boat.jpg, boat.webp, a/boat.jpg) get a short
    hash of their path, so no result overwrites another."""
    stems = [path.stem for path in images]
    names = {}
    for path, stem in zip(images, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        names[path] = f"{stem}_{model_stem}.png"
    return names


@user_errors
@stops_at_step_boundary
@with_settings(ApplyControls)
def apply(
    model: Annotated[Path, typer.Argument(help="A StyleNet saved by `transfer --save-model` or `train`.")],
    images: Annotated[list[Path], typer.Argument(help="Images, folders (their images and videos) and videos (-> mp4).")],
    out: OutOpt = Path("outputs"),
    contrast: Annotated[Optional[float], typer.Option(
        "--contrast", help="Contrast factor of the saved image (default: the model's, 1 = unchanged).")] = None,
    device: DeviceOpt = "auto",
    max_side: Annotated[Optional[int], typer.Option("--max-side", help="Downscale images and videos whose longer side exceeds this.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Tile side in pixels for large images (multiple of 8; default: 768 on CPU, from free memory on CUDA).")] = None,
    norm_stats: Annotated[Literal["exact", "sampled", "downscaled"], typer.Option("--norm-stats", help="Whole-image norm statistics of tiled images: exact (streamed, about 10 passes), sampled (a quarter of the tiles) or downscaled (one small pass; approximate).")] = "exact",
    *,
    settings: dict[str, Any],
) -> None:
    """Apply a trained StyleNet to images, folders and videos, at any resolution, in bounded memory.

    Ctrl-C or SIGTERM stops between tiles or frames; nothing half-written is left under a final name.
    """
    from spectralstyle.apply.images import ApplySettings, apply_image, apply_video, expand_inputs, load_stylenet
    from spectralstyle.device import resolve_device
    from spectralstyle.media.files import ensure_writable_dir
    from spectralstyle.interrupts import raise_if_stop_requested
    from spectralstyle.media.video import is_video
    from spectralstyle.method.controls import ResultControls

    dev = resolve_device(device or "auto")
    if contrast is not None and not (math.isfinite(contrast) and contrast > 0):
        raise SpectralStyleError(f"--contrast must be a positive number (0 gives a flat grey picture; 1 = unchanged), "
                                 f"got {contrast}")
    given = settings
    controls = resolve_from_flags(ApplyControls, None, given)  # checked before any model is read
    ResultControls.of(controls).check_mask(64, 64)  # a missing, unreadable or empty mask too
    settings = ApplySettings(contrast or 1.0, dev, max_side, tile, norm_stats)
    settings.check()  # before the model is read
    net, record = load_stylenet(model)
    net = net.to(dev)
    trained = record.get("config", {})
    if contrast is None:  # the contrast the model was trained with
        settings = dataclasses.replace(settings, contrast=trained.get("contrast", 1.5))
    if given.get("preserve_color") is None and trained.get("preserve_color", "off") != "off":
        controls = controls.replace(preserve_color=trained["preserve_color"])  # the model was trained for it
    mix = load_stylenet(Path(controls.mix))[0].to(dev) if controls.mix else None
    settings = dataclasses.replace(settings, controls=ResultControls.of(controls), mix=mix,
                                   mix_weight=controls.mix_weight)
    factor = settings.contrast
    inputs = expand_inputs(images)
    ensure_writable_dir(out)
    stem = model.name.removesuffix(".stylenet.pt")
    if controls.mix:  # a blend of two models is another result than either's
        stem += f"_mix-{Path(controls.mix).name.removesuffix('.stylenet.pt')}-{controls.mix_weight:g}"
    names = output_names(inputs, stem)

    def progress_of(task: Any) -> Any:
        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)
            raise_if_stop_requested()
        return update

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        for path in inputs:
            raise_if_stop_requested()
            metadata = {"applied_model": str(model), "source_image": str(path), "contrast": factor,
                        "trained_with": record, "controls": settings.controls.as_dict(), "mix": controls.mix,
                        "mix_weight": controls.mix_weight}
            if is_video(path):
                target = out / Path(names[path]).with_suffix(".mp4")
                task = progress.add_task(escape(f"{path.name} frames"), total=None)
                result = apply_video(net, path, target, settings, metadata, on_frame=progress_of(task))
                progress.remove_task(task)
                stability = result["temporal_stability"]
                note = f"temporal stability {stability:.3f}" if stability is not None else "still input"
                console.print(f"[green]wrote[/] {escape(str(target))}  [dim]{result['video']['frames']} frames, "
                              f"{note}[/]", highlight=False)
                continue
            target = out / names[path]
            task = progress.add_task(escape(f"{path.name} tiles"), total=None)
            apply_image(net, path, target, settings, metadata, on_tile=progress_of(task))
            progress.remove_task(task)
            console.print(f"[green]wrote[/] {escape(str(target))}", highlight=False)
