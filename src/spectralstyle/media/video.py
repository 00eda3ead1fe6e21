"""Video containers with PyAV (FFmpeg in its wheel): probing, decoding frames, and writing an mp4.

Why PyAV and not an ``ffmpeg`` binary: the binary may be missing, and a library lets us stream frames
through a StyleNet without ever holding the whole video in memory. ``VideoWriter`` keeps what a user
expects of a "filter" (``apply/frames.py`` is the pipeline that uses it): the display rotation of a
phone video (its display matrix, so it plays upright as the input does), and every audio track, copied
packet by packet (or transcoded to AAC when MP4 cannot hold the codec), and every subtitle or data
stream MP4 can hold; a stream it cannot is dropped with one note naming it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from spectralstyle.errors import SpectralStyleError

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")  # GIFs are images here
# Audio codecs the MP4 muxer stores as they are; anything else (PCM, Vorbis, ...) is transcoded to AAC.
MP4_AUDIO_CODECS = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")
# H.264 encoders in order of preference; mpeg4 (part 2) is in every FFmpeg build as a last resort.
VIDEO_ENCODERS = ("libx264", "h264", "libopenh264", "mpeg4")


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
    rotation: int = 0  # counter-clockwise degrees of the display matrix (phones: 90, 180, 270)
    audio_streams: int = 0
    other_streams: tuple[str, ...] = field(default=())  # subtitle/data/extra video streams, as "type codec"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = str(self.fps)
        return data


def open_video(path: str | Path) -> av.container.InputContainer:
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


def unreadable(path: str | Path, exc: BaseException) -> SpectralStyleError:
    return SpectralStyleError(f"{path} is not a readable video: decoding failed ({_reason(exc)})")


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate, frame count, duration and streams of a video; one clear error when it is not one.

    The frame count comes from demuxing the video packets (no decoding, fast): headers of edited or
    streamed files often omit it or get it wrong. Timestamps show whether the frame rate varies.
    """
    container = open_video(path)
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
            raise unreadable(path, exc) from None
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
        others = tuple(f"{st.type} {_codec_name(st)}" for st in container.streams
                       if st.type not in ("audio",) and st is not stream)
        return VideoInfo(
            path=str(path), width=width, height=height, fps=fps, frames=len(pts), duration=round(duration, 6),
            has_audio=audio is not None, video_codec=stream.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None, variable_frame_rate=variable,
            rotation=display_rotation(path), audio_streams=len(container.streams.audio), other_streams=others,
        )
    finally:
        container.close()


def _codec_name(stream: Any) -> str:
    context = getattr(stream, "codec_context", None)
    return getattr(context, "name", None) or getattr(stream, "codec_tag", None) or "unknown"


def display_rotation(path: str | Path) -> int:
    """The display rotation of the first video frame (counter-clockwise degrees, 0/90/180/270), from its
    display matrix: phones store portrait video as landscape frames plus this rotation."""
    container = open_video(path)
    try:
        for frame in decoded_frames(container, path):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    finally:
        container.close()
    return 0


