"""``spectralstyle apply``: a trained StyleNet on images, folders and videos, at any size, in bounded memory."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spectralstyle.cli.common import JsonFlag, OutOpt, console, print_results, resolve_from_flags, with_settings
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import ApplyConfig


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


@stops_at_step_boundary
@with_settings(ApplyConfig)
def apply(
    model: Annotated[Path, typer.Argument(help="A StyleNet saved by `transfer --save-model` or `train`.")],
    images: Annotated[list[Path], typer.Argument(
        help="Images, folders (their images and videos) and videos (-> mp4).")],
    out: OutOpt = Path("outputs"),
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Apply a trained StyleNet to images, folders and videos, at any resolution, in bounded memory.

    Prints every file written on stdout. Ctrl-C or SIGTERM stops between tiles or frames; nothing
    half-written is left under a final name.
    """
    from spectralstyle.runs.early import check_out_dir

    config = resolve_from_flags(ApplyConfig, None, settings)  # every option checked before the model is read
    check_out_dir(out)

    from spectralstyle.apply.images import ApplySettings, apply_image, apply_video, expand_inputs, load_stylenet
    from spectralstyle.device import resolve_device
    from spectralstyle.interrupts import raise_if_stop_requested
    from spectralstyle.media.video import is_video

    dev = resolve_device(config.device)
    net, record = load_stylenet(model)
    net = net.to(dev)
    factor = config.contrast if config.contrast is not None else record.get("config", {}).get("contrast", 1.5)
    settings_ = ApplySettings(factor, dev, config.max_side, config.tile, config.norm_stats)
    inputs = expand_inputs(images)
    names = output_names(inputs, model.name.removesuffix(".stylenet.pt"))
    written: list[Path] = []
    summary: list[dict[str, Any]] = []

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
                        "trained_with": record}
            if is_video(path):
                target = out / Path(names[path]).with_suffix(".mp4")
                task = progress.add_task(escape(f"{path.name} frames"), total=None)
                result = apply_video(net, path, target, settings_, metadata, on_frame=progress_of(task))
                progress.remove_task(task)
                stability = result["temporal_stability"]
                shown = f"temporal stability {stability:.3f}" if stability is not None else "still input"
                progress.console.print(f"[dim]{escape(target.name)}: {result['video']['frames']} frames, {shown}[/]",
                                       highlight=False)
                summary.append({"input": str(path), "output": str(target), "temporal_stability": stability})
            else:
                target = out / names[path]
                task = progress.add_task(escape(f"{path.name} tiles"), total=None)
                apply_image(net, path, target, settings_, metadata, on_tile=progress_of(task))
                progress.remove_task(task)
                summary.append({"input": str(path), "output": str(target)})
            written.append(target)
    print_results(written, {"command": "apply", "model": str(model), "results": summary}, json_summary)
