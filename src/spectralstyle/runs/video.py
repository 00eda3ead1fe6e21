"""Stylise a video with one text: train a StyleNet on frames sampled across it, then apply it to every frame.

Why one network for the whole clip instead of a transfer per frame: a per-frame optimisation costs a
minute per frame on a GPU and flickers, because every frame gets its own random crops and its own
network; one network trained on a spread of frames is a fixed function of the pixels, so unchanged
regions stay unchanged and the cost per frame is one forward pass. The model is always kept
(``<stem>_<text>_<band>.stylenet.pt``): training is the expensive half, and ``apply`` can reuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from spectralstyle.apply.frames import VideoResult, stylize_video
from spectralstyle.media.images import finish_image, save_png
from spectralstyle.media.video import probe_video, sample_frames
from spectralstyle.method.controls import ResultControls, apply_controls
from spectralstyle.runs.models import Models
from spectralstyle.runs.outputs import JobOutput, StepCallback, save_stylenet, write_record
from spectralstyle.runs.train import (
    MODEL_SUFFIX,
    TrainSettings,
    preview_grid,
    resize_tensor,
    save_interrupted_model,
    train_digest,
    train_record,
    train_stylenet,
)
from spectralstyle.runs.transfer import output_stem
from spectralstyle.settings import DEFAULT_TRAIN_FRAMES, TransferConfig

FrameCallback = Callable[[int, int], None]


def default_training_size(width: int, height: int, long_side: int = 512) -> tuple[int, int]:
    """The video's aspect ratio with the longer side ``long_side`` (or the video's own, if smaller), both
    sides multiples of 8 (at least 16), so training sees frames undistorted unless ``--size`` says otherwise."""
    scale = min(long_side, max(width, height)) / max(width, height)
    return tuple(max(16, int(round(side * scale / 8)) * 8) for side in (width, height))  # type: ignore[return-value]


def video_digest(config: TransferConfig, train: TrainSettings, train_frames: int, max_side: int | None) -> str:
    """Hash of all settings that shape the output video."""
    return train_digest(config, train) + f"-f{train_frames}" + (f"-m{max_side}" if max_side else "")


def frame_function(net: torch.nn.Module, contrast: float, device: torch.device,
                   controls: ResultControls | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """What ``apply`` does to an image, for one video frame ([1, 3, H, W] in [0, 1], any size); the result
    ``controls`` (one mask for all frames, resized once to the frame size) act on every frame."""
    net = net.eval()
    controls = controls or ResultControls()
    masks: dict[tuple[int, int], torch.Tensor | None] = {}

    def stylize(frame: torch.Tensor) -> torch.Tensor:
        frame = frame.to(device)
        size = tuple(frame.shape[-2:])
        if size not in masks:
            masks[size] = controls.mask_for(frame)  # type: ignore[index]
        styled = finish_image(net.stylize(frame), contrast)
        return apply_controls(styled, frame, controls, masks[size]).cpu()  # type: ignore[index]

    return stylize


def run_video_job(
    src: str | Path,
    text: str,
    config: TransferConfig,
    train: TrainSettings,
    models: Models,
    out: str | Path,
    train_frames: int = DEFAULT_TRAIN_FRAMES,
    max_side: int | None = None,
    on_step: StepCallback | None = None,
    on_frame: FrameCallback | None = None,
    on_training_done: Callable[[], None] | None = None,
    stem: str | None = None,
) -> JobOutput:
    """Write ``<stem>_<text>_<band>.mp4``, its model ``.stylenet.pt``, a ``_preview.png`` of training frames
    and the sidecar ``.json`` (last, with the temporal stability). After Ctrl-C during training the model
    so far goes to ``snapshots/``; during the video, the finished model is kept and no mp4 is written."""
    src, out = Path(src), Path(out)
    controls = ResultControls.of(config)
    info = probe_video(src)
    stem = stem or output_stem(src, text, config.band)
    frames = [resize_tensor(f, config.size) for f in sample_frames(src, train_frames, max_side=max(config.size))]
    controls.mask_for(frames[0])  # a missing or unreadable mask fails before training
    record = train_record(text, config, train, [], models.device)
    record.kind, record.content = "video", str(src.resolve())  # content: evaluate compares with the source
    record.config_hash = video_digest(config, train, train_frames, max_side)
    record.extra.pop("images")
    record.extra.update(input=str(src.resolve()), input_video=info.as_dict(), train_frames=len(frames),
                        max_side=max_side, working_size=[config.width, config.height])
    result = train_stylenet(frames, text, config, models, train, on_step=on_step)
    record.losses, record.steps_done = result.history, result.steps_done
    record.extra["training_wall_time_s"] = round(result.seconds, 3)
    assert result.net is not None
    if result.interrupted:
        return save_interrupted_model(result, record, out, stem)
    model_path, video_path = out / f"{stem}{MODEL_SUFFIX}", out / f"{stem}.mp4"
    save_stylenet(result.net, model_path, {**record.to_dict(), "status": "finished", "model": str(model_path)})
    record.model = str(model_path)
    if train.preview:
        preview = save_png(preview_grid(result.net, frames, train.preview, config.contrast, models.device, controls),
                           out / f"{stem}_preview.png", {k: v for k, v in record.to_dict().items() if k != "losses"})
        record.extra["preview"] = str(preview)
    if on_training_done:
        on_training_done()
    frames_fn = frame_function(result.net, config.contrast, models.device, controls)
    video: VideoResult = stylize_video(src, video_path, frames_fn,
                                       max_side=max_side, on_frame=on_frame)
    record.status, record.output = "finished", str(video_path)
    record.wall_time_s = round(result.seconds + video.seconds, 3)
    record.extra.update(video=video.as_dict(), output_size=[video.width, video.height],
                        temporal_stability=video.temporal_stability,
                        ended=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    sidecar = write_record(record, out / f"{stem}.json")
    return JobOutput(video_path, sidecar, record.to_dict(), model=model_path)
