"""`spectralstyle video`: the issue's acceptance command on a generated clip, and its one-line errors."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.media.video import probe_video
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.runs.video import default_training_size
from videos import make_video, read_frames

runner = CliRunner()
ACCEPTANCE = ["--weights", "random", "--steps", "3", "--size", "64x64", "--crops", "2", "--crop-size", "32",
              "--train-frames", "4", "--batch", "2", "--device", "cpu"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """24 frames, 96x64, 12 fps, with an AAC audio track."""
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_acceptance_video_keeps_frames_rate_audio_and_reports_stability(clip, tmp_path):
    out = tmp_path / "o"
    res = invoke("video", clip, "pop art", *ACCEPTANCE, "--out", out)
    assert res.exit_code == 0, res.output
    video, model, sidecar = (out / "clip_pop-art_c2.mp4", out / "clip_pop-art_c2.stylenet.pt",
                             out / "clip_pop-art_c2.json")
    info = probe_video(video)
    assert (info.frames, info.fps, info.width, info.height) == (24, Fraction(12), 96, 64)
    assert info.has_audio
    frames, _ = read_frames(video)
    source, _ = read_frames(clip)
    assert len(frames) == 24 and any((f.astype(int) - s).__abs__().mean() > 2 for f, s in zip(frames, source))
    record = json.loads(sidecar.read_text())
    assert record["status"] == "finished" and record["kind"] == "video" and record["train_frames"] == 4
    assert record["temporal_stability"] == record["video"]["temporal_stability"] > 0
    assert record["video"]["audio"] == "copied" and [r["step"] for r in record["losses"]] == [1, 2, 3]
    assert (record["config"]["width"], record["config"]["height"]) == (64, 64)
    saved = torch.load(model, weights_only=True)  # the kept model is apply's format
    StyleNet(ngf=saved["ngf"]).load_state_dict(saved["state_dict"])
    assert (out / "clip_pop-art_c2_preview.png").is_file()
    assert not list(out.glob(".*tmp*"))


def test_corrupt_or_missing_video_and_bad_options_are_one_line(tmp_path, clip):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    cases = [([broken, "pop art"], "not a readable video"), ([tmp_path / "none.mp4", "pop art"], "does not exist"),
             ([clip, "pop art", "--train-frames", "0"], "--train-frames"),
             ([clip, "pop art", "--size", "60x64"], "multiples of 8")]
    for args, message in cases:
        res = invoke("video", *args, "--weights", "random", "--out", tmp_path / "o")
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output and res.output.strip().count("\n") == 0
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.mp4"))


def test_default_training_size_keeps_the_aspect_in_multiples_of_8():
    assert default_training_size(1920, 1080) == (512, 288)
    assert default_training_size(96, 64) == (96, 64)  # never upscaled
    assert default_training_size(95, 63) == (96, 64)
    assert default_training_size(1080, 1920) == (288, 512)
    assert default_training_size(4000, 50) == (512, 16)
