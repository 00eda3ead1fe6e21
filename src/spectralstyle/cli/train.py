"""``spectralstyle train TEXT --images ...``: one style model for a whole photo set (used by ``apply``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from spectralstyle.cli.common import (
    JsonFlag,
    OutOpt,
    OverwriteFlag,
    RunEstimate,
    config_option,
    console,
    files_of,
    interrupted_exit,
    loading_models,
    log,
    loss_line,
    note,
    note_new_name,
    print_results,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import TrainSettings, TransferConfig

ImagesOpt = Annotated[list[Path], typer.Option("--images", "-i", help="Training images: files and/or folders (their "
                                               "images); repeat or list several.")]


def resolve_training(config_file: Path | None, settings: dict[str, Any]) -> tuple[TransferConfig, TrainSettings]:
    """The transfer and the training settings of one command (one YAML file may hold both)."""
    config = resolve_from_flags(TransferConfig, config_file, settings)
    train = resolve_from_flags(TrainSettings, config_file, settings)
    train.check_with(config)
    return config, train


def step_reporter(progress: Any, task: Any, estimate: RunEstimate | None = None) -> Any:
    """A progress row showing every loss term of the step."""
    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=loss_line(losses))
        if estimate is not None:
            estimate.step(step)
    return on_step


@stops_at_step_boundary
@with_settings(TransferConfig, TrainSettings, exclude=("output_size",))
def train(
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    images: ImagesOpt,
    config_file: config_option(TransferConfig, TrainSettings) = None,
    out: OutOpt = Path("outputs"),
    overwrite: OverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Train one StyleNet for TEXT over many images; `apply` then stylises any photo or video with it.

    Writes OUT/<text>_<band>.stylenet.pt, its sidecar .json and a before/after preview grid (their paths on
    stdout). Ctrl-C or SIGTERM stops after the current step and keeps the model so far in OUT/snapshots/ (exit 130).
    """
    from spectralstyle.media.files import check_exists
    from spectralstyle.runs.early import check_out_dir, check_text

    config, train = resolve_training(config_file, settings)
    check_text(text)
    for path in images:
        check_exists(path)  # within a second, before torch
    check_out_dir(out)

    from spectralstyle.device import precision_notes
    from spectralstyle.media.images import check_image
    from spectralstyle.method.clip_model import tokenize_templated
    from spectralstyle.method.prompts import style_prompts
    from spectralstyle.runs.models import Models
    from spectralstyle.runs.naming import free_stem
    from spectralstyle.runs.preflight import check_free_space, train_needed_bytes
    from spectralstyle.runs.train import (
        MODEL_SUFFIX,
        collect_images,
        config_for_images,
        model_stem,
        run_train_job,
        train_digest,
    )

    paths = collect_images(images)
    for path in paths:
        check_image(path)  # fail on a bad image before loading any model (its header: no pixels decoded)
    resolved = config_for_images(config, paths)  # --size N: the photos' shape
    if crop_note := config.crop_note(resolved):
        note(crop_note)
    config = resolved
    train.check_with(config)
    style_prompts(text, config.avoid_text)  # and on empty, too long or badly weighted prompts
    tokenize_templated(config.source_text, "--source-text")
    setup_log_file(out)
    check_free_space(out, train_needed_bytes(config, train.preview), "the model and its preview")
    plain = model_stem(text, config.band)  # another training's model there is kept: this one goes beside it
    stem = free_stem(out, plain, None, text, train_digest(config, train), overwrite, kind="stylenet",
                     images=[str(p) for p in paths])
    note_new_name(out, plain, stem, MODEL_SUFFIX)
    models = Models.load(config, on_loading=lambda device: loading_models("CLIP and VGG19", str(device)))
    for line in precision_notes(models.device, config.precision):
        note(line)
    log.info("train %r band=%s on %d images, steps=%d size=%dx%d batch=%d device=%s", text, config.band, len(paths),
             config.steps, config.width, config.height, train.batch, models.device)
    with progress_bar() as progress:
        task = progress.add_task(escape(f"{len(paths)} images · {config.band_value.label}"), total=config.steps,
                                 losses="")
        estimate = RunEstimate(config.steps, models.device.type, progress.console)
        result = run_train_job(paths, text, config, train, models, out,
                               on_step=step_reporter(progress, task, estimate), stem=stem)
    log.info("%s %s in %.1fs", "interrupted" if result.interrupted else "wrote", result.image,
             result.record["wall_time_s"])
    if result.interrupted:
        raise interrupted_exit(f"interrupted at step {result.record['steps_done']}; the model so far is in "
                               f"{result.image}")
    console.print(f"[dim]apply it: spectralstyle apply {escape(str(result.image))} PHOTOS_OR_VIDEOS...[/]",
                  highlight=False, soft_wrap=True)
    print_results(files_of(result), {"command": "train", "model": str(result.image),
                                     "config_hash": result.record.get("config_hash")}, json_summary)
