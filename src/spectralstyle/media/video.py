"""Reading and writing videos with PyAV (FFmpeg in its wheel), one frame at a time.

Why PyAV and not an ``ffmpeg`` binary: the binary may be missing, and a library lets us stream frames
through a StyleNet without ever holding the whole video in memory. ``stylize_video`` keeps what a user
expects of a "filter": the input's frame timestamps (so frame rate, frame count and variable frame
rates survive), its size (odd sides are cropped by one pixel, because H.264 in yuv420p needs even
sides), and its audio stream, copied packet by packet (or transcoded to AAC when MP4 cannot hold the
codec). The result is written under a temporary name and renamed at the end, so Ctrl-C, SIGTERM or an
error never leave a half-written mp4 under the final name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import atomic_path
from spectralstyle.interrupts import raise_if_stop_requested, stop_at_step_boundary

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")  # GIFs are images here
# Audio codecs the MP4 muxer stores as they are; anything else (PCM, Vorbis, ...) is transcoded to AAC.
MP4_AUDIO_CODECS = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")
# H.264 encoders in order of preference; mpeg4 (part 2) is in every FFmpeg build as a last resort.
VIDEO_ENCODERS = ("libx264", "h264", "libopenh264", "mpeg4")
FrameFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]


def is_video(path: str | Path) -> bool:
    """Decided by the suffix, as for images: cheap, and a mislabelled file still fails with one clear line."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What a user (and ``stylize_video``) needs to know about a video before decoding it."""

    path: str
    width: int
    height: int
    fps: Fraction  # average frame rate: frames / duration (for variable frame rate input too)
    frames: int  # counted from the packets, not trusted from the header
    duration: float  # seconds
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    variable_frame_rate: bool

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = str(self.fps)
        return data


@dataclass
class VideoResult:
    """What ``stylize_video`` wrote, with the temporal stability of the result."""

    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    encoder: str
    audio: str  # "copied", "transcoded to aac" or "none"
    input_flicker: float  # mean |frame[t] - frame[t-1]| of the input (after resizing), in [0, 1]
    output_flicker: float  # the same for the output
    temporal_stability: float | None  # output_flicker / input_flicker; 1.0 = no added flicker
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"], data["fps"] = str(self.path), str(self.fps)
        return data


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise SpectralStyleError(f"video {p} does not exist")
    if not p.is_file():
        raise SpectralStyleError(f"{p} is not a file")
    try:
        container = av.open(str(p), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise SpectralStyleError(f"{p} is not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise SpectralStyleError(f"{p} has no video stream")
    return container


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0][:160]


def _unreadable(path: str | Path, exc: BaseException) -> SpectralStyleError:
    return SpectralStyleError(f"{path} is not a readable video: decoding failed ({_reason(exc)})")


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate, frame count, duration and streams of a video; one clear error when it is not one.

    The frame count comes from demuxing the video packets (no decoding, fast): headers of edited or
    streamed files often omit it or get it wrong. Timestamps show whether the frame rate varies.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(packet.pts)
                elif packet.size:
                    pts.append(len(pts))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise _unreadable(path, exc) from None
        if not pts:
            raise SpectralStyleError(f"{path} has no video frames")
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise SpectralStyleError(f"{path} is not a readable video (no frame size)")
        pts.sort()
        steps = np.diff(np.asarray(pts, dtype=np.int64))
        time_base = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if len(pts) > 1 and steps.size and steps.min() > 0:
            # (last - first + one typical frame) as the span: frames / span is the average rate
            span = (pts[-1] - pts[0] + int(np.median(steps))) * time_base
            duration = float(span)
            fps = Fraction(len(pts), 1) / span if not rate else Fraction(rate)
        else:
            fps = Fraction(rate) if rate else Fraction(25, 1)
            duration = float(len(pts) / fps)
        variable = bool(steps.size > 1 and steps.max() - steps.min() > max(1, int(0.01 * np.median(steps))))
        if variable:
            fps = Fraction(len(pts), 1) / Fraction(duration).limit_denominator(1_000_000)
            fps = fps.limit_denominator(1001 * 1000)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=str(path), width=width, height=height, fps=fps, frames=len(pts), duration=round(duration, 6),
            has_audio=audio is not None, video_codec=stream.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None, variable_frame_rate=variable,
        )
    finally:
        container.close()


