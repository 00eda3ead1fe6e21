"""``spectralstyle train TEXT --images ...``: one style model for a whole photo set (used by ``apply``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .cli_common import (
    INTERRUPTED_EXIT, BandOpt, ClipWeightsOpt, CompileOpt, ConfigOpt, ContrastOpt, CropSizeOpt, CropsOpt, DeviceOpt,
    LambdaContentOpt, LambdaGlobalOpt, LambdaPatchOpt, LambdaTvOpt, LrOpt, OutOpt, PrecisionOpt, SeedOpt, SizeOpt,
    SourceEncoderOpt, StepsOpt, ThresholdOpt, VggWeightsOpt, WeightsOpt, config_from_flags, console, fail, log,
    setup_log_file, user_errors,
)
from .config import TransferConfig, parse_size
from .image_io import load_image
from .spectral import band_label
from .train import TrainSettings, collect_images, run_train_job
from .transfer import JobOutput, Models, StepCallback

ImagesOpt = Annotated[list[Path], typer.Option("--images", "-i", help="Training images: files and/or folders (their images); repeat or list several.")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Content images per step (CLIPstyler's fast mode uses 4).")]
TrainSizeOpt = Annotated[Optional[str], typer.Option("--train-size", help="Train on random WIDTHxHEIGHT crops of the --size images (multiples of 8); default: whole images.")]
PreviewOpt = Annotated[int, typer.Option("--preview", help="Training images in the before/after preview grid (0: none).")]


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train_settings(batch: int, train_size: str | None, preview: int, config: TransferConfig) -> TrainSettings:
    width, height = parse_size(train_size) if train_size else (None, None)
    settings = TrainSettings(batch=batch, train_width=width, train_height=height, preview=preview)
    settings.check(config)
    return settings


def step_reporter(progress, task) -> StepCallback:  # type: ignore[no-untyped-def]
    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=(
            f"total {losses['total']:.1f} patch {losses['patch']:.3f} global {losses['global']:.3f} "
            f"content {losses['content']:.3f} tv {losses['tv']:.1f}"))
    return on_step


def train_with_progress(images: list[Path], text: str, config: TransferConfig, settings: TrainSettings,
                        models: Models, out: Path) -> JobOutput:
    """One training run with a progress bar row showing the current losses."""
    from .cli import progress_bar

    log.info("train %r band=%s on %d images, steps=%d size=%dx%d batch=%d device=%s", text, config.band, len(images),
             config.steps, config.width, config.height, settings.batch, models.device)
    from .batch import sigterm_as_interrupt

    with sigterm_as_interrupt(), progress_bar() as progress:  # SIGTERM (a job scheduler) stops like Ctrl-C
        task = progress.add_task(escape(f"{len(images)} images · {band_label(config.band)}"), total=config.steps, losses="")
        result = run_train_job(images, text, config, settings, models, out, on_step=step_reporter(progress, task))
    log.info("%s %s in %.1fs", "interrupted" if result.interrupted else "wrote", result.image, result.record["wall_time_s"])
    return result


@user_errors
def train(
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    images: ImagesOpt,
    batch: BatchOpt = 4,
    train_size: TrainSizeOpt = None,
    preview: PreviewOpt = 4,
    config_file: ConfigOpt = None,
    band: BandOpt = None,
    steps: StepsOpt = None,
    size: SizeOpt = None,
    crops: CropsOpt = None,
    crop_size: CropSizeOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = Path("outputs"),
    weights: WeightsOpt = None,
    clip_weights: ClipWeightsOpt = None,
    vgg_weights: VggWeightsOpt = None,
    contrast: ContrastOpt = None,
    lambda_patch: LambdaPatchOpt = None,
    lambda_global: LambdaGlobalOpt = None,
    lambda_content: LambdaContentOpt = None,
    lambda_tv: LambdaTvOpt = None,
    threshold: ThresholdOpt = None,
    source_encoder: SourceEncoderOpt = None,
    precision: PrecisionOpt = None,
    compile: CompileOpt = None,
) -> None:
    """Train one StyleNet for TEXT over many images; `apply` then stylises any photo or video with it.

    Writes OUT/<text>_<band>.stylenet.pt, its sidecar .json and a before/after preview grid.
    """
    config = config_from_flags(config_file, size, locals())
    settings = train_settings(batch, train_size, preview, config)
    paths = collect_images(images)
    for path in paths:
        load_image(path)  # fail on a bad image before loading any model
    from .clip_model import tokenize_templated

    tokenize_templated(text)  # and on empty or too long text
    setup_log_file(out)
    models = Models.load(config)
    result = train_with_progress(paths, text, config, settings, models, out)
    if result.interrupted:
        raise fail(f"interrupted after {result.record['steps_done']} steps; the model so far is in {result.image}",
                   INTERRUPTED_EXIT)
    preview_path = result.record.get("preview")
    console.print(f"[green]wrote[/] {escape(str(result.image))}  [dim]{escape(str(result.sidecar))}"
                  f"{'  ' + escape(str(preview_path)) if preview_path else ''}[/]", highlight=False)
    console.print(f"apply it: spectralstyle apply {escape(str(result.image))} PHOTOS_OR_VIDEOS...", highlight=False,
                  soft_wrap=True)


