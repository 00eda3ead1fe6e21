"""Applying a frame function (a StyleNet) to every frame of a video, streamed: the video pipeline.

``stylize_video`` keeps what a user expects of a "filter": the input's frame timestamps (so frame rate,
frame count and variable frame rates survive), its size (odd sides are cropped by one pixel, because
H.264 in yuv420p needs even sides), its display rotation and its audio, subtitle and data streams
(``media.video.VideoWriter``). The result is written under a temporary name and renamed at the end,
so Ctrl-C, SIGTERM or an error never leave a half-written mp4 under the final name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import torch

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.temporal import Flicker, temporal_stability
from spectralstyle.interrupts import raise_if_stop_requested, stop_at_step_boundary
from spectralstyle.media.files import atomic_path
from spectralstyle.media.video import (
    VideoWriter,
    frame_to_tensor,
    open_video,
    output_size,
    probe_video,
    tensor_to_uint8,
    unreadable,
)

FrameFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]
NoteFn = Callable[[str], None]


@dataclass
class VideoResult:
    """What ``stylize_video`` wrote, with the temporal stability of the result."""

    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    encoder: str
    audio: str  # "copied", "transcoded to aac", "none", or per track: "2 tracks: copied, copied"
    input_flicker: float  # mean |frame[t] - frame[t-1]| of the input (after resizing), in [0, 1]
    output_flicker: float  # the same for the output
    temporal_stability: float | None  # output_flicker / input_flicker; 1.0 = no added flicker
    seconds: float
    rotation: int = 0  # the display rotation kept from the input (counter-clockwise degrees)
    notes: list[str] = field(default_factory=list)  # streams of the input that could not be kept

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"], data["fps"] = str(self.path), str(self.fps)
        return data


def stylize_video(
    src: str | Path,
    dst: str | Path,
    frame_fn: FrameFn,
    max_side: int | None = None,
    on_frame: ProgressFn | None = None,
    crf: int = 18,
    on_note: NoteFn | None = None,
) -> VideoResult:
    """Apply ``frame_fn`` ([1,3,H,W] in [0,1] -> the same shape) to every frame of ``src``; write an mp4 to ``dst``.

    Frames are decoded, processed and encoded one at a time. Each output frame keeps the timestamp of
    its input frame; packets of the other streams are copied between the video packets in the order
    they were read. ``on_frame(done, total)`` is called after each frame (for a progress bar),
    ``on_note(text)`` once per input stream that could not be kept.
    """
    start = time.perf_counter()
    info = probe_video(src)
    size = output_size(info.width, info.height, max_side)
    dst = Path(dst)
    flicker_in, flicker_out = Flicker(), Flicker()
    written = 0
    with stop_at_step_boundary(), atomic_path(dst) as tmp:  # SIGTERM like Ctrl-C: the temporary file is removed
        source = open_video(src)
        try:
            in_video = source.streams.video[0]
            time_base = in_video.time_base or Fraction(1, int(round(info.fps)) or 25)
            writer = VideoWriter(source, tmp, size, info.fps, time_base, rotation=info.rotation, crf=crf)
            for note in writer.notes:
                if on_note:
                    on_note(f"{src}: {note}")
            try:
                last_pts: int | None = None
                try:
                    for packet in source.demux(*writer.streams_to_read(source)):
                        if packet.stream.index != in_video.index:
                            writer.write_packet(packet)
                            continue
                        for frame in packet.decode():
                            tensor = frame_to_tensor(frame, size)
                            result = frame_fn(tensor)
                            if tuple(result.shape[-2:]) != tuple(tensor.shape[-2:]):
                                raise ValueError(f"frame_fn changed the frame size from {tuple(tensor.shape[-2:])} "
                                                 f"to {tuple(result.shape[-2:])}")
                            flicker_in.add(tensor)
                            flicker_out.add(result)
                            pts = frame.pts if frame.pts is not None else written
                            if last_pts is not None and pts <= last_pts:  # duplicate timestamps would be dropped
                                pts = last_pts + 1
                            writer.write_frame(tensor_to_uint8(result), pts)
                            last_pts = pts
                            written += 1
                            if on_frame:
                                on_frame(written, info.frames)
                            raise_if_stop_requested()  # Ctrl-C / SIGTERM: no half-written mp4 under the final name
                except (av.FFmpegError, OSError) as exc:
                    if isinstance(exc, av.FFmpegError) or not getattr(exc, "filename", None):
                        raise unreadable(src, exc) from None
                    raise
                writer.finish()
            finally:
                writer.close()
        finally:
            source.close()
        if written == 0:
            raise SpectralStyleError(f"{src} has no decodable video frames")
    stability = temporal_stability(flicker_in.value, flicker_out.value)
    return VideoResult(
        path=dst, frames=written, width=size[0], height=size[1], fps=info.fps, encoder=writer.encoder,
        audio=writer.audio_summary, input_flicker=round(flicker_in.value, 6),
        output_flicker=round(flicker_out.value, 6),
        temporal_stability=None if stability is None else round(stability, 6),
        seconds=round(time.perf_counter() - start, 3), rotation=info.rotation, notes=list(writer.notes),
    )
