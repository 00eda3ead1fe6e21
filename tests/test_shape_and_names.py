"""Issue 19, items 1 and 3, through the commands: a photo comes back in its own shape and size, and no
command's result replaces another's (random weights, 160x120 photos, --size 64, one step, 2 crops)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.media.images import finish_image, load_image, read_png_metadata, to_pil

TINY = ["--weights", "random", "--steps", "1", "--size", "64", "--crops", "2", "--crop-size", "32", "--device", "cpu"]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("shared_random_models")


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def photo(path, seed=0, size=(160, 120)):
    """A photo-like 4:3 JPEG: a colour ramp plus noise (each seed its own picture)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, size[0])[None, :, None]
    pixels = np.clip(x * np.array([1.0, 0.5, 0.2]) + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)
    return path


def test_a_160x120_photo_at_size_64_is_optimised_at_64x48_and_comes_back_at_160x120(tmp_path):
    content, out = photo(tmp_path / "photo.jpg"), tmp_path / "out"
    result = invoke("transfer", content, "pop art", *TINY, "--save-model", "--out", out)
    png, sidecar = out / "photo_pop-art_c2.png", out / "photo_pop-art_c2.json"
    record = json.loads(sidecar.read_text())
    assert (record["working_size"], record["output_size"], record["content_size"]) == ([64, 48], [160, 120], [160, 120])
    assert (record["config"]["width"], record["config"]["height"]) == (64, 48)
    assert Image.open(png).size == (160, 120)
    assert read_png_metadata(png)["output_size"] == [160, 120]
    assert str(png) in result.stdout.splitlines() and str(sidecar) in result.stdout.splitlines()  # paths on stdout
    assert "wrote" not in result.stdout  # progress and messages stay on stderr
    # the result is the trained network applied to the photo itself (an untiled pass, computed here)
    from spectralstyle.apply.images import load_stylenet

    net, _ = load_stylenet(out / "photo_pop-art_c2.stylenet.pt")
    with torch.no_grad():
        expected = np.asarray(to_pil(finish_image(net.stylize(load_image(content)), record["config"]["contrast"])))
    assert np.abs(np.asarray(Image.open(png)).astype(int) - expected.astype(int)).max() <= 1
    # --output-size working: the optimised 64x48 image itself
    invoke("transfer", content, "pop art", *TINY, "--output-size", "working", "--out", tmp_path / "w")
    assert Image.open(tmp_path / "w" / "photo_pop-art_c2.png").size == (64, 48)


def test_batch_resolves_the_working_size_per_photo_as_transfer_does(tmp_path):
    from spectralstyle.batch.plan import make_plan
    from spectralstyle.settings import resolve_config

    folder = tmp_path / "photos"
    folder.mkdir()
    photo(folder / "wide.jpg"), photo(folder / "tall.jpg", size=(120, 160))
    config = resolve_config(size="64", crop_size=32, weights="random")
    plan = {job.name: job for job in make_plan(folder, ["pop art"], ["c2"], config, tmp_path / "out")}
    assert plan["wide.jpg"].config.size == (64, 48) and plan["tall.jpg"].config.size == (48, 64)
    assert plan["wide.jpg"].config_hash == config.for_content((160, 120)).digest()  # transfer's hash of that photo


