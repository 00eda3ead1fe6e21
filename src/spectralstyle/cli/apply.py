"""``spectralstyle apply``: a trained StyleNet on images, folders and videos, at any size, in bounded memory."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spectralstyle.cli.common import (
    DeviceOpt,
    OutOpt,
    OverwriteFlag,
    console,
    note_new_name,
    print_result_paths,
    user_errors,
)
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stops_at_step_boundary


@user_errors
@stops_at_step_boundary
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
    overwrite: OverwriteFlag = False,
) -> None:
    """Apply a trained StyleNet to images, folders and videos, at any resolution, in bounded memory.

    Ctrl-C or SIGTERM stops between tiles or frames; nothing half-written is left under a final name.
    """
    from spectralstyle.apply.images import (
        APPLIED_KIND,
        ApplySettings,
        apply_digest,
        apply_image,
        apply_video,
        expand_inputs,
        load_stylenet,
        output_names,
    )
    from spectralstyle.device import resolve_device
    from spectralstyle.interrupts import raise_if_stop_requested
    from spectralstyle.media.files import ensure_writable_dir
    from spectralstyle.media.video import is_video
    from spectralstyle.runs.naming import free_stem

    dev = resolve_device(device or "auto")
    if contrast is not None and not (math.isfinite(contrast) and contrast > 0):
        raise SpectralStyleError(f"--contrast must be a positive number (0 gives a flat grey picture; 1 = unchanged), "
                                 f"got {contrast}")
    settings = ApplySettings(contrast or 1.0, dev, max_side, tile, norm_stats)
    settings.check()  # before the model is read
    net, record = load_stylenet(model)
    net = net.to(dev)
    if contrast is None:  # the contrast the model was trained with
        settings = dataclasses.replace(settings, contrast=record.get("config", {}).get("contrast", 1.5))
    factor = settings.contrast
    inputs = expand_inputs(images)
    ensure_writable_dir(out)
    names = output_names(inputs, model.name.removesuffix(".stylenet.pt"))
    config_hash = apply_digest(model, settings)
    trained = {key: record[key] for key in ("text", "band") if isinstance(record.get(key), str)}

    def target_of(path: Path, video: bool) -> Path:
        """The plain name unless another run's result is there (runs.naming), then a note."""
        plain, suffix = names[path], ".mp4" if video else ".png"
        stem = free_stem(out, plain, path, trained.get("text", ""), config_hash, overwrite,
                         kind="video" if video else APPLIED_KIND)
        note_new_name(out, plain, stem, suffix)
        return out / f"{stem}{suffix}"

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
                        "trained_with": record, "kind": APPLIED_KIND, "content": str(path.resolve()),
                        "config_hash": config_hash, **trained}
            if is_video(path):
                target = target_of(path, video=True)
                task = progress.add_task(escape(f"{path.name} frames"), total=None)
                result = apply_video(net, path, target, settings, metadata, on_frame=progress_of(task),
                                     on_note=lambda text: progress.console.print(f"note: {escape(text)}", highlight=False))
                progress.remove_task(task)
                stability = result["temporal_stability"]
                note = f"temporal stability {stability:.3f}" if stability is not None else "still input"
                console.print(f"[green]wrote[/] {escape(str(target))}  [dim]{result['video']['frames']} frames, "
                              f"{note}[/]", highlight=False)
                print_result_paths(target, target.with_suffix(".json"))
                continue
            target = target_of(path, video=False)
            task = progress.add_task(escape(f"{path.name} tiles"), total=None)
            apply_image(net, path, target, settings, metadata, on_tile=progress_of(task))
            progress.remove_task(task)
            console.print(f"[green]wrote[/] {escape(str(target))}", highlight=False)
            print_result_paths(target)
