"""`batch --mode train`: one style model per (prompt, band) over a shared image folder, resumable."""

from __future__ import annotations

import json

import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.batch.manifest import read_manifest
from spectralstyle.batch.plan import make_train_plan
from spectralstyle.cli.app import app
from spectralstyle.runs.train import TrainSettings
from spectralstyle.settings import TransferConfig

runner = CliRunner()
TINY = ["--weights", "random", "--steps", "1", "--size", "32x32", "--crops", "1", "--crop-size", "16",
        "--device", "cpu", "--batch", "2", "--preview", "2"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_two_prompts_train_two_models_and_a_rerun_skips_them(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(3):
        Image.new("RGB", (40, 32), (60 * k, 120, 200 - 50 * k)).save(photos / f"p{k}.png")
    out = tmp_path / "o"
    res = invoke("batch", photos, "--out", out, "--mode", "train", "--text", "pop art", "--text", "neon art", *TINY)
    assert res.exit_code == 0, res.output
    for stem in ("pop-art_c2", "neon-art_c2"):
        assert (out / f"{stem}.stylenet.pt").is_file() and (out / f"{stem}_preview.png").is_file()
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["status"] == "finished" and len(record["images"]) == 3
        assert torch.load(out / f"{stem}.stylenet.pt", weights_only=True)["format"] == "spectralstyle-stylenet-1"
    assert not list(out.glob("p0_*"))  # no per-image transfer results
    states = read_manifest(out)
    assert sorted(s["status"] for s in states.values()) == ["finished", "finished"]
    before = (out / "pop-art_c2.stylenet.pt").stat().st_mtime_ns
    res = invoke("batch", photos, "--out", out, "--mode", "train", "--text", "pop art", "--text", "neon art", *TINY)
    assert res.exit_code == 0, res.output
    assert "0 finished, 2 skipped" in res.output
    assert (out / "pop-art_c2.stylenet.pt").stat().st_mtime_ns == before
    # other training settings are other models: the same command with --batch 3 runs again
    changed = invoke("batch", photos, "--out", out, "--mode", "train", "--text", "pop art", *TINY, "--batch", "3",
                     "--dry-run")
    assert changed.exit_code == 0 and "run (new)" in changed.output


def test_train_plan_is_one_job_per_prompt_and_band_and_names_the_image_set(tmp_path):
    for k in range(2):
        Image.new("RGB", (32, 32)).save(tmp_path / f"x{k}.png")
    config = TransferConfig(weights="random", width=32, height=32, crop_size=16)
    plan = make_train_plan(tmp_path, ["a", "b"], ["c2", "none"], config, TrainSettings(batch=2))
    assert [(j.text, j.band, j.stem) for j in plan] == [("a", "c2", "a_c2"), ("a", "none", "a_none"),
                                                         ("b", "c2", "b_c2"), ("b", "none", "b_none")]
    assert all(len(j.train_images) == 2 for j in plan)
    Image.new("RGB", (32, 32)).save(tmp_path / "x2.png")  # another image: other models, other job ids
    again = make_train_plan(tmp_path, ["a", "b"], ["c2", "none"], config, TrainSettings(batch=2))
    assert not {j.job_id for j in plan} & {j.job_id for j in again}


def test_bad_mode_is_one_line(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    res = invoke("batch", tmp_path, "--out", tmp_path / "o", "--mode", "movie", "--text", "a", "--weights", "random")
    assert res.exit_code == 2 and "--mode" in res.output and res.output.strip().count("\n") == 0
