"""OCR text detection, SSIM, VGG distance and input discovery, with the real rapidocr models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from spectralstyle.errors import SpectralStyleError
from spectralstyle.image_io import load_image
from spectralstyle.metrics import (
    DEFAULT_MIN_CONFIDENCE,
    TextBox,
    TextSummary,
    collect_inputs,
    detect_text,
    ocr_engine,
    ssim,
    text_summary,
)

CONTENT_DIR = Path("/work/shared/content")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def render_word(path: Path, word: str = "POP", size: int = 256) -> Path:
    """A pale image with one large dark word on it."""
    img = Image.new("RGB", (size, size), (200, 220, 240))
    font = ImageFont.truetype(str(DEJAVU), 60) if DEJAVU.is_file() else ImageFont.load_default(size=60)
    ImageDraw.Draw(img).text((40, 90), word, fill=(10, 10, 10), font=font)
    img.save(path)
    return path


def gradient(path: Path, size: int = 256) -> Path:
    x = torch.linspace(0, 1, size)
    img = torch.stack([x.expand(size, size), x.view(-1, 1).expand(size, size), torch.full((size, size), 0.4)])
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)
    return path


def test_rendered_word_is_read(tmp_path):
    boxes = detect_text(render_word(tmp_path / "pop.png"))
    assert [b.text.strip().upper() for b in boxes] == ["POP"]
    box = boxes[0]
    assert box.confidence >= DEFAULT_MIN_CONFIDENCE
    xs, ys = [p[0] for p in box.box], [p[1] for p in box.box]
    # the word is drawn from x=40 over about 120 px, y about 100-150
    assert min(xs) < 60 and max(xs) > 140 and min(ys) < 110 and max(ys) > 140


def test_threshold_filters_boxes(tmp_path):
    path = render_word(tmp_path / "pop.png")
    assert detect_text(path, min_confidence=1.01) == []
    assert len(detect_text(path, min_confidence=0.0)) >= 1


@pytest.mark.parametrize("name", ["gradient", "boat.jpg", "venice.jpg"])
def test_no_text_on_images_without_words(tmp_path, name):
    path = gradient(tmp_path / "g.png") if name == "gradient" else CONTENT_DIR / name
    assert path.is_file()
    assert detect_text(path) == []


def test_engine_is_built_once_and_uses_bundled_models():
    assert ocr_engine() is ocr_engine()
    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    assert {str(ocr_engine().cfg[s].model_path) for s in ("Det", "Cls", "Rec")} <= {str(p) for p in models.iterdir()}


def test_summary_area_is_union_of_boxes(tmp_path):
    square = TextBox(((10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (10.0, 30.0)), "A", 0.9)
    assert square.area == pytest.approx(400)
    one = TextSummary((square,), 100, 100)
    twice = TextSummary((square, square), 100, 100)
    assert one.area_fraction == pytest.approx(0.04, abs=0.005)
    assert twice.area_fraction == one.area_fraction  # overlaps counted once
    assert twice.count == 2 and twice.strings == ["A", "A"]
    assert TextSummary((), 10, 10).area_fraction == 0.0

    summary = text_summary(render_word(tmp_path / "pop.png"))
    assert summary.has_text and 0.05 < summary.area_fraction < 0.4


def test_ssim_properties(content_image):
    img = load_image(content_image)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-5)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(img.shape, generator=gen)
    light = ssim(img, (img + 0.05 * noise).clamp(0, 1))
    heavy = ssim(img, (img + 0.3 * noise).clamp(0, 1))
    assert 1.0 > light > heavy
    assert ssim((img + 0.3 * noise).clamp(0, 1), img) == pytest.approx(heavy, abs=1e-6)  # symmetric


def test_ssim_of_constant_images_matches_closed_form():
    # zero variance everywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = 0.01^2
    a, b = 0.3, 0.6
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    value = ssim(torch.full((1, 3, 32, 32), a), torch.full((1, 3, 32, 32), b))
    assert value == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 9, 8))


def test_collect_inputs_reads_sidecars_and_skips_comparisons(tmp_path):
    render_word(tmp_path / "a.png")
    (tmp_path / "a.json").write_text(json.dumps({"text": "pop art", "band": "c2", "content": "/nowhere.jpg"}))
    render_word(tmp_path / "cmp.png")
    (tmp_path / "cmp.json").write_text(json.dumps({"kind": "comparison", "text": "pop art"}))
    (tmp_path / "run.log").write_text("log")
    (tmp_path / "snapshots").mkdir()
    render_word(tmp_path / "snapshots" / "a_step0001.png")
    items = collect_inputs([tmp_path])
    assert [(i.image.name, i.text, i.band, i.content) for i in items] == [("a.png", "pop art", "c2", Path("/nowhere.jpg"))]

    gradient(tmp_path / "b.png")
    with pytest.raises(SpectralStyleError, match="--text"):
        collect_inputs([tmp_path])
    assert [i.text for i in collect_inputs([tmp_path], text="ink")] == ["pop art", "ink"]


def test_collect_inputs_errors(tmp_path):
    with pytest.raises(SpectralStyleError, match="does not exist"):
        collect_inputs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpectralStyleError, match="no result images"):
        collect_inputs([tmp_path / "empty"])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(SpectralStyleError, match="not a readable image"):
        collect_inputs([tmp_path / "notes.png"], text="x")
