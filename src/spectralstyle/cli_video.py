"""``spectralstyle video INPUT.mp4 TEXT``: train a style model on sampled frames, apply it to every frame."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .cli_common import (
    INTERRUPTED_EXIT, BandOpt, ClipWeightsOpt, CompileOpt, ConfigOpt, ContrastOpt, CropSizeOpt, CropsOpt, DeviceOpt,
    LambdaContentOpt, LambdaGlobalOpt, LambdaPatchOpt, LambdaTvOpt, LrOpt, OutOpt, PrecisionOpt, SeedOpt,
    SourceEncoderOpt, StepsOpt, ThresholdOpt, VggWeightsOpt, WeightsOpt, config_from_flags, console, fail, log,
    setup_log_file, user_errors,
)
from .cli_train import BatchOpt, PreviewOpt, TrainSizeOpt, step_reporter, train_settings
from .config import read_config_file
from .errors import SpectralStyleError
from .spectral import band_label
from .transfer import Models
from .video import probe_video
from .video_style import DEFAULT_TRAIN_FRAMES, default_training_size, run_video_job

TrainFramesOpt = Annotated[int, typer.Option("--train-frames", help="Frames sampled evenly across the video to train on.")]
MaxSideOpt = Annotated[Optional[int], typer.Option("--max-side", help="Downscale the output video so that its longer side is at most this.")]
VideoSizeOpt = Annotated[Optional[str], typer.Option("--size", help="Training size WIDTHxHEIGHT, multiples of 8 (default: the video's aspect, longer side 512).")]


def register(app: typer.Typer) -> None:
    app.command("video")(video)


@user_errors
def video(
    input_video: Annotated[Path, typer.Argument(metavar="INPUT", help="Video to stylise (mp4, mov, mkv, webm, ...).")],
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    train_frames: TrainFramesOpt = DEFAULT_TRAIN_FRAMES,
    max_side: MaxSideOpt = None,
    batch: BatchOpt = 4,
    train_size: TrainSizeOpt = None,
    preview: PreviewOpt = 4,
    config_file: ConfigOpt = None,
    band: BandOpt = None,
    steps: StepsOpt = None,
    size: VideoSizeOpt = None,
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
    """Stylise every frame of INPUT with TEXT: one StyleNet trained on --train-frames frames, applied to all.

    Writes OUT/<stem>_<text>_<band>.mp4 (the input's frame rate, frame count, size and audio), the model
    (.stylenet.pt, for `apply`), a preview of training frames and a sidecar .json with the temporal stability.
    """
    if train_frames < 1:
        raise SpectralStyleError(f"--train-frames must be at least 1, got {train_frames}")
    if max_side is not None and max_side < 16:
        raise SpectralStyleError(f"--max-side must be at least 16 pixels, got {max_side}")
    info = probe_video(input_video)  # a missing or corrupt video fails before any model is loaded
    if size is None and not {"width", "height"} & set(read_config_file(config_file)):
        size = "{}x{}".format(*default_training_size(info.width, info.height))
    config = config_from_flags(config_file, size, locals())
    settings = train_settings(batch, train_size, preview, config)
    from .clip_model import tokenize_templated

    tokenize_templated(text)
    setup_log_file(out)
    models = Models.load(config)
    log.info("video %s %r band=%s: %dx%d, %d frames at %s fps; training on %d frames at %dx%d", input_video, text,
             config.band, info.width, info.height, info.frames, info.fps, train_frames, config.width, config.height)
    from .cli import progress_bar

    from .batch import sigterm_as_interrupt

    with sigterm_as_interrupt(), progress_bar() as progress:  # SIGTERM (a job scheduler) stops like Ctrl-C
        training = progress.add_task(escape(f"train {min(train_frames, info.frames)} frames · {band_label(config.band)}"),
                                     total=config.steps, losses="")
        frames = progress.add_task(escape(f"frames of {input_video.name}"), total=info.frames, losses="", visible=False)
        result = run_video_job(
            input_video, text, config, settings, models, out, train_frames=train_frames, max_side=max_side,
            on_step=step_reporter(progress, training),
            on_frame=lambda done, total: progress.update(frames, completed=done, total=max(total, done)),
            on_training_done=lambda: progress.update(frames, visible=True),
        )
    if result.interrupted:
        raise fail(f"interrupted after {result.record['steps_done']} training steps; the model so far is in "
                   f"{result.image}", INTERRUPTED_EXIT)
    stability = result.record.get("temporal_stability")
    log.info("wrote %s (temporal stability %s)", result.image, stability)
    console.print(f"[green]wrote[/] {escape(str(result.image))}  [dim]{escape(str(result.model))}  "
                  f"{escape(str(result.sidecar))}[/]", highlight=False, soft_wrap=True)
    if stability is not None:
        console.print(f"temporal stability {stability:.3f} (output flicker / input flicker; 1.0 = none added)",
                      highlight=False)
