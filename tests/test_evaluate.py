"""`spectralstyle evaluate`: metrics and report of real (tiny, random-weight) transfer outputs, the CLI's
acceptance case, bad input, and the report opened in headless Chromium."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.analysis import analyze, token_energy, write_analysis
from spectralstyle.evaluation.metrics import (
    ClipScorer,
    EvalInput,
    ImageMetrics,
    TextBox,
    TextSummary,
    clip_input,
    collect_inputs,
    evaluate_image,
    vgg_content_distance,
)
from spectralstyle.evaluation.report import text_count_line, write_report
from spectralstyle.media.files import write_json
from spectralstyle.media.images import load_image
from spectralstyle.method.clip_model import SpectralCLIP
from spectralstyle.method.losses import normalize
from spectralstyle.runs.models import Models
from spectralstyle.runs.transfer import run_job
from spectralstyle.settings import TransferConfig
from test_metrics import gradient, render_word

CONTENT = Path("/work/shared/content/boat.jpg")
TEXT = "pop art"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory):
    """A tiny transfer output (band c2) with its sidecar, beside an image with a written word whose
    sidecar says band none, and a log file."""
    out = tmp_path_factory.mktemp("transfer")
    config = TransferConfig(weights="random", steps=1, width=64, height=64, keep_aspect=False, output_size="working",
                            crops=2, crop_size=32, device="cpu")  # a 64x64 result, as the scores below assume
    models = Models.load(config)
    job = run_job(CONTENT, TEXT, config, models, out)
    word = render_word(out / "word_none.png", size=128)
    write_json({"text": TEXT, "band": "none", "content": str(CONTENT)}, out / "word_none.json")
    (out / "spectralstyle.log").write_text("a log line\n")
    return out, models, [job.image, word]


@pytest.fixture(scope="module")
def scorer(transfer_run):
    _, models, _ = transfer_run
    return ClipScorer(models.clip, text_cache=models.text_cache)  # texts already embedded by the transfer


def run_cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, result.output + (getattr(result, "stderr", "") or "")


def test_report_from_transfer_run(transfer_run, scorer, tmp_path):
    out, models, images = transfer_run
    items = collect_inputs([out])
    assert sorted(i.image for i in items) == sorted(images)
    results = [evaluate_image(i, scorer, models.vgg) for i in items]
    for r in results:
        assert -1 <= r.clip_score <= 1
        assert 0 < r.ssim < 1 and r.vgg_distance > 0 and math.isfinite(r.directional)
    assert [r.text.has_text for r in results] == [False, True]  # the transfer output, the word image
    files = write_report(results, tmp_path / "report")
    page = files.html.read_text()
    for image in images:
        assert image.name in page
    assert page.count("data:image/png;base64,") == len(images) + len(files.plots)
    assert "band <b>c2</b>" in page and "band <b>none</b>" in page and "1 of 2 images with text" in page
    rows = list(csv.DictReader(files.csv.open()))
    assert [r["band"] for r in rows] == ["c2", "none"]
    assert all(float(r["ssim"]) == pytest.approx(res.ssim, abs=1e-5) for r, res in zip(rows, results))
    assert [int(r["text_boxes"]) for r in rows] == [0, 1]
    for plot in files.plots:
        assert Image.open(plot).size[0] > 100


def test_clip_scores_use_plain_clip(transfer_run, scorer):
    _, models, images = transfer_run
    image = load_image(images[0])
    content = load_image(CONTENT, (64, 64))
    plain = SpectralCLIP(models.clip, "none")
    features = normalize(plain.encode_image(clip_input(torch.cat([image, content]))))
    text = scorer.text(TEXT)
    assert scorer.score(image, TEXT) == pytest.approx(float(features[0] @ text[0]), abs=1e-5)
    direction = normalize(text - scorer.text("a Photo"))[0]
    expected = float(normalize(features[0] - features[1]) @ direction)
    assert scorer.directional(image, content, TEXT) == pytest.approx(expected, abs=1e-4)
    assert scorer.directional(content, image, TEXT) == pytest.approx(-expected, abs=1e-4)
    assert math.isnan(scorer.directional(content, content, TEXT))


def test_vgg_distance_zero_for_same_image(transfer_run, content_image):
    _, models, _ = transfer_run
    img = load_image(content_image, (64, 64))
    assert vgg_content_distance(models.vgg, img, img) == pytest.approx(0.0, abs=1e-10)
    assert vgg_content_distance(models.vgg, img, 1 - img) > 0


def test_analysis_on_both_groups(transfer_run, scorer, tmp_path):
    images = [render_word(tmp_path / "pop.png"), gradient(tmp_path / "plain.png")]
    results, separation = analyze(scorer, images, TEXT)
    assert [r.text.has_text for r in results] == [True, False]
    assert len(results[0].energy) == 50 and all(e >= 0 for e in results[0].energy)
    assert separation is not None and [s.band for s in separation] == ["0-1", "2-3", "4-7", "8-15", "16-49"]
    for s in separation:
        assert s.auc_energy in (0.0, 0.5, 1.0) and s.auc_drop in (0.0, 0.5, 1.0)  # one positive, one negative
        assert -1 <= s.r_energy <= 1
    # band energies partition the total energy (the bands cover 0-49 exactly once)
    r = results[1]
    assert sum(r.band_energy.values()) == pytest.approx(sum(r.energy), rel=1e-5)
    files = write_analysis(results, separation, tmp_path / "analysis")
    assert {f.name for f in files} == {"per_image.csv", "spectrum.csv", "bands.csv", "spectrum.png", "band_scores.png",
                                       "analysis.json"}  # analysis.json: what was analysed (see outputs.py)
    assert len(list(csv.DictReader((tmp_path / "analysis" / "per_image.csv").open()))) == 2


def test_token_energy_is_parseval(scorer, content_image):
    """The DCT is orthonormal: per-frequency energy sums to the tokens' energy."""
    encoder = SpectralCLIP(scorer.clip, "none")
    tokens, energy = token_energy(encoder, clip_input(load_image(content_image)))
    assert energy.shape == (1, 50)
    assert float(energy.sum()) == pytest.approx(float(tokens.pow(2).sum() / tokens.shape[-1]), rel=1e-4)