def output_size(width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
    """The size frames are processed at: downscaled to ``max_side`` (aspect kept), then made even.

    Even sides because H.264 in yuv420p stores colour at half resolution; an odd side loses its last
    pixel column or row (95x63 -> 94x62) rather than gaining a made-up one.
    """
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    return max(2, width - width % 2), max(2, height - height % 2)


def _to_tensor(frame: av.VideoFrame, size: tuple[int, int]) -> torch.Tensor:
    """[1, 3, H, W] float in [0, 1] at ``size``; odd sides cropped, larger frames downscaled (Lanczos via PIL)."""
    image = frame.to_image()  # RGB PIL image
    if image.size != size:
        w, h = image.size
        even = (w - w % 2, h - h % 2)
        if size == even:
            image = image.crop((0, 0, *size))
        else:
            image = image.resize(size, Image.LANCZOS)
    array = np.array(image, dtype=np.uint8)  # a writable copy for torch
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().clamp(0, 1).squeeze(0).permute(1, 2, 0).mul(255).round().to(torch.uint8).cpu().numpy()


def _decoded_frames(container: av.container.InputContainer, path: str | Path) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(container.streams.video[0])
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def sample_frames(path: str | Path, n: int, max_side: int | None = None) -> list[torch.Tensor]:
    """``n`` frames spread evenly from the first to the last (all of them if the video has fewer),
    each [1, 3, H, W] in [0, 1]; decoded in one pass, holding only the chosen frames."""
    if n < 1:
        raise SpectralStyleError(f"the number of frames to sample must be at least 1, got {n}")
    info = probe_video(path)
    count = min(n, info.frames)
    wanted = sorted({round(i * (info.frames - 1) / max(1, count - 1)) for i in range(count)})
    size = output_size(info.width, info.height, max_side)
    chosen: list[torch.Tensor] = []
    container = _open(path)
    try:
        for index, frame in enumerate(_decoded_frames(container, path)):
            if index in wanted:
                chosen.append(_to_tensor(frame, size))
                if len(chosen) == len(wanted):
                    break
    finally:
        container.close()
    if not chosen:
        raise SpectralStyleError(f"{path} has no decodable video frames")
    return chosen


def pick_encoder() -> str:
    """The first H.264 encoder this FFmpeg build has (PyAV's wheels carry libx264), else MPEG-4 part 2."""
    for name in VIDEO_ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.FFmpegError, ValueError):
            continue
    raise SpectralStyleError("this PyAV build has no H.264 or MPEG-4 encoder; install the PyAV wheel from PyPI")


class _Flicker:
    """Running mean absolute difference between consecutive frames (the temporal stability measure)."""

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.total = 0.0
        self.count = 0

    def add(self, frame: torch.Tensor) -> None:
        frame = frame.detach().float().cpu()
        if self.previous is not None:
            self.total += float((frame - self.previous).abs().mean())
            self.count += 1
        self.previous = frame

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


def temporal_stability(input_flicker: float, output_flicker: float) -> float | None:
    """Output flicker over input flicker (1.0 = the result changes from frame to frame as much as the input).

    A still input (no change at all) has no ratio: None, unless the output is still too (1.0).
    """
    if input_flicker > 0:
        return output_flicker / input_flicker
    return 1.0 if output_flicker == 0 else None


