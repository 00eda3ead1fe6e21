"""``spectralstyle apply``: a trained StyleNet on images, folders and videos, at any size, in bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spectralstyle.cli.common import (
    JsonFlag,
    OutOpt,
    OverwriteFlag,
    console,
    log,
    note,
    note_new_name,
    print_results,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import ApplyConfig, ApplyControls


@stops_at_step_boundary
@with_settings(ApplyConfig, ApplyControls)
def apply(
    model: Annotated[Path, typer.Argument(help="A StyleNet saved by `transfer --save-model` or `train`.")],
    images: Annotated[list[Path], typer.Argument(
        help="Images, folders (their images and videos) and videos (-> mp4).")],
    out: OutOpt = Path("outputs"),
    overwrite: OverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Apply a trained StyleNet to images, folders and videos, at any resolution, in bounded memory.

    Prints every file written on stdout. Ctrl-C or SIGTERM stops between tiles or frames; nothing
    half-written is left under a final name.
    """
    from spectralstyle.media.files import check_exists
    from spectralstyle.runs.early import check_out_dir, is_image

    config = resolve_from_flags(ApplyConfig, None, settings)  # every option checked before the model is read
    controls = resolve_from_flags(ApplyControls, None, settings)
    check_exists(model, "model file", "file")  # within a second, before torch
    if is_image(model):
        raise SpectralStyleError(f"{model} is an image, not a style model: `apply MODEL IMAGES...` takes the model "
                                 "first (a .stylenet.pt written by `train` or `transfer --save-model`)")
    for path in images:
        check_exists(path, "input")
    check_out_dir(out)

    from spectralstyle.method.controls import ResultControls

    ResultControls.of(controls).check_mask(64, 64)  # a missing, unreadable or empty mask: before the model

    from spectralstyle.apply.images import (
        APPLIED_KIND,
        ApplySettings,
        apply_digest,
        apply_image,
        apply_video,
        expand_inputs,
        load_stylenet,
        output_names,
        trained_choices,
    )
    from spectralstyle.device import resolve_device
    from spectralstyle.interrupts import raise_if_stop_requested
    from spectralstyle.media.video import is_video
    from spectralstyle.runs.naming import free_stem

    dev = resolve_device(config.device)
    net, record = load_stylenet(model)
    net = net.to(dev)
    trained_contrast, trained_colors = trained_choices(record)
    factor = config.contrast if config.contrast is not None else trained_contrast
    if settings.get("preserve_color") is None and trained_colors != "off":
        controls = controls.replace(preserve_color=trained_colors)
    mix_path = Path(controls.mix) if controls.mix else None
    mix = load_stylenet(mix_path)[0].to(dev) if mix_path is not None else None
    settings_ = ApplySettings(factor, dev, config.max_side, config.tile, config.norm_stats,
                              controls=ResultControls.of(controls), mix=mix, mix_weight=controls.mix_weight,
                              mix_path=mix_path)
    inputs = expand_inputs(images)
    setup_log_file(out)  # creates OUT (writable) and appends this run's lines to OUT/spectralstyle.log
    model_stem = model.name.removesuffix(".stylenet.pt")
    if mix_path is not None:  # a blend of two models is another result than either's
        model_stem += f"_mix-{mix_path.name.removesuffix('.stylenet.pt')}-{controls.mix_weight:g}"
    names = output_names(inputs, model_stem)
    config_hash = apply_digest(model, settings_)
    trained = {key: record[key] for key in ("text", "band") if isinstance(record.get(key), str)}
    written: list[Path] = []
    summary: list[dict[str, Any]] = []
    log.info("apply %s to %d input(s) on %s, settings %s", model, len(inputs), dev, config_hash)

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
                        "config_hash": config_hash, "controls": settings_.controls.as_dict(), "mix": controls.mix,
                        "mix_weight": controls.mix_weight, **trained}
            if is_video(path):
                target = target_of(path, video=True)
                task = progress.add_task(escape(f"{path.name} frames"), total=None)
                result = apply_video(net, path, target, settings_, metadata, on_frame=progress_of(task),
                                     on_note=lambda text: note(text, progress.console))
                progress.remove_task(task)
                stability = result["temporal_stability"]
                shown = f"temporal stability {stability:.3f}" if stability is not None else "still input"
                progress.console.print(f"[dim]{escape(target.name)}: {result['video']['frames']} frames, {shown}[/]",
                                       highlight=False)
                summary.append({"input": str(path), "output": str(target), "temporal_stability": stability})
                written += [target, target.with_suffix(".json")]  # the video and its sidecar
                log.info("wrote %s", target)
            else:
                target = target_of(path, video=False)
                task = progress.add_task(escape(f"{path.name} tiles"), total=None)
                apply_image(net, path, target, settings_, metadata, on_tile=progress_of(task))
                progress.remove_task(task)
                summary.append({"input": str(path), "output": str(target)})
                written.append(target)
                log.info("wrote %s", target)
    print_results(written, {"command": "apply", "model": str(model), "results": summary}, json_summary)
