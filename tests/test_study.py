"""``spectralstyle study``: the grid through batch, the judge, the tables and the report (one CLI run), and the
protocol and content rules at library level."""

from __future__ import annotations

import csv
import os
import subprocess

import pytest
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.cli.study import protocol_inputs
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import TransferConfig
from spectralstyle.study.grid import content_images, grid_progress, study_plan
from spectralstyle.study.protocol import PAPER_STYLES


def test_study_cli_writes_the_band_table_judged_by_another_clip(content_image, tmp_path):
    out = tmp_path / "S"
    args = ["study", str(content_image.parent), "--text", "pop art", "--text", "fauvism", "--bands", "none,c2",
            "--judge", "ViT-B/16", "--weights", "random", "--steps", "1", "--size", "64x64", "--crops", "2",
            "--crop-size", "32", "--device", "cpu", "--out", str(out), "--rounds", "200"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output[-3000:]
    with open(out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["band"] for row in table] == ["none", "c2"]
    none, c2 = table
    for column in ("text_rate", "text_rate_lo", "text_rate_hi", "ocr_chars", "judge_clip_score", "judge_directional",
                   "ssim", "vgg_content_distance", "guide_clip_score", "guide_directional"):
        assert column in none, column
    assert none["judge"] == "ViT-B/16 (random weights)" and none["guide"] == "ViT-B/32 (random weights)"
    assert none["results"] == c2["results"] == "2"  # 1 image x 2 prompts per band
    assert none["text_rate_diff_vs_none"] == "" and c2["judge_clip_score_diff_vs_none"] != ""
    with open(out / "results.csv", newline="") as f:
        results = list(csv.DictReader(f))
    assert len(results) == 4
    # judge and guide are different models: their scores of the same images differ
    assert all(r["judge_clip_score"] != r["guide_clip_score"] for r in results)
    # the table's numbers are the results' means; the paired difference is the mean of the per-cell differences
    by = {(r["prompt"], r["band"]): float(r["judge_clip_score"]) for r in results}
    assert float(c2["judge_clip_score"]) == pytest.approx((by["pop art", "c2"] + by["fauvism", "c2"]) / 2, abs=1e-6)
    diffs = [by[p, "c2"] - by[p, "none"] for p in ("pop art", "fauvism")]
    assert float(c2["judge_clip_score_diff_vs_none"]) == pytest.approx(sum(diffs) / 2, abs=1e-6)
    assert float(c2["judge_clip_score_diff_vs_none_lo"]) <= float(c2["judge_clip_score_diff_vs_none"]) \
        <= float(c2["judge_clip_score_diff_vs_none_hi"])
    md = (out / "table.md").read_text()
    assert "| none | 2 |" in md and "| c2 - none |" in md and "| pop art | c2 | c2 |" in md
    assert "| fauvism | c3 | c2 | no |" in md  # the paper's band for Fauvism is c3; only c2 ran here
    page = (out / "report.html").read_text()
    assert "ViT-B/16 (random weights)" in page and page.count("data:image/png;base64") >= 5  # plot + 4 results
    assert (out / "evaluation" / "report.html").is_file() and (out / "manifest.json").is_file()


def test_paper_protocol_is_the_default_without_prompts():
    prompts, bands, flags = protocol_inputs(None, None, None, None, {"steps": 3, "size": None})
    assert prompts == list(PAPER_STYLES) and bands == ["none", "c1", "c2", "c3"]
    assert flags["steps"] == 3 and flags["size"] == "512x512" and flags["crops"] == 64 and flags["seed"] == 1234
    assert protocol_inputs(None, None, ["pop art"], None, {}) == (None, None, {})
    with pytest.raises(SpectralStyleError, match="paper's 12 styles"):
        protocol_inputs("paper", None, ["pop art"], None, {})
    with pytest.raises(SpectralStyleError, match="needs --text"):
        protocol_inputs("custom", None, None, None, {})


def test_content_from_folders_and_images(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for path in (a / "x.png", a / "y.png", b / "z.png", b / "x.png"):
        Image.new("RGB", (16, 16), (90, 20, 200)).save(path)
    assert [p.name for p in content_images([a, b / "z.png"])] == ["x.png", "y.png", "z.png"]
    with pytest.raises(SpectralStyleError, match="two content images are named x.png"):
        content_images([a, b])
    with pytest.raises(SpectralStyleError, match="does not exist"):
        content_images([tmp_path / "missing.png"])
    config = TransferConfig(steps=1, width=64, height=64, crops=2, crop_size=32, weights="random", device="cpu")
    plan = study_plan([a / "y.png", b / "z.png"], ["pop art"], ["none", "c2"], config, tmp_path / "S")
    assert [(j.name, j.band) for j in plan] == [("y.png", "c2"), ("y.png", "none"), ("z.png", "c2"), ("z.png", "none")]
    assert not grid_progress(plan, tmp_path / "S").complete and grid_progress(plan, tmp_path / "S").total == 4
    from spectralstyle.study.pipeline import summarize_study

    with pytest.raises(SpectralStyleError, match="4 of 4 jobs of the study are not finished"):
        summarize_study(plan, tmp_path / "S", config, "ViT-B/16")  # before any model is loaded


def test_slurm_script_submits_the_array_then_the_summary(tmp_path):
    """scripts/study_slurm.sh with a stand-in sbatch that records its arguments."""
    from pathlib import Path

    log = tmp_path / "sbatch.log"
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" >> {log}\necho ---- >> {log}\n'
                    'n=$(grep -c -- ---- ' f'{log}); echo "$((1000 + n))"\n')
    fake.chmod(0o755)
    script = Path(__file__).parents[1] / "scripts" / "study_slurm.sh"
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(script), "3", "photos dir/", "--text", "pop art", "--out", "/shared/s"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    grid, summary = log.read_text().split("----\n")[:2]
    assert "--array=0-2" in grid and "--phase run" in grid
    assert "study photos\\ dir/ --text pop\\ art --out /shared/s --phase run" in grid  # arguments stay quoted
    assert "--dependency=afterok:1001" in summary and "--phase summary" in summary
    assert "array job 1001 (3 tasks)" in proc.stdout and "job 1002" in proc.stdout
    bad = subprocess.run(["bash", str(script), "zero"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


def test_a_missing_judge_stops_the_study_before_its_grid():
    from spectralstyle.study.pipeline import find_judge

    find_judge(TransferConfig(weights="random"), "ViT-L/14")  # random weights: nothing to find
    with pytest.raises(SpectralStyleError) as info:  # offline with an empty cache (conftest)
        find_judge(TransferConfig(), "ViT-B/16")
    assert "ViT-B-16" in str(info.value) or "ViT-B/16" in str(info.value)
    with pytest.raises(SpectralStyleError, match="unknown judge"):
        find_judge(TransferConfig(), "RN50")
