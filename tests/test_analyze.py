"""The spectral analysis: band bookkeeping, AUC and point-biserial correlation, and the `analyze` command."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.evaluation.analysis import DYADIC_BANDS, auc, complement_spec, mask_to_spec, point_biserial
from spectralstyle.method.spectral import parse_bands
from test_metrics import gradient


def test_complement_removes_exactly_the_band():
    assert complement_spec("0-1") == "2-49"
    assert complement_spec("4-7") == "0-3,8-49"
    assert complement_spec("16-49") == "0-15"
    covered = sum(parse_bands(b).int() for b in DYADIC_BANDS)
    assert covered.tolist() == [1] * 50  # the dyadic bands tile the spectrum
    for band in DYADIC_BANDS:
        assert (parse_bands(complement_spec(band)) == ~parse_bands(band)).all()
    assert mask_to_spec(parse_bands("3,5-6,49")) == "3,5-6,49"


def test_auc_by_hand():
    labels = np.array([0, 0, 1, 1])
    assert auc(np.array([1, 2, 3, 4]), labels) == 1.0
    assert auc(np.array([4, 3, 2, 1]), labels) == 0.0
    assert auc(np.array([1, 1, 1, 1]), labels) == 0.5
    # pairs (pos, neg): (3,1) (3,5) (6,1) (6,5) -> 3 of 4 ranked right
    assert auc(np.array([1, 5, 3, 6]), labels) == 0.75
    assert np.isnan(auc(np.array([1, 2]), np.array([1, 1])))


def test_point_biserial_matches_textbook_formula():
    rng = np.random.default_rng(0)
    values = rng.normal(size=20)
    labels = (np.arange(20) % 3 == 0).astype(float)
    m1, m0 = values[labels == 1].mean(), values[labels == 0].mean()
    p = labels.mean()
    expected = (m1 - m0) / values.std() * np.sqrt(p * (1 - p))
    assert point_biserial(values, labels) == pytest.approx(expected)
    assert np.isnan(point_biserial(values, np.ones(20)))


def test_analyze_cli_with_one_group(tmp_path):
    a, b = gradient(tmp_path / "a.png"), gradient(tmp_path / "b.png", size=128)
    out = tmp_path / "analysis"
    result = CliRunner().invoke(app, ["analyze", str(a), str(b), "--text", "ink wash", "--weights", "random",
                                      "--device", "cpu", "--out", str(out)])
    output = result.output + (getattr(result, "stderr", "") or "")
    assert result.exit_code == 0, output
    assert "only one group" in output and "0 of 2 images with text" in output
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 and {f"clip_without_{b}" for b in DYADIC_BANDS} <= set(rows[0])
    assert (out / "spectrum.png").is_file() and not (out / "bands.csv").exists()


@pytest.mark.parametrize("flags", [["--text", " "], ["--text", "ink", "--weights", "foo"],
                                   ["--text", "ink", "--min-confidence", "2"]])
def test_analyze_cli_bad_flags_exit_2_and_write_nothing(tmp_path, flags):
    image = gradient(tmp_path / "a.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["analyze", str(image), "--out", str(out), *flags])
    output = result.output + (getattr(result, "stderr", "") or "")
    assert result.exit_code == 2 and "error:" in output and "Traceback" not in output
    assert not out.exists()


def test_analyze_cli_skips_an_image_ocr_fails_on_and_measures_wide_images(tmp_path, monkeypatch, narrow_clip):
    import numpy as np
    from PIL import Image

    import spectralstyle.evaluation.ocr as metrics

    monkeypatch.setattr("spectralstyle.cli.evaluate._load_clip", lambda *args: narrow_clip)
    real = metrics.ocr_engine()

    def engine(img):  # the real engine, failing on 120-pixel-wide images
        if np.asarray(img).shape[1] == 120:
            raise RuntimeError("engine broke")
        return real(img)

    monkeypatch.setattr(metrics, "ocr_engine", lambda: engine)
    folder = tmp_path / "imgs"
    folder.mkdir()
    gradient(folder / "a_fails.png", size=120)
    gradient(folder / "b.png", size=64)
    Image.new("RGB", (4000, 20), (200, 100, 50)).save(folder / "c_wide.png")
    out = tmp_path / "analysis"
    result = CliRunner().invoke(app, ["analyze", str(folder), "--text", "ink wash", "--weights", "random",
                                      "--device", "cpu", "--out", str(out)])
    output = result.output + (getattr(result, "stderr", "") or "")
    assert result.exit_code == 0, output
    assert "skipped:" in output and "a_fails.png" in output and "OCR failed" in output
    assert "0 of 2 images with text" in output
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert sorted(r["image"].rsplit("/", 1)[-1] for r in rows) == ["b.png", "c_wide.png"]
