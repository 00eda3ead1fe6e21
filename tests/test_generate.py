"""`spectralstyle generate`: settings, cutouts, the optimisation loop and end-to-end CLI runs (random weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import load_image, read_png_metadata
from spectralstyle.method.vqgan import random_vqgan
from spectralstyle.runs.generate import (
    Cutouts,
    GenerateModels,
    make_generator,
    prompt_distances,
    prompt_slug,
    run_generation,
)
from spectralstyle.settings import GenerateConfig, resolve_generate_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--weights", "random", "--cutouts", "2", "--device", "cpu"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["generate", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def models(narrow_clip):
    return GenerateModels(narrow_clip, torch.device("cpu"), random_vqgan())


def tiny_config(**changes) -> GenerateConfig:
    return GenerateConfig(**{"weights": "random", "device": "cpu", "steps": 2, "width": 32, "height": 32,
                             "cutouts": 2, **changes})


# --- settings --------------------------------------------------------------------------------------


def test_shipped_yaml_holds_the_defaults():
    assert resolve_generate_config(ROOT / "configs" / "generate.yaml") == GenerateConfig()


def test_lr_resolves_per_generator_and_flags_override_yaml(tmp_path):
    assert GenerateConfig().lr == 0.05 and GenerateConfig(generator="vqgan").lr == 0.1
    path = tmp_path / "g.yaml"
    path.write_text("generator: vqgan\nsize: 128x64\nsteps: 7\n")
    config = resolve_generate_config(path, steps=3)
    assert (config.generator, config.width, config.height, config.steps, config.lr) == ("vqgan", 128, 64, 3, 0.1)
    path.write_text("crops: 4\n")  # a transfer setting is not a generate setting
    with pytest.raises(SpectralStyleError, match="unknown setting.*crops"):
        resolve_generate_config(path)


@pytest.mark.parametrize("changes,message", [
    ({"generator": "dalle"}, "unknown generator"),
    ({"generator": "vqgan", "width": 72}, "multiples of 16"),
    ({"width": 60}, "multiples of 8"),
    ({"band": "c9"}, "unknown band"),
    ({"init_weight": 1.0}, "needs --init-image"),
    ({"generator": "vqgan", "init_image": "x.png"}, "--init-weight > 0"),
    ({"distance": "l2"}, "unknown distance"),
    ({"cut_min": 0}, "cut_min"),
    ({"weights": "imagenet"}, "unknown weights mode"),
])
def test_bad_settings_raise_one_line(changes, message):
    with pytest.raises(SpectralStyleError, match=message):
        tiny_config(**changes)


# --- pieces of the loop ----------------------------------------------------------------------------


def test_cutouts_shape_repeatable_and_varied():
    image = torch.rand(1, 3, 48, 64)
    a, b = Cutouts(6, 0.25, 0.5, 0.1, seed=3), Cutouts(6, 0.25, 0.5, 0.1, seed=3)
    first = a(image)
    assert first.shape == (6, 3, 224, 224)
    assert torch.equal(first, b(image))
    assert not torch.equal(first, a(image))  # a new draw every step
    sizes = Cutouts(40, 0.25, 0.0, 0.0, seed=0).sizes(48)
    assert all(12 <= s <= 48 for s in sizes) and len(set(sizes)) > 1


def test_prompt_distances():
    e = torch.eye(3)
    spherical = prompt_distances(e[:2], e[:2], "spherical")
    assert spherical[0, 0] == pytest.approx(0, abs=1e-6) and spherical[0, 1] == pytest.approx(math.pi**2 / 8, rel=1e-5)
    cosine = prompt_distances(e[:2], e[:2], "cosine")
    assert cosine.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_same_seed_same_losses_other_seed_differs(models, tmp_path):
    config = tiny_config()
    runs = [run_generation("pop art|text:-0.5", c, models, tmp_path / str(i)).record
            for i, c in enumerate([config, config, config.replace(seed=7, steps=1)])]
    assert runs[0]["losses"] == runs[1]["losses"]  # step 2 also repeats the update of step 1
    assert runs[0]["losses"][0] != runs[2]["losses"][0]
    assert [r["step"] for r in runs[0]["losses"]] == [1, 2]


def test_vqgan_start_is_seeded(models):
    """The VQGAN latent starts from seeded random codes (the rest of the loop is shared with fourier)."""
    config = tiny_config(generator="vqgan")
    first, again = (make_generator(config, models, None).z for _ in range(2))
    other = make_generator(config.replace(seed=7), models, None).z
    assert torch.equal(first, again) and not torch.equal(first, other)
    codebook = models.vqgan.codebook
    assert torch.cdist(first.detach().flatten(2)[0].T, codebook).min(1).values.max() < 1e-3  # starts on codes


def test_init_image_starts_fourier_there_and_adds_mse(models, content_image, tmp_path):
    config = tiny_config(steps=1, init_image=str(content_image), init_weight=2.0, lr=1e-6)
    result = run_generation("pop art", config, models, tmp_path)

    made = load_image(result.image)[0]
    assert (made - load_image(content_image, (32, 32))[0]).abs().mean() < 0.02
    step = result.record["losses"][0]
    assert step["total"] == pytest.approx(step["prompt"] + 2.0 * step["init"], rel=1e-5)


def test_interrupt_keeps_snapshot_and_no_final_output(models, tmp_path):
    def stop_at_two(step, losses):
        if step == 2:
            raise KeyboardInterrupt

    result = run_generation("pop art", tiny_config(steps=50, save_every=1), models, tmp_path, on_step=stop_at_two)
    assert result.interrupted and result.record["status"] == "interrupted"
    assert not (tmp_path / "pop-art_fourier_c2.png").exists()
    assert sorted(p.name for p in (tmp_path / "snapshots").glob("*.png")) == [
        "pop-art_fourier_c2_step0001.png", "pop-art_fourier_c2_step0002.png"]


# --- end to end ------------------------------------------------------------------------------------


def test_cli_vqgan_acceptance(tmp_path):
    res = invoke("pop art", "--generator", "vqgan", "--steps", "2", "--size", "64x64", *TINY, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    png, sidecar = tmp_path / "pop-art_vqgan_c2.png", tmp_path / "pop-art_vqgan_c2.json"
    assert Image.open(png).size == (64, 64)
    record = json.loads(sidecar.read_text())
    assert record["content"] is None and record["text"] == "pop art" and record["band"] == "c2"
    assert record["status"] == "finished" and record["steps_done"] == 2 and len(record["losses"]) == 2
    assert record["config"] == GenerateConfig(**record["config"]).to_dict()
    assert record["config"]["generator"] == "vqgan" and record["device"] == "cpu" and record["seed"] == 1234
    assert record["environment"]["torch"] == torch.__version__ and record["wall_time_s"] > 0
    assert read_png_metadata(png)["config"] == record["config"]


def test_cli_fourier_compare(tmp_path):
    res = invoke("a lighthouse|words:-1", "--compare", "--steps", "1", "--size", "32x32", "--band", "c1", *TINY,
                 "--out", tmp_path)
    assert res.exit_code == 0, res.output
    stem = f"{prompt_slug('a lighthouse|words:-1')}_fourier"
    assert stem.startswith("a-lighthouse-words-1-") and prompt_slug("a lighthouse|words:1") not in stem
    none, c1 = (json.loads((tmp_path / f"{stem}_{b}.json").read_text()) for b in ("none", "c1"))
    assert none["band"] == "none" and c1["band"] == "c1"
    assert none["prompts"] == [{"text": "a lighthouse", "weight": 1.0}, {"text": "words", "weight": -1.0}]
    assert none["losses"] != c1["losses"]  # same seed, different encoder
    side = Image.open(tmp_path / f"{stem}_compare_none-vs-c1.png")
    assert side.width == 64 and side.height > 32
    assert json.loads((tmp_path / f"{stem}_compare_none-vs-c1.json").read_text())["content"] is None


BAD_INPUTS = [
    (["   "], "empty"),
    (["very " * 80], "too long for CLIP"),
    (["pop art:lots"], "bad prompt weight"),
    (["pop art", "--generator", "dalle"], "'dalle' is not one of 'fourier', 'vqgan'"),
    (["pop art", "--generator", "vqgan", "--size", "72x64"], "multiples of 16"),
    (["pop art", "--size", "60x64"], "multiples of 8"),
    (["pop art", "--size", "64x0"], "has a side of 0 pixels"),
    (["pop art", "--init-image", "missing.png", "--init-weight", "1"], "does not exist"),
    (["pop art", "--device", "tpu"], "unknown device"),
    (["pop art", "--generator", "vqgan", "--weights", "pretrained"], "CLIP ViT-B/32 and VQGAN f16_16384"),
    (["pop art", "--generator", "vqgan", "--vqgan-checkpoint", "nope.ckpt"], "does not exist"),
    (["pop art", "--config", "nope.yaml"], "does not exist"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, message):
    flags = {a for a in args if a.startswith("--")}
    extra = [x for f, v in zip(TINY[::2], TINY[1::2]) if f not in flags for x in (f, v)]
    res = invoke(*args, "--steps", "1", "--size" if "--size" not in flags else "--seed",
                 "32x32" if "--size" not in flags else "1",
                 *extra, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "out").exists()