@pytest.fixture(scope="module")
def acceptance_report(tmp_path_factory):
    """`spectralstyle evaluate` on one image with the word POP and one without (random weights)."""
    folder = tmp_path_factory.mktemp("acceptance")
    render_word(folder / "with_word.png")
    gradient(folder / "plain.png")
    (folder / "notes.log").write_text("not an image")
    out = folder / "report"
    result, output = run_cli("evaluate", str(folder), "--text", TEXT, "--weights", "random", "--device", "cpu",
                             "--out", str(out))
    return result, output, out


def test_evaluate_cli_counts_text_images(acceptance_report):
    result, output, out = acceptance_report
    assert result.exit_code == 0, output
    assert "1 of 2 images with text" in output
    page = (out / "report.html").read_text()
    assert "with_word.png" in page and "plain.png" in page and "notes.log" not in page
    rows = {Path(r["image"]).name: r for r in csv.DictReader((out / "metrics.csv").open())}
    assert set(rows) == {"with_word.png", "plain.png"}
    assert int(rows["with_word.png"]["text_boxes"]) == 1 and rows["with_word.png"]["ocr_strings"].upper() == "POP"
    assert int(rows["plain.png"]["text_boxes"]) == 0
    assert rows["plain.png"]["ssim"] == ""  # no sidecar, no content: content metrics skipped


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_opens_in_headless_chromium(acceptance_report, tmp_path):
    _, _, out = acceptance_report
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
         (out / "report.html").resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (900, 1200)
    assert pixels.std() > 10  # not a blank page
    # the red frame of the card with text is rendered
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert ((rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum() > 200


@pytest.mark.parametrize("case", ["missing", "empty", "only_non_images", "not_an_image", "no_text"])
def test_evaluate_bad_input_exit_2(tmp_path, case):
    target = tmp_path / "in"
    if case != "missing":
        target.mkdir()
    if case == "only_non_images":
        (target / "a.json").write_text("{}")
        (target / "run.log").write_text("x")
    if case == "not_an_image":
        target = target / "broken.png"
        target.write_text("not a png")
    if case == "no_text":
        gradient(target / "plain.png")
    args = ["evaluate", str(target), "--weights", "random", "--out", str(tmp_path / "out")]
    if case == "not_an_image":
        args += ["--text", TEXT]
    result, output = run_cli(*args)
    assert result.exit_code == 2, output
    assert "error:" in output and "Traceback" not in output
    assert not (tmp_path / "out" / "report.html").exists()


def test_text_count_line_wording():
    def result(has_text: bool) -> ImageMetrics:
        boxes = (TextBox(((0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)), "A", 0.9),) if has_text else ()
        return ImageMetrics(EvalInput(Path("x.png"), TEXT), TextSummary(boxes, 8, 8), 0.2)

    assert text_count_line([result(True), result(False)]) == "1 of 2 images with text"
    assert text_count_line([result(False)]) == "0 of 1 image with text"


def test_corrupt_image_in_folder_is_skipped_and_named(tmp_path):
    gradient(tmp_path / "good.png")
    (tmp_path / "bad.png").write_text("not a png")
    skipped: list[str] = []
    items = collect_inputs([tmp_path], TEXT, skipped)
    assert [i.image.name for i in items] == ["good.png"]
    assert len(skipped) == 1 and "bad.png" in skipped[0]
    with pytest.raises(SpectralStyleError, match="bad.png"):
        collect_inputs([tmp_path], TEXT)  # without a skip list it is an error, as for a named file
