"""``spectralstyle video INPUT.mp4 TEXT``: train a style model on sampled frames, apply it to every frame."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from spectralstyle.cli.common import (
    ConfigOpt, OutOpt, console, interrupted_exit, log, progress_bar, resolve_from_flags, setup_log_file, user_errors,
    with_settings,
)
from spectralstyle.cli.train import BatchOpt, PreviewOpt, TrainSizeOpt, step_reporter, train_settings
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import DEFAULT_TRAIN_FRAMES, TransferConfig, read_config_file

TrainFramesOpt = Annotated[int, typer.Option("--train-frames", help="Frames sampled evenly across the video to train on.")]
MaxSideOpt = Annotated[Optional[int], typer.Option("--max-side", help="Downscale the output video so that its longer side is at most this.")]
VideoSizeOpt = Annotated[Optional[str], typer.Option("--size", metavar="WxH", help="Training size WIDTHxHEIGHT, multiples of 8 (default: the video's aspect, longer side 512).")]


@user_errors
@stops_at_step_boundary
@with_settings(TransferConfig, exclude=("size",))
def video(
    input_video: Annotated[Path, typer.Argument(metavar="INPUT", help="Video to stylise (mp4, mov, mkv, webm, ...).")],
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    train_frames: TrainFramesOpt = DEFAULT_TRAIN_FRAMES,
    max_side: MaxSideOpt = None,
    batch: BatchOpt = 4,
    train_size: TrainSizeOpt = None,
    preview: PreviewOpt = 4,
    size: VideoSizeOpt = None,
    config_file: ConfigOpt = None,
    out: OutOpt = Path("outputs"),
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise every frame of INPUT with TEXT: one StyleNet trained on --train-frames frames, applied to all.

    Writes OUT/<stem>_<text>_<band>.mp4 (the input's frame rate, frame count, size and audio), the model
    (.stylenet.pt, for `apply`), a preview of training frames and a sidecar .json with the temporal stability.
    """
    from spectralstyle.method.prompts import style_prompts
    from spectralstyle.runs.models import Models
    from spectralstyle.media.video import probe_video
    from spectralstyle.apply.video import default_training_size, run_video_job

    if train_frames < 1:
        raise SpectralStyleError(f"--train-frames must be at least 1, got {train_frames}")
    if max_side is not None and max_side < 16:
        raise SpectralStyleError(f"--max-side must be at least 16 pixels, got {max_side}")
    info = probe_video(input_video)  # a missing or corrupt video fails before any model is loaded
    if size is None and not {"width", "height", "size"} & set(read_config_file(config_file)):
        size = "{}x{}".format(*default_training_size(info.width, info.height))
    config = resolve_from_flags(TransferConfig, config_file, {**settings, "size": size})
    train = train_settings(batch, train_size, preview, config)
    style_prompts(text)
    setup_log_file(out)
    models = Models.load(config)
    log.info("video %s %r band=%s: %dx%d, %d frames at %s fps; training on %d frames at %dx%d", input_video, text,
             config.band, info.width, info.height, info.frames, info.fps, train_frames, config.width, config.height)
    with progress_bar() as progress:
        training = progress.add_task(escape(f"train {min(train_frames, info.frames)} frames · {config.band_value.label}"),
                                     total=config.steps, losses="")
        frames = progress.add_task(escape(f"frames of {input_video.name}"), total=info.frames, losses="", visible=False)
        result = run_video_job(
            input_video, text, config, train, models, out, train_frames=train_frames, max_side=max_side,
            on_step=step_reporter(progress, training),
            on_frame=lambda done, total: progress.update(frames, completed=done, total=max(total, done)),
            on_training_done=lambda: progress.update(frames, visible=True),
        )
    if result.interrupted:
        raise interrupted_exit(f"interrupted at training step {result.record['steps_done']}; the model so far is in "
                               f"{result.image}")
    stability = result.record.get("temporal_stability")
    log.info("wrote %s (temporal stability %s)", result.image, stability)
    console.print(f"[green]wrote[/] {escape(str(result.image))}  [dim]{escape(str(result.model))}  "
                  f"{escape(str(result.sidecar))}[/]", highlight=False, soft_wrap=True)
    if stability is not None:
        console.print(f"temporal stability {stability:.3f} (output flicker / input flicker; 1.0 = none added)",
                      highlight=False)
