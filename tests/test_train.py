"""`spectralstyle train` and the multi-image loss, with random weights on tiny sizes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.media.images import read_png_metadata
from spectralstyle.method.augment import PatchAugmenter
from spectralstyle.method.vgg import load_vgg_content
from spectralstyle.runs.models import Models
from spectralstyle.runs.train import TrainSettings, TrainState, run_train_job, train_digest, train_stylenet
from spectralstyle.settings import TransferConfig

TINY = ["--weights", "random", "--steps", "2", "--size", "32x32", "--crops", "1", "--crop-size", "16",
        "--device", "cpu"]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def models(narrow_clip) -> Models:
    return Models(narrow_clip, load_vgg_content("random"), torch.device("cpu"), "random")


def tiny_config(**changes) -> TransferConfig:
    settings = dict(weights="random", device="cpu", steps=2, width=32, height=32, crops=1, crop_size=16)
    return TransferConfig(**{**settings, **changes})


def photos(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, 32, 32, generator=g) for _ in range(n)]


@pytest.fixture()
def image_dir(tmp_path) -> Path:
    folder = tmp_path / "set"
    folder.mkdir()
    for k, (w, h) in enumerate(((40, 32), (32, 48), (56, 40))):  # different sizes: all resized to --size
        g = torch.Generator().manual_seed(k)
        pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"photo{k}.png")
    return folder


def test_batch_loss_is_mean_of_single_image_losses(models):
    """Each image of a batch is scored against its OWN source and content features, as transfer would."""
    config = tiny_config()
    loss = models.loss_for(config)
    contents = torch.cat(photos(3))
    outputs = torch.sigmoid(torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    augment = PatchAugmenter(4, 16, 0.5, seed=3)
    crops = [augment(outputs[i:i + 1]) for i in range(3)]
    loss.prepare_text("pop art")
    sources, targets = loss.content_targets(contents)
    batched = loss.batch_terms(outputs, torch.cat(crops), sources, targets).as_floats()
    singles = []
    for i in range(3):  # transfer's single-image loss, on the same crops
        loss.prepare(contents[i:i + 1], "pop art")
        singles.append(loss(outputs[i:i + 1], crops[i]).as_floats())
    for name in ("total", "patch", "global", "content", "tv"):
        expected = sum(s[name] for s in singles) / 3
        assert batched[name] == pytest.approx(expected, rel=1e-5, abs=1e-7), name
    # the features must belong to their own image: a batch scored against rotated targets differs
    rotated = loss.batch_terms(outputs, torch.cat(crops), sources.roll(1, 0), [t.roll(1, 0) for t in targets])
    assert rotated.as_floats()["global"] != pytest.approx(batched["global"], rel=1e-6)
    assert rotated.as_floats()["content"] != pytest.approx(batched["content"], rel=1e-6)


def test_same_seed_repeats_and_resume_continues_exactly(models):
    config, settings = tiny_config(steps=2), TrainSettings(batch=2, train_width=24, train_height=24)
    contents = photos(3)
    first = train_stylenet(contents, "pop art", config, models, settings)
    again = train_stylenet(contents, "pop art", config, models, settings)
    assert [r["total"] for r in again.history] == [r["total"] for r in first.history]
    saved: dict = {}
    partial = train_stylenet(contents, "pop art", config.replace(steps=1), models, settings,
                             after_step=lambda state: saved.update(state.state_dict()))
    assert partial.steps_done == 1
    buffer = io.BytesIO()  # a checkpoint round trip, readable with weights_only
    torch.save(saved, buffer)
    buffer.seek(0)
    state = TrainState.new(config, models.device)
    state.load_state_dict(torch.load(buffer, weights_only=True))
    resumed = train_stylenet(contents, "pop art", config, models, settings, state=state)
    assert [r["total"] for r in resumed.history] == [r["total"] for r in first.history]
    for a, b in zip(resumed.net.state_dict().values(), first.net.state_dict().values()):
        assert torch.equal(a, b)


def test_train_cli_writes_model_sidecar_preview_that_apply_loads(image_dir, tmp_path):
    out = tmp_path / "o"
    res = invoke("train", "pop art", "--images", image_dir, *TINY, "--batch", "2", "--out", out)
    assert res.exit_code == 0, res.output
    model, sidecar, preview = out / "pop-art_c2.stylenet.pt", out / "pop-art_c2.json", out / "pop-art_c2_preview.png"
    assert model.is_file() and sidecar.is_file() and preview.is_file()
    record = json.loads(sidecar.read_text())
    assert record["status"] == "finished" and record["text"] == "pop art" and record["band"] == "c2"
    assert [Path(p).name for p in record["images"]] == ["photo0.png", "photo1.png", "photo2.png"]
    assert [r["step"] for r in record["losses"]] == [1, 2] and record["train"]["batch"] == 2
    assert record["config_hash"] == train_digest(TransferConfig(**record["config"]), TrainSettings(**record["train"]))
    saved = torch.load(model, weights_only=True)
    assert json.loads(saved["record_json"])["config"] == record["config"]
    assert Image.open(preview).size[0] == 3 * 32  # three training images before/after
    assert read_png_metadata(preview)["text"] == "pop art"
    assert not list(out.glob(".*tmp*"))
    odd = tmp_path / "odd.png"
    Image.new("RGB", (45, 27), (200, 40, 40)).save(odd)
    res = invoke("apply", model, odd, "--out", tmp_path / "applied", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "applied" / "odd_pop-art_c2_applied.png").size == (45, 27)


def test_library_run_writes_files_and_interrupt_keeps_no_final_names(models, image_dir, tmp_path, monkeypatch):
    images = sorted(image_dir.iterdir())
    config, settings = tiny_config(steps=1), TrainSettings(batch=3, preview=0)
    done = run_train_job(images, "neon art", config, settings, models, tmp_path / "a")
    assert done.image.name == "neon-art_c2.stylenet.pt" and not (tmp_path / "a" / "neon-art_c2_preview.png").exists()

    def interrupt(step, losses):
        raise KeyboardInterrupt

    stopped = run_train_job(images, "neon art", config.replace(steps=3), settings, models, tmp_path / "b",
                            on_step=interrupt)
    assert stopped.interrupted and stopped.image.parent.name == "snapshots"
    assert (not (tmp_path / "b" / "neon-art_c2.stylenet.pt").exists()
            and not (tmp_path / "b" / "neon-art_c2.json").exists())


@pytest.mark.parametrize("args, message", [
    (["--images", "{missing}"], "does not exist"),
    (["--images", "{empty}"], "no images"),
    (["--images", "{bad}"], "not a readable image"),
    (["--images", "{set}", "--train-size", "20x20"], "multiples of 8"),
    (["--images", "{set}", "--train-size", "64x64"], "larger than --size"),
    (["--images", "{set}", "--batch", "0"], "--batch"),
])
def test_one_line_errors(args, message, image_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_text("not an image")
    paths = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "bad": tmp_path / "bad.png", "set": image_dir}
    filled = [a.format(**paths) for a in args]
    res = invoke("train", "pop art", *filled, *TINY, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert res.output.strip().count("\n") == 0, res.output
