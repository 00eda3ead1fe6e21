"""The Python API: ``spectralstyle.stylize``, ``StyleModel``, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

import spectralstyle
from spectralstyle.errors import SpectralStyleError

TINY = dict(weights="random", steps=1, size="64x64", crops=2, crop_size=32, device="cpu")


def test_import_loads_no_torch():
    code = "import spectralstyle, sys; spectralstyle.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_stylize_returns_image_and_record(content_image, tmp_path):
    result = spectralstyle.stylize(content_image, "pop art", **TINY)
    assert isinstance(result.image, Image.Image)
    assert result.image.size == (96, 80)  # the picture's own size; optimised at the working size 64x64
    record = result.record
    assert record["working_size"] == [64, 64] and record["output_size"] == [96, 80]
    assert record["text"] == "pop art" and record["steps_done"] == 1
    assert record["config"]["steps"] == 1 and record["config"]["weights"] == "random"
    assert record["config_hash"] == spectralstyle.TransferConfig(**{**record["config"]}).digest()
    json.dumps(record)
    assert repr(result) == "Result('pop art', 96x80, model=StyleModel('pop art', band='c2', steps=1))"
    path = result.save(tmp_path / "out.png")
    assert Image.open(path).size == (96, 80)
    assert json.loads(path.with_suffix(".json").read_text())["text"] == "pop art"
    with pytest.raises(SpectralStyleError, match="already exists"):
        result.save(tmp_path / "out.png")


def test_same_seed_same_image(content_image):
    a = spectralstyle.stylize(content_image, "pop art", **TINY).image
    b = spectralstyle.stylize(Image.open(content_image), "pop art", **TINY).image
    assert a.tobytes() == b.tobytes()


def test_style_model_round_trip(content_image, tmp_path):
    result = spectralstyle.stylize(content_image, "pop art", **TINY)
    model_path = result.model.save(tmp_path / "pop.stylenet.pt")
    model = spectralstyle.StyleModel.load(model_path)
    assert repr(model) == repr(result.model) == "StyleModel('pop art', band='c2', steps=1)"
    photo = Image.new("RGB", (40, 24), (120, 60, 30))
    out = model.apply(photo, device="cpu")
    assert out.size == (40, 24)
    assert model.apply(photo, device="cpu").tobytes() == result.model.apply(photo, device="cpu").tobytes()


def test_bad_setting_is_one_line(content_image):
    with pytest.raises(SpectralStyleError, match="steps"):
        spectralstyle.stylize(content_image, "pop art", **{**TINY, "steps": 0})
    with pytest.raises(SpectralStyleError, match="unknown setting"):
        spectralstyle.stylize(content_image, "pop art", **TINY, stepz=3)


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        spectralstyle.no_such_name  # noqa: B018


def test_style_model_apply_takes_the_controls_of_apply(content_image, tmp_path):
    """strength 0 is the photo; a mask keeps the photo where it is black; luminance keeps the photo's chroma;
    a mix with the model itself is the model's result; bad controls are one line."""
    import numpy as np

    model = spectralstyle.stylize(content_image, "pop art", **TINY).model
    photo = Image.open(content_image).convert("RGB")
    pixels = np.asarray(photo, dtype=float)

    def diff(image: Image.Image, columns: slice = slice(None)) -> float:
        return float(np.abs(np.asarray(image, dtype=float)[:, columns] - pixels[:, columns]).mean())

    plain = model.apply(photo, device="cpu")
    assert diff(plain) > 10
    assert diff(model.apply(photo, device="cpu", strength=0)) < 3
    mask = np.zeros((photo.height, photo.width), np.uint8)
    mask[:, :40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    masked = model.apply(photo, device="cpu", mask=tmp_path / "mask.png")
    assert diff(masked, slice(40, None)) < 3 and diff(masked, slice(None, 40)) > 10
    kept = np.asarray(model.apply(photo, device="cpu", preserve_color="luminance").convert("YCbCr"), dtype=float)
    assert np.abs(kept[..., 1:] - np.asarray(photo.convert("YCbCr"), dtype=float)[..., 1:]).mean() < 3
    assert model.apply(photo, device="cpu", mix=model, mix_weight=0.3).tobytes() == plain.tobytes()
    with pytest.raises(SpectralStyleError, match="mix-weight needs"):
        model.apply(photo, device="cpu", mix_weight=0.3)
    with pytest.raises(SpectralStyleError, match="unknown setting"):
        model.apply(photo, device="cpu", strenght=0.5)
