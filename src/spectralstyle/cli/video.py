"""``spectralstyle video INPUT.mp4 TEXT``: train a style model on sampled frames, apply it to every frame."""

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
    note,
    note_new_name,
    print_results,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.cli.train import resolve_training, step_reporter
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import TrainSettings, TransferConfig, VideoSettings

SETTINGS = (TransferConfig, TrainSettings, VideoSettings)
VIDEO_SIZE_HELP = ("Training size: N = long side N at the video's aspect ratio, or WIDTHxHEIGHT exactly; multiples "
                   "of 8 (default: the video's aspect, long side 512 or the video's own if smaller).")


def size_from_file(config_file: Path | None) -> bool:
    """Whether the --config file sets the working size (else the video's aspect chooses it)."""
    from spectralstyle.config.files import all_names, read_config_file

    return bool({"width", "height", "size"} & set(read_config_file(config_file, all_names(*SETTINGS))))


@stops_at_step_boundary
@with_settings(*SETTINGS, exclude=("output_size",), helps={"size": VIDEO_SIZE_HELP})
def video(
    input_video: Annotated[Path, typer.Argument(metavar="INPUT", help="Video to stylise (mp4, mov, mkv, webm, ...).")],
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    config_file: config_option(*SETTINGS) = None,
    out: OutOpt = Path("outputs"),
    overwrite: OverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise every frame of INPUT with TEXT: one StyleNet trained on --train-frames frames, applied to all.

    Writes OUT/<stem>_<text>_<band>.mp4 (the input's frame rate, frame count, size and audio), the model
    (.stylenet.pt, for `apply`), a preview of training frames and a sidecar .json with the temporal stability;
    their paths on stdout.
    """
    from spectralstyle.runs.early import check_out_dir, check_text

    video_settings = resolve_from_flags(VideoSettings, config_file, settings)
    resolve_training(config_file, settings)  # every setting checked before the video is opened
    check_text(text)
    if not input_video.exists():
        from spectralstyle.errors import SpectralStyleError

        raise SpectralStyleError(f"video {input_video} does not exist")
    check_out_dir(out)

    from spectralstyle.device import precision_notes
    from spectralstyle.media.video import probe_video
    from spectralstyle.method.clip_model import tokenize_templated
    from spectralstyle.method.prompts import style_prompts
    from spectralstyle.runs.models import Models
    from spectralstyle.runs.naming import free_stem
    from spectralstyle.runs.transfer import output_stem
    from spectralstyle.runs.video import default_training_size, run_video_job, video_digest

    info = probe_video(input_video)  # a corrupt video fails before any model is loaded
    if settings.get("size") is None and not size_from_file(config_file):
        settings = type(settings)({**settings, "size": "{}x{}".format(*default_training_size(info.width, info.height))})
        settings.classes = SETTINGS  # type: ignore[attr-defined]
    config, train = resolve_training(config_file, settings)
    # --size N: the video's aspect ratio; the frames come back at the video's size (or --max-side)
    resolved = config.for_content((info.width, info.height))
    if crop_note := config.crop_note(resolved):
        note(crop_note)
    config = resolved
    train.check_with(config)
    train_frames, max_side = video_settings.train_frames, video_settings.max_side
    style_prompts(text, config.avoid_text)  # empty, too long or badly weighted prompts
    tokenize_templated(config.source_text, "--source-text")
    setup_log_file(out)
    plain = output_stem(input_video, text, config.band)  # another run's video there is kept: this one goes beside it
    stem = free_stem(out, plain, input_video, text, video_digest(config, train, train_frames, max_side), overwrite,
                     kind="video")
    note_new_name(out, plain, stem, ".mp4")
    models = Models.load(config, on_loading=lambda device: loading_models("CLIP and VGG19", str(device)))
    for line in precision_notes(models.device, config.precision):
        note(line)
    log.info("video %s %r band=%s: %dx%d, %d frames at %s fps; training on %d frames at %dx%d", input_video, text,
             config.band, info.width, info.height, info.frames, info.fps, train_frames, config.width, config.height)
    with progress_bar() as progress:
        label = f"train {min(train_frames, info.frames)} frames · {config.band_value.label}"
        training = progress.add_task(escape(label), total=config.steps, losses="")
        frames = progress.add_task(escape(f"frames of {input_video.name}"), total=info.frames, losses="", visible=False)
        estimate = RunEstimate(config.steps, models.device.type, progress.console)
        result = run_video_job(
            input_video, text, config, train, models, out, train_frames=train_frames, max_side=max_side,
            on_step=step_reporter(progress, training, estimate),
            on_frame=lambda done, total: progress.update(frames, completed=done, total=max(total, done)),
            on_training_done=lambda: progress.update(frames, visible=True), stem=stem,
        )
    if result.interrupted:
        raise interrupted_exit(f"interrupted at training step {result.record['steps_done']}; the model so far is in "
                               f"{result.image}")
    stability = result.record.get("temporal_stability")
    log.info("wrote %s (temporal stability %s)", result.image, stability)
    if stability is not None:
        console.print(f"temporal stability {stability:.3f} (output flicker / input flicker; 1.0 = none added)",
                      highlight=False)
    print_results(files_of(result), {"command": "video", "video": str(result.image), "temporal_stability": stability},
                  json_summary)
