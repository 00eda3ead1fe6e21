"""``spectralstyle train TEXT --images ...``: one style model for a whole photo set (used by ``apply``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from spectralstyle.cli.common import (
    loss_line,
    ConfigOpt, OutOpt, console, interrupted_exit, log, progress_bar, resolve_from_flags, setup_log_file, user_errors,
    with_settings,
)
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import TransferConfig, parse_size

if TYPE_CHECKING:
    from spectralstyle.runs.train import TrainSettings

ImagesOpt = Annotated[list[Path], typer.Option("--images", "-i", help="Training images: files and/or folders (their images); repeat or list several.")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Content images per step (CLIPstyler's fast mode uses 4).")]
TrainSizeOpt = Annotated[Optional[str], typer.Option("--train-size", metavar="WxH", help="Train on random WIDTHxHEIGHT crops of the --size images (multiples of 8); default: whole images.")]
PreviewOpt = Annotated[int, typer.Option("--preview", help="Training images in the before/after preview grid (0: none).")]


def train_settings(batch: int, train_size: str | None, preview: int, config: TransferConfig) -> "TrainSettings":
    from spectralstyle.runs.train import TrainSettings

    width, height = parse_size(train_size) if train_size else (None, None)
    settings = TrainSettings(batch=batch, train_width=width, train_height=height, preview=preview)
    settings.check(config)
    return settings


def step_reporter(progress: Any, task: Any) -> Any:
    """A progress row showing every loss term of the step."""
    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=loss_line(losses))
    return on_step


@user_errors
@stops_at_step_boundary
@with_settings(TransferConfig)
def train(
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    images: ImagesOpt,
    batch: BatchOpt = 4,
    train_size: TrainSizeOpt = None,
    preview: PreviewOpt = 4,
    config_file: ConfigOpt = None,
    out: OutOpt = Path("outputs"),
    *,
    settings: dict[str, Any],
) -> None:
    """Train one StyleNet for TEXT over many images; `apply` then stylises any photo or video with it.

    Writes OUT/<text>_<band>.stylenet.pt, its sidecar .json and a before/after preview grid. Ctrl-C or
    SIGTERM stops after the current step and keeps the model so far in OUT/snapshots/ (exit 130).
    """
    from spectralstyle.method.prompts import style_prompts
    from spectralstyle.media.images import load_image
    from spectralstyle.runs.train import collect_images, run_train_job
    from spectralstyle.runs.models import Models

    config = resolve_from_flags(TransferConfig, config_file, settings)
    train = train_settings(batch, train_size, preview, config)
    paths = collect_images(images)
    for path in paths:
        load_image(path)  # fail on a bad image before loading any model
    style_prompts(text)  # and on empty, too long or badly weighted prompts
    setup_log_file(out)
    models = Models.load(config)
    log.info("train %r band=%s on %d images, steps=%d size=%dx%d batch=%d device=%s", text, config.band, len(paths),
             config.steps, config.width, config.height, train.batch, models.device)
    with progress_bar() as progress:
        task = progress.add_task(escape(f"{len(paths)} images · {config.band_value.label}"), total=config.steps, losses="")
        result = run_train_job(paths, text, config, train, models, out, on_step=step_reporter(progress, task))
    log.info("%s %s in %.1fs", "interrupted" if result.interrupted else "wrote", result.image, result.record["wall_time_s"])
    if result.interrupted:
        raise interrupted_exit(f"interrupted at step {result.record['steps_done']}; the model so far is in {result.image}")
    preview_path = result.record.get("preview")
    console.print(f"[green]wrote[/] {escape(str(result.image))}  [dim]{escape(str(result.sidecar))}"
                  f"{'  ' + escape(str(preview_path)) if preview_path else ''}[/]", highlight=False)
    console.print(f"apply it: spectralstyle apply {escape(str(result.image))} PHOTOS_OR_VIDEOS...", highlight=False,
                  soft_wrap=True)