def test_apply_and_a_second_train_replace_nothing(tmp_path):
    """The issue's acceptance: train's pop-art_c2 applied to photo.jpg beside transfer's photo_pop-art_c2.png,
    and a second train with other images."""
    content, other, out = photo(tmp_path / "photo.jpg"), photo(tmp_path / "other.jpg", seed=1), tmp_path / "out"
    invoke("train", "pop art", "--images", content, *TINY, "--preview", "0", "--out", out)
    invoke("transfer", content, "pop art", *TINY, "--out", out)
    model, transferred = out / "pop-art_c2.stylenet.pt", out / "photo_pop-art_c2.png"
    kept = {path: path.read_bytes() for path in (model, transferred, out / "photo_pop-art_c2.json")}

    applied = invoke("apply", model, content, "--device", "cpu", "--out", out)
    target = out / "photo_pop-art_c2_applied.png"
    assert applied.stdout.splitlines() == [str(target)] and Image.open(target).size == (160, 120)
    assert read_png_metadata(target)["kind"] == "applied"
    again = invoke("apply", model, content, "--device", "cpu", "--out", out)  # the same command: the same name
    assert again.stdout.splitlines() == [str(target)] and "note" not in again.output
    weaker = invoke("apply", model, content, "--device", "cpu", "--out", out, "--strength", "0.5")
    beside = Path(weaker.stdout.strip())  # other settings: beside it, under 8 hex digits of their hash
    assert re.fullmatch(r"photo_pop-art_c2_applied_[0-9a-f]{8}\.png", beside.name), beside
    assert "apply " in (out / "spectralstyle.log").read_text()  # apply logs into OUT as every command does

    second = invoke("train", "pop art", "--images", other, *TINY, "--preview", "0", "--out", out)
    assert "holds the result of other settings or inputs" in second.output
    assert all(path.read_bytes() == data for path, data in kept.items())  # nothing replaced
    (new_model,) = [p for p in out.glob("pop-art_c2_*.stylenet.pt")]
    assert str(new_model) in second.stdout.splitlines()
    assert json.loads(new_model.with_suffix("").with_suffix(".json").read_text())["images"] == [str(other.resolve())]
    assert json.loads((out / "pop-art_c2.json").read_text())["images"] == [str(content.resolve())]
    # --overwrite replaces, as it says
    invoke("train", "pop art", "--images", other, *TINY, "--preview", "0", "--out", out, "--overwrite")
    assert json.loads((out / "pop-art_c2.json").read_text())["images"] == [str(other.resolve())]


def test_generate_with_other_settings_keeps_the_first_image(tmp_path):
    out = tmp_path / "out"
    tiny = ["--weights", "random", "--device", "cpu", "--size", "32x32", "--cutouts", "2", "--out", out]
    invoke("generate", "a lighthouse", *tiny, "--steps", "1")
    first = (out / "a-lighthouse_fourier_c2.png").read_bytes()
    second = invoke("generate", "a lighthouse", *tiny, "--steps", "2")
    assert "holds the result of other settings or inputs" in second.output
    assert (out / "a-lighthouse_fourier_c2.png").read_bytes() == first
    (moved,) = [line for line in second.stdout.splitlines() if line.endswith(".png")]
    assert moved != str(out / "a-lighthouse_fourier_c2.png") and read_png_metadata(moved)["config"]["steps"] == 2


def test_one_commands_record_is_never_another_commands_run(tmp_path):
    """A video (or generation) never takes a transfer's name, even with the same inputs, text and hash."""
    from spectralstyle.record import RunRecord
    from spectralstyle.runs.naming import free_stem, same_run

    data = {"content": str((tmp_path / "clip.mp4").resolve()), "text": "pop art", "config_hash": "abc"}
    (tmp_path / "clip_pop-art_c2.json").write_text(json.dumps(data))
    record = RunRecord.from_dict(data)
    assert same_run(record, tmp_path / "clip.mp4", "pop art", "abc")
    assert not same_run(record, tmp_path / "clip.mp4", "pop art", "abc", kind="video")
    assert free_stem(tmp_path, "clip_pop-art_c2", tmp_path / "clip.mp4", "pop art", "abc") == "clip_pop-art_c2"
    assert free_stem(tmp_path, "clip_pop-art_c2", tmp_path / "clip.mp4", "pop art", "abc",
                     kind="video") != "clip_pop-art_c2"


def test_demo_stylises_the_shipped_sample_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("demo", *TINY, "--output-size", "working")
    (image,) = [line for line in result.stdout.splitlines() if line.endswith(".png")]
    assert image == "outputs/coffee_pop-art_c2.png" and Image.open(image).size == (64, 40)  # 512x341 at --size 64
