"""OCR text detection, SSIM, VGG distance and input discovery, with the real rapidocr models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.metrics import (
    DEFAULT_MIN_CONFIDENCE,
    TextBox,
    TextSummary,
    collect_inputs,
    detect_text,
    ocr_engine,
    ssim,
    text_summary,
)
from spectralstyle.media.images import load_image

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
    assert [(i.image.name, i.text, i.band, i.content) for i in items] == [
        ("a.png", "pop art", "c2", Path("/nowhere.jpg"))]

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


def strip_with_word(path: Path, size: tuple[int, int], word: str = "POP", font_size: int = 30) -> Path:
    """A long pale strip with one dark word near its left end."""
    img = Image.new("RGB", size, (200, 220, 240))
    font = ImageFont.truetype(str(DEJAVU), font_size) if DEJAVU.is_file() else ImageFont.load_default(size=font_size)
    ImageDraw.Draw(img).text((100, (size[1] - font_size) // 2 - font_size // 8), word, fill=(10, 10, 10), font=font)
    img.save(path)
    return path


@pytest.mark.parametrize("size", [(4000, 20), (20, 4000), (3000, 1)])
def test_extreme_aspect_ratios_are_measured(size):
    """rapidocr alone raises ResizeImgError on these (its 2000 px cap rounds the short side to 0)."""
    image = Image.new("RGB", size, (200, 100, 50))
    assert detect_text(image) == []
    summary = text_summary(image)
    assert (summary.width, summary.height) == size and summary.area_fraction == 0.0


def test_word_in_a_wide_strip_is_read(tmp_path):
    """Padded to a sane aspect ratio, a word in a 1000x40 strip is read (unpadded, OCR finds nothing)."""
    boxes = detect_text(strip_with_word(tmp_path / "strip.png", (1000, 40)))
    assert [b.text.strip().upper() for b in boxes] == ["POP"]
    xs, ys = [p[0] for p in boxes[0].box], [p[1] for p in boxes[0].box]
    assert 80 < min(xs) < 110 and 140 < max(xs) < 200  # in the strip's own coordinates
    assert 0 <= min(ys) and max(ys) <= 40


def test_ocr_engine_failure_is_a_one_image_error(monkeypatch):
    import spectralstyle.evaluation.ocr as metrics

    def broken(_image):
        raise RuntimeError("engine broke")

    monkeypatch.setattr(metrics, "ocr_engine", lambda: broken)
    with pytest.raises(metrics.OcrError, match="OCR failed.*RuntimeError: engine broke"):
        detect_text(Image.new("RGB", (64, 64)))
    assert issubclass(metrics.OcrError, SpectralStyleError)  # one line and exit 2 if it ever escapes


def test_long_strip_is_shrunk_before_padding(monkeypatch):
    """A 4000x60 strip is read at rapidocr's own 2000 px cap, on a 2000x500 canvas (not 4000x1000), and
    the boxes the engine finds on that canvas come back in the strip's own coordinates."""
    from types import SimpleNamespace

    import numpy as np

    import spectralstyle.evaluation.ocr as metrics

    strip = Image.new("RGB", (4000, 60), (200, 220, 240))
    canvas = metrics.ocr_canvas(strip)
    assert canvas.image.size == (2000, 500) and (canvas.left, canvas.top) == (0, 235)
    assert canvas.scale_x == 0.5 and canvas.scale_y == 0.5
    seen = []

    def engine(image):
        seen.append(image.size)
        box = np.array([[50, 240], [100, 240], [100, 260], [50, 260]], dtype=float)  # inside the strip
        pad = np.array([[50, 10], [100, 10], [100, 30], [50, 30]], dtype=float)  # wholly in the padding
        return SimpleNamespace(boxes=[box, pad], txts=("POP", "X"), scores=(0.99, 0.99))

    monkeypatch.setattr(metrics, "ocr_engine", lambda: engine)
    [box] = detect_text(strip)
    assert seen == [(2000, 500)]
    assert box.text == "POP" and box.box == ((100.0, 10.0), (200.0, 10.0), (200.0, 50.0), (100.0, 50.0))
    # no padding
    assert Image.new("RGB", (300, 200)).size == metrics.ocr_canvas(Image.new("RGB", (300, 200))).image.size