def output_size(width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
    """The size frames are processed at: downscaled to ``max_side`` (aspect kept), then made even.

    Even sides because H.264 in yuv420p stores colour at half resolution; an odd side loses its last
    pixel column or row (95x63 -> 94x62) rather than gaining a made-up one.
    """
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    return max(2, width - width % 2), max(2, height - height % 2)


def frame_to_tensor(frame: av.VideoFrame, size: tuple[int, int]) -> torch.Tensor:
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


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().clamp(0, 1).squeeze(0).permute(1, 2, 0).mul(255).round().to(torch.uint8).cpu().numpy()


def decoded_frames(container: av.container.InputContainer, path: str | Path) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(container.streams.video[0])
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise unreadable(path, exc) from None


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
    container = open_video(path)
    try:
        for index, frame in enumerate(decoded_frames(container, path)):
            if index in wanted:
                chosen.append(frame_to_tensor(frame, size))
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


def frame_strip(path: str | Path, n: int = 6, height: int = 96) -> Image.Image:
    """``n`` evenly spread frames side by side at ``height`` pixels (for reports)."""
    frames = sample_frames(path, n)
    images = []
    for frame in frames:
        img = Image.fromarray(tensor_to_uint8(frame))
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


class VideoWriter:
    """An mp4 written frame by frame: H.264 (else MPEG-4) video at the timestamps given, the input's display
    rotation, and the input's other streams carried over (see the module docstring). ``notes`` name every
    stream that could not be kept; ``audio`` says what happened to each audio track."""

    def __init__(self, source: av.container.InputContainer, path: Path, size: tuple[int, int], fps: Fraction,
                 time_base: Fraction, rotation: int = 0, crf: int = 18) -> None:
        self.encoder = pick_encoder()
        self.output = av.open(str(path), mode="w", format="mp4")
        self.notes: list[str] = []
        self.audio: list[str] = []
        self.carried: dict[int, tuple[Any, bool]] = {}  # input stream index -> (output stream, transcode)
        video = self.output.add_stream(self.encoder, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        video.time_base = time_base
        if self.encoder in ("libx264", "h264"):
            video.options = {"crf": str(crf), "preset": "medium"}
        elif self.encoder == "mpeg4":
            video.options = {"qscale": "2"}
            video.codec_context.qscale = 2
        if rotation:
            video.set_display_rotation(rotation)  # the same display matrix: plays upright as the input does
        self.video, self.time_base = video, time_base
        first_video = source.streams.video[0]
        for stream in source.streams:
            if stream is not first_video:
                self._carry(stream)

    def _carry(self, stream: Any) -> None:
        name = _codec_name(stream)
        label = f"{stream.type} stream {stream.index} ({name})"
        try:
            if stream.type == "audio" and name in MP4_AUDIO_CODECS:
                self.carried[stream.index] = (self.output.add_stream_from_template(stream), False)
                self.audio.append("copied")
            elif stream.type == "audio":
                out = self.output.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
                out.layout = stream.codec_context.layout.name if stream.codec_context.layout else "stereo"
                self.carried[stream.index] = (out, True)
                self.audio.append("transcoded to aac")
            elif stream.type in ("subtitle", "data") and name in self.output.supported_codecs:
                self.carried[stream.index] = (self.output.add_stream_from_template(stream), False)
            else:
                reason = "only the first video stream is stylised" if stream.type == "video" else "MP4 cannot hold it"
                self.notes.append(f"{label} dropped: {reason}")
        except (av.FFmpegError, ValueError, TypeError) as exc:
            self.notes.append(f"{label} dropped: {_reason(exc)}")

    def streams_to_read(self, source: av.container.InputContainer) -> list[Any]:
        """The input streams to demux: the video and every carried stream."""
        return [source.streams.video[0]] + [st for st in source.streams if st.index in self.carried]

    def write_packet(self, packet: av.Packet) -> None:
        """A packet of a carried (non-video) stream, copied or transcoded."""
        out, transcode = self.carried[packet.stream.index]
        if packet.dts is None:
            return
        if transcode:
            for audio_frame in packet.decode():
                audio_frame.pts = None  # the encoder numbers its samples itself
                self.output.mux(out.encode(audio_frame))
        else:
            packet.stream = out
            self.output.mux(packet)

    def write_frame(self, rgb: np.ndarray, pts: int) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        self.output.mux(self.video.encode(frame))

    def finish(self) -> None:
        """Flush the encoders (call once, after the last frame)."""
        self.output.mux(self.video.encode(None))
        for out, transcode in self.carried.values():
            if transcode:
                self.output.mux(out.encode(None))

    def close(self) -> None:
        self.output.close()

    @property
    def audio_summary(self) -> str:
        """"none", "copied", "transcoded to aac", or one word per track ("2 tracks: copied, copied")."""
        if not self.audio:
            return "none"
        return self.audio[0] if len(self.audio) == 1 else f"{len(self.audio)} tracks: {', '.join(self.audio)}"