def stylize_video(
    src: str | Path,
    dst: str | Path,
    frame_fn: FrameFn,
    max_side: int | None = None,
    on_frame: ProgressFn | None = None,
    crf: int = 18,
) -> VideoResult:
    """Apply ``frame_fn`` ([1,3,H,W] in [0,1] -> the same shape) to every frame of ``src``; write an mp4 to ``dst``.

    Frames are decoded, processed and encoded one at a time. Each output frame keeps the timestamp of
    its input frame, so the frame count, the frame rate and variable frame rates are preserved; audio
    packets are copied between the video packets in the order they were read.
    ``on_frame(done, total)`` is called after each frame (for a progress bar).
    """
    start = time.perf_counter()
    info = probe_video(src)
    size = output_size(info.width, info.height, max_side)
    encoder = pick_encoder()
    dst = Path(dst)
    flicker_in, flicker_out = _Flicker(), _Flicker()
    audio_mode = "none"
    written = 0
    with stop_at_step_boundary(), atomic_path(dst) as tmp:  # SIGTERM like Ctrl-C: the temporary file is removed
        source = _open(src)
        try:
            output = av.open(str(tmp), mode="w", format="mp4")
            try:
                in_video = source.streams.video[0]
                time_base = in_video.time_base or Fraction(1, int(round(info.fps)) or 25)
                out_video = output.add_stream(encoder, rate=info.fps)
                out_video.width, out_video.height = size
                out_video.pix_fmt = "yuv420p"
                out_video.codec_context.time_base = time_base
                out_video.time_base = time_base
                if encoder in ("libx264", "h264"):
                    out_video.options = {"crf": str(crf), "preset": "medium"}
                elif encoder == "mpeg4":
                    out_video.options = {"qscale": "2"}
                    out_video.codec_context.qscale = 2
                in_audio = source.streams.audio[0] if source.streams.audio else None
                out_audio = None
                transcode_audio = False
                if in_audio is not None:
                    if in_audio.codec_context.name in MP4_AUDIO_CODECS:
                        out_audio = output.add_stream_from_template(in_audio)
                        audio_mode = "copied"
                    else:
                        out_audio = output.add_stream("aac", rate=in_audio.codec_context.sample_rate or 48000)
                        out_audio.layout = in_audio.codec_context.layout.name if in_audio.codec_context.layout else "stereo"
                        transcode_audio = True
                        audio_mode = "transcoded to aac"
                streams = [in_video] + ([in_audio] if in_audio is not None else [])
                last_pts: int | None = None
                try:
                    for packet in source.demux(*streams):
                        if packet.stream.type == "audio":
                            if packet.dts is None:
                                continue
                            if transcode_audio:
                                for audio_frame in packet.decode():
                                    audio_frame.pts = None  # the encoder numbers its samples itself
                                    output.mux(out_audio.encode(audio_frame))
                            else:
                                packet.stream = out_audio
                                output.mux(packet)
                            continue
                        for frame in packet.decode():
                            tensor = _to_tensor(frame, size)
                            result = frame_fn(tensor)
                            if tuple(result.shape[-2:]) != tuple(tensor.shape[-2:]):
                                raise ValueError(f"frame_fn changed the frame size from {tuple(tensor.shape[-2:])} "
                                                 f"to {tuple(result.shape[-2:])}")
                            flicker_in.add(tensor)
                            flicker_out.add(result)
                            out_frame = av.VideoFrame.from_ndarray(_to_uint8(result), format="rgb24")
                            pts = frame.pts if frame.pts is not None else written
                            if last_pts is not None and pts <= last_pts:  # duplicate timestamps would be dropped
                                pts = last_pts + 1
                            out_frame.pts, out_frame.time_base, last_pts = pts, time_base, pts
                            output.mux(out_video.encode(out_frame))
                            written += 1
                            if on_frame:
                                on_frame(written, info.frames)
                            raise_if_stop_requested()  # Ctrl-C / SIGTERM: no half-written mp4 under the final name
                except (av.FFmpegError, OSError) as exc:
                    if isinstance(exc, av.FFmpegError) or not getattr(exc, "filename", None):
                        raise _unreadable(src, exc) from None
                    raise
                output.mux(out_video.encode(None))
                if transcode_audio:
                    output.mux(out_audio.encode(None))
            finally:
                output.close()
        finally:
            source.close()
        if written == 0:
            raise SpectralStyleError(f"{src} has no decodable video frames")
    stability = temporal_stability(flicker_in.value, flicker_out.value)
    return VideoResult(
        path=dst, frames=written, width=size[0], height=size[1], fps=info.fps, encoder=encoder, audio=audio_mode,
        input_flicker=round(flicker_in.value, 6), output_flicker=round(flicker_out.value, 6),
        temporal_stability=None if stability is None else round(stability, 6), seconds=round(time.perf_counter() - start, 3),
    )


def frame_strip(path: str | Path, n: int = 6, height: int = 96) -> Image.Image:
    """``n`` evenly spread frames side by side at ``height`` pixels (for reports)."""
    frames = sample_frames(path, n)
    images = []
    for frame in frames:
        img = Image.fromarray(_to_uint8(frame))
        width = max(1, round(img.width * height / img.height))
        images.append(img.resize((width, height), Image.BICUBIC))
    strip = Image.new("RGB", (sum(i.width for i in images) + 2 * (len(images) - 1), height), "white")
    x = 0
    for img in images:
        strip.paste(img, (x, 0))
        x += img.width + 2
    return strip


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def video_flicker(path: str | Path, size: tuple[int, int]) -> float:
    """Mean |frame[t] - frame[t-1]| of a video at ``size`` (width, height), streamed: the measure behind
    ``temporal_stability`` for a video whose sidecar does not record it (evaluate)."""
    flicker = _Flicker()
    container = _open(path)
    try:
        for frame in _decoded_frames(container, path):
            flicker.add(_to_tensor(frame, size))
    finally:
        container.close()
    return flicker.value
