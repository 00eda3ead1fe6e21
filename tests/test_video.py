"""video.py on clips generated with PyAV: frames, timestamps, sizes and audio survive; bad input is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from spectralstyle.apply.frames import stylize_video
from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.temporal import temporal_stability
from spectralstyle.media.video import output_size, probe_video, sample_frames
from videos import make_video, read_frames

SRC = str(Path(__file__).resolve().parents[1] / "src")
TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The issue's clip: 24 frames, 96x64, 12 fps, AAC audio."""
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_probe_reports_size_rate_count_and_audio(clip):
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 24, Fraction(12))
    assert info.has_audio and info.audio_codec == "aac" and not info.variable_frame_rate
    assert info.duration == pytest.approx(2.0)


def test_stylize_keeps_frames_rate_timestamps_and_copies_audio(clip, tmp_path):
    dst = tmp_path / "out.mp4"
    seen = []
    result = stylize_video(clip, dst, lambda x: 1 - x, on_frame=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (24, 24) and result.frames == 24
    out = probe_video(dst)
    assert (out.width, out.height, out.frames, out.fps) == (96, 64, 24, Fraction(12)) and out.has_audio
    frames_in, times_in = read_frames(clip)
    frames_out, times_out = read_frames(dst)
    assert times_out == pytest.approx(times_in)
    # the function was applied (inverted colours), up to H.264 loss
    diff = np.abs(255 - frames_in[5].astype(int) - frames_out[5].astype(int)).mean()
    assert diff < 6
    assert result.audio == "copied"
    with av.open(str(clip)) as a, av.open(str(dst)) as b:
        packets_in = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        packets_out = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert packets_out == packets_in  # remuxed, not re-encoded
    # inverting colours changes no frame-to-frame difference: no added flicker
    assert result.temporal_stability == pytest.approx(1.0, abs=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name != "out.mp4"]


def test_temporal_stability_measures_added_flicker(clip, tmp_path):
    calls = iter(range(1000))
    flicker = lambda x: (x + (0.2 if next(calls) % 2 else 0.0)).clamp(0, 1)  # noqa: E731
    result = stylize_video(clip, tmp_path / "f.mp4", flicker)
    frames = [f.squeeze(0) for f in sample_frames(clip, 24)]
    outputs = [(f + (0.2 if i % 2 else 0.0)).clamp(0, 1) for i, f in enumerate(frames)]
    mad = lambda seq: np.mean([float((b - a).abs().mean()) for a, b in zip(seq, seq[1:])])  # noqa: E731
    assert result.temporal_stability == pytest.approx(mad(outputs) / mad(frames), rel=1e-3)
    assert result.temporal_stability > 3
    assert temporal_stability(0.0, 0.0) == 1.0 and temporal_stability(0.0, 0.1) is None


def test_odd_size_without_audio(tmp_path):
    src = make_video(tmp_path / "odd.mp4", width=95, height=63, audio=False)
    result = stylize_video(src, tmp_path / "odd_out.mp4", lambda x: x)
    out = probe_video(tmp_path / "odd_out.mp4")
    assert (out.width, out.height, out.frames) == (94, 62, 24) and not out.has_audio
    assert result.audio == "none"
    assert output_size(95, 63) == (94, 62) and output_size(1920, 1080, 95) == (94, 52)


def test_max_side_and_audio_transcoded_from_pcm(tmp_path):
    src = make_video(tmp_path / "pcm.mov", audio_codec="pcm_s16le")
    result = stylize_video(src, tmp_path / "small.mp4", lambda x: x, max_side=48)
    out = probe_video(tmp_path / "small.mp4")
    assert (out.width, out.height, out.frames) == (48, 32, 24)
    assert result.audio == "transcoded to aac" and out.audio_codec == "aac"


def test_variable_frame_rate_keeps_timestamps(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 420, 440, 460, 700, 740, 780]
    src = make_video(tmp_path / "vfr.mp4", frames=12, pts_ms=pts)
    assert probe_video(src).variable_frame_rate
    stylize_video(src, tmp_path / "vfr_out.mp4", lambda x: x)
    _, times = read_frames(tmp_path / "vfr_out.mp4")
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    assert probe_video(tmp_path / "vfr_out.mp4").frames == 12


def test_sample_frames_spread_evenly(clip):
    frames = sample_frames(clip, 4, max_side=48)
    assert len(frames) == 4 and frames[0].shape == (1, 3, 32, 48)
    # the moving square: first and last sampled frames are frames 0 and 23
    all_frames = sample_frames(clip, 100)
    assert len(all_frames) == 24
    assert torch.equal(sample_frames(clip, 2)[1], all_frames[23])


@pytest.mark.parametrize("content", [b"not a video at all", None])
def test_corrupt_video_is_one_line_error(tmp_path, clip, content):
    bad = tmp_path / "bad.mp4"
    data = clip.read_bytes()
    bad.write_bytes(content if content is not None else data[: len(data) // 2])
    for call in (lambda: probe_video(bad), lambda: sample_frames(bad, 2),
                 lambda: stylize_video(bad, tmp_path / "o.mp4", lambda x: x)):
        with pytest.raises(SpectralStyleError) as err:
            call()
        assert "bad.mp4" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(SpectralStyleError, match="does not exist"):
        probe_video(tmp_path / "missing.mp4")


SLOW_STYLIZE = """
import sys, time
from spectralstyle.apply.frames import stylize_video
def slow(x):
    print("frame", flush=True)
    time.sleep(0.3)
    return x
stylize_video(sys.argv[1], sys.argv[2], slow)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_mp4(tmp_path, clip, sig):
    dst = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS])}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_STYLIZE, str(clip), str(dst)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "frame"
        time.sleep(0.4)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temporary file
