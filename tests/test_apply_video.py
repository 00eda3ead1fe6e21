"""`apply` on videos and folders, and `evaluate` on the video it wrote (random weights, tiny sizes)."""

from __future__ import annotations

import csv
import json
from fractions import Fraction

import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.media.video import probe_video
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.runs.outputs import save_stylenet
from videos import make_video

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_apply_folder_with_video_and_image_then_evaluate(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "clip_pop-art_c2.stylenet.pt"
    save_stylenet(StyleNet(ngf=4), model, {"text": "pop art", "band": "c2", "config": {"contrast": 1.5}})
    inputs = tmp_path / "in"
    inputs.mkdir()
    make_video(inputs / "clip.mp4")
    Image.new("RGB", (40, 24), (200, 40, 40)).save(inputs / "still.png")
    (inputs / "notes.txt").write_text("not media")
    out = tmp_path / "out"
    res = invoke("apply", model, inputs, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    video = out / "clip_clip_pop-art_c2_applied.mp4"
    info = probe_video(video)
    assert (info.frames, info.fps, info.width, info.height, info.has_audio) == (24, Fraction(12), 96, 64, True)
    sidecar = json.loads(video.with_suffix(".json").read_text())
    assert sidecar["temporal_stability"] > 0 and sidecar["video"]["frames"] == 24 and sidecar["text"] == "pop art"
    assert Image.open(out / "still_clip_pop-art_c2_applied.png").size == (40, 24)
    assert "temporal stability" in res.output

    report = tmp_path / "eval"
    res = invoke("evaluate", video, "--weights", "random", "--device", "cpu", "--out", report)
    assert res.exit_code == 0, res.output
    html = (report / "report.html").read_text()
    assert "temporal stability" in html and "clip_clip_pop-art_c2_applied.mp4" in html
    with open(report / "metrics.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["temporal_stability"]) == sidecar["temporal_stability"]
    assert row["ssim"] != ""  # compared with the source video's frames


def test_apply_errors_name_the_right_options(tmp_path):
    model = tmp_path / "m.stylenet.pt"
    save_stylenet(StyleNet(ngf=4), model, {})
    make_video(tmp_path / "clip.mp4", frames=2, audio=False)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    for args, message in (([bad], "bad.mp4 is not a readable video"),
                          ([tmp_path / "clip.mp4", "--tile", "100"], "--tile"),
                          ([tmp_path / "missing"], "does not exist"),
                          ([tmp_path / "clip.mp4", "--norm-stats", "x"], "--norm-stats")):
        res = invoke("apply", model, *args, "--out", tmp_path / "o", "--device", "cpu")
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert not list((tmp_path / "o").glob("*.mp4")) if (tmp_path / "o").exists() else True


def test_out_of_memory_names_tile_and_max_side(tmp_path, monkeypatch):
    """The device's allocator fails inside the tiled pass: the one-line error names apply's own options."""
    import spectralstyle.apply.images as applying

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(applying, "stylize_large", exhausted)
    model = tmp_path / "m.stylenet.pt"
    save_stylenet(StyleNet(ngf=4), model, {})
    Image.new("RGB", (40, 24)).save(tmp_path / "a.png")
    res = invoke("apply", model, tmp_path / "a.png", "--out", tmp_path / "o", "--device", "cpu", "--tile", "512")
    assert res.exit_code == 2 and "--tile (now 512)" in res.output and "--max-side" in res.output
    assert "--size" not in res.output and "--crops" not in res.output
