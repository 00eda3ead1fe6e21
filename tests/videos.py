"""Small test videos made with PyAV: moving shapes, optional AAC audio, odd sizes, variable frame rate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_video(path: Path, frames: int = 24, width: int = 96, height: int = 64, fps: int = 12,
               audio: bool = True, pts_ms: list[int] | None = None, audio_codec: str = "aac", rotation: int = 0,
               audio_tracks: int = 1) -> Path:
    """A clip of a square moving over a gradient; ``pts_ms`` gives each frame's time (variable frame rate);
    ``rotation`` sets the display matrix as phones do (counter-clockwise degrees); ``audio_tracks`` tones."""
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p" if width % 2 or height % 2 else "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        if pts_ms is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        sounds = []
        for _ in range(audio_tracks if audio else 0):
            sound = out.add_stream(audio_codec, rate=16000)
            sound.layout = "mono"
            sounds.append(sound)
        x = np.linspace(0, 255, width, dtype=np.float32)
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = x[None, :]
            img[..., 1] = (i * 9) % 256
            img[..., 2] = 128
            left = (i * 3) % max(1, width - 16)
            img[height // 4: height // 4 + 16, left:left + 16] = (250, 30, 30)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        for track, sound in enumerate(sounds):
            seconds = (pts_ms[-1] / 1000 if pts_ms else frames / fps)
            samples = int(16000 * seconds)
            t = np.arange(samples) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * (track + 1) * t)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start:start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
                frame.sample_rate = 16000
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def read_frames(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """All frames (RGB uint8) and their times in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
    return frames, times
