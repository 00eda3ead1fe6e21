"""`spectralstyle evaluate` on awkward inputs: extreme aspect ratios, OCR failures, bad sidecars, weighted
multi-prompts from `generate`, --text against a sidecar text, reruns into the results folder and paths
with square brackets. The real rapidocr engine and random-weight CLIP (loaded once per session)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import spectralstyle.evaluation.ocr as ocr
from spectralstyle.cli.app import app
from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.metrics import ClipScorer, SidecarError, collect_inputs, evaluate_image
from spectralstyle.evaluation.report import write_report
from spectralstyle.media.files import write_json
from spectralstyle.media.images import load_image
from spectralstyle.method.prompts import parse_prompts
from test_metrics import gradient, render_word

TEXT = "pop art"
MULTI = "a lighthouse|dark clouds:0.5|written text:-1"


@pytest.fixture()
def fast_cli(monkeypatch, narrow_clip):
    """The CLI with the session's random CLIP instead of building a new one per command."""
    monkeypatch.setattr("spectralstyle.cli.evaluate._load_clip", lambda *args: narrow_clip)


def run_cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, result.output + (getattr(result, "stderr", "") or "")


def evaluate_cli(*args: str, out: Path):
    return run_cli("evaluate", *args, "--weights", "random", "--device", "cpu", "--out", str(out))


def rows(out: Path) -> dict[str, dict[str, str]]:
    return {Path(r["image"]).name: r for r in csv.DictReader((out / "metrics.csv").open())}


def strip(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (200, 100, 50)).save(path)
    return path


def failing_engine(monkeypatch, width: int) -> None:
    """The real OCR engine, except that it raises on images ``width`` pixels wide."""
    real = ocr.ocr_engine()

    def run(img):
        if np.asarray(img).shape[1] == width:
            raise RuntimeError("engine broke")
        return real(img)

    monkeypatch.setattr(ocr, "ocr_engine", lambda: run)


# --- 1. extreme aspect ratios and OCR failures ---------------------------------------------------------
def test_evaluate_folder_with_a_4000x20_image(tmp_path, fast_cli):
    folder = tmp_path / "imgs"
    folder.mkdir()
    strip(folder / "wide.png", (4000, 20))
    render_word(folder / "word.png")
    result, output = evaluate_cli(str(folder), "--text", TEXT, out=tmp_path / "out")
    assert result.exit_code == 0, output
    found = rows(tmp_path / "out")
    assert set(found) == {"wide.png", "word.png"}
    assert found["wide.png"]["text_boxes"] == "0" and found["word.png"]["ocr_strings"].upper() == "POP"


def test_evaluate_skips_an_image_the_ocr_engine_fails_on(tmp_path, fast_cli, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    gradient(folder / "broken_for_ocr.png", size=120)
    render_word(folder / "word.png", size=128)
    failing_engine(monkeypatch, 120)
    result, output = evaluate_cli(str(folder), "--text", TEXT, out=tmp_path / "out")
    assert result.exit_code == 0, output
    assert ("skipped:" in output and "broken_for_ocr.png" in output and "OCR failed" in output
            and "engine broke" in output)
    assert set(rows(tmp_path / "out")) == {"word.png"}
    assert "1 of 1 image with text" in output


def test_evaluate_exit_2_when_the_only_image_fails_ocr(tmp_path, fast_cli, monkeypatch):
    image = gradient(tmp_path / "only.png", size=120)
    failing_engine(monkeypatch, 120)
    result, output = evaluate_cli(str(image), "--text", TEXT, out=tmp_path / "out")
    assert result.exit_code == 2, output
    assert "error:" in output and "Traceback" not in output
    assert not (tmp_path / "out" / "report.html").exists()


# --- 2. bad sidecars ------------------------------------------------------------------------------------
BAD_SIDECARS = {
    "wrong_types": ('{"text": 5, "band": ["x"], "content": 7}', '"text" must be a string, not a number'),
    "wrong_band": ('{"text": "ink", "band": ["x"]}', '"band" must be a string, not a list'),
    "wrong_content": ('{"text": "ink", "content": 7}', '"content" must be a string'),
    "corrupt": ('{"text": ', "not valid JSON"),
    "not_an_object": ('["ink"]', "not a JSON object"),
    "bad_prompts": ('{"text": "a|b", "prompts": [{"text": "a", "weight": "x"}]}', '"prompts" must be a list'),
    "no_positive_prompt": ('{"text": "a:-1", "prompts": [{"text": "a", "weight": -1}]}',
                           "no prompt has a positive weight"),
    "text_too_long": (json.dumps({"text": " ".join(["word"] * 80)}), "too long for CLIP"),
}


@pytest.mark.parametrize("case", sorted(BAD_SIDECARS))
def test_bad_sidecar_in_folder_is_skipped_and_named(tmp_path, case):
    raw, reason = BAD_SIDECARS[case]
    render_word(tmp_path / "good.png", size=64)
    write_json({"text": TEXT, "band": "c2"}, tmp_path / "good.json")
    gradient(tmp_path / "bad.png", size=64)
    (tmp_path / "bad.json").write_text(raw)
    skipped: list[str] = []
    items = collect_inputs([tmp_path], "ink", skipped)
    assert [i.image.name for i in items] == ["good.png"]
    assert len(skipped) == 1 and "bad.json" in skipped[0] and reason in skipped[0]
    with pytest.raises(SidecarError, match="bad.json"):
        collect_inputs([tmp_path / "bad.png"], "ink")  # named directly: an error (exit 2 in the CLI)


def test_evaluate_cli_skips_bad_sidecars(tmp_path, fast_cli):
    folder = tmp_path / "results"
    folder.mkdir()
    render_word(folder / "good.png", size=128)
    for name, raw in (("types", '{"text": 5, "band": ["x"], "content": 7}'), ("corrupt", '{"text": ')):
        gradient(folder / f"{name}.png", size=64)
        (folder / f"{name}.json").write_text(raw)
    result, output = evaluate_cli(str(folder), "--text", TEXT, out=tmp_path / "out")
    assert result.exit_code == 0, output
    assert "Traceback" not in output
    assert "types.json" in output and "must be a string" in output
    assert "corrupt.json" in output and "not valid JSON" in output
    assert set(rows(tmp_path / "out")) == {"good.png"}

    result, output = evaluate_cli(str(folder / "types.png"), out=tmp_path / "out2")
    assert result.exit_code == 2 and "error:" in output and "types.json" in output and "Traceback" not in output


# --- 3. weighted multi-prompts, --text against a sidecar text ------------------------------------------
def generate_sidecar(image: Path, spec: str) -> None:
    """The sidecar fields that `spectralstyle generate` writes for a weighted multi-prompt."""
    write_json({"kind": "generation", "content": None, "text": spec, "band": "c2", "generator": "fourier",
                "status": "finished", "prompts": [dataclasses.asdict(p) for p in parse_prompts(spec)]},
               image.with_suffix(".json"))


def test_multi_prompt_is_scored_against_its_positive_prompts(tmp_path, narrow_clip):
    image = gradient(tmp_path / "gen.png", size=64)
    generate_sidecar(image, MULTI)
    [item] = collect_inputs([tmp_path])
    assert item.text == MULTI and item.scored_text == "a lighthouse|dark clouds:0.5"
    scorer = ClipScorer(narrow_clip)
    result = evaluate_image(item, scorer)
    pixels = load_image(image)
    expected = (scorer.score(pixels, "a lighthouse") + 0.5 * scorer.score(pixels, "dark clouds")) / 1.5
    assert result.clip_score == pytest.approx(expected, abs=1e-6)
    assert result.clip_score != pytest.approx(scorer.score(pixels, MULTI), abs=1e-6)
    # directional: the same weighted average of the per-prompt directional scores
    content = load_image(render_word(tmp_path / "content.png", size=64))
    expected_dir = (scorer.directional(pixels, content, "a lighthouse")
                    + 0.5 * scorer.directional(pixels, content, "dark clouds")) / 1.5
    assert scorer.weighted_directional(pixels, content, item.scored_prompts) == pytest.approx(expected_dir, abs=1e-6)

    files = write_report([result], tmp_path / "report")
    [row] = csv.DictReader(files.csv.open())
    assert row["text"] == MULTI and row["scored_text"] == "a lighthouse|dark clouds:0.5"
    assert "weight-averaged" in row["note"] and "written text:-1" in row["note"]
    page = files.html.read_text()
    assert "scored against “a lighthouse|dark clouds:0.5”" in page and "weight-averaged" in page


def test_plain_generate_prompt_scores_as_its_text(tmp_path, narrow_clip):
    image = gradient(tmp_path / "gen.png", size=64)
    generate_sidecar(image, TEXT)
    [item] = collect_inputs([tmp_path])
    assert not item.weighted and item.scored_text == TEXT
    scorer = ClipScorer(narrow_clip)
    assert evaluate_image(item, scorer).clip_score == pytest.approx(scorer.score(load_image(image), TEXT), abs=1e-6)


def test_sidecar_text_wins_over_text_flag_with_a_note(tmp_path, fast_cli):
    folder = tmp_path / "results"
    folder.mkdir()
    render_word(folder / "styled.png", size=128)
    write_json({"text": "ink wash", "band": "c2"}, folder / "styled.json")
    gradient(folder / "plain.png", size=64)
    result, output = evaluate_cli(str(folder), "--text", TEXT, out=tmp_path / "out")
    assert result.exit_code == 0, output
    assert "note:" in output and "styled.png" in output and "ink wash" in output
    found = rows(tmp_path / "out")
    assert found["styled.png"]["text"] == "ink wash" and found["plain.png"]["text"] == TEXT

    _, output = evaluate_cli(str(folder), "--text", "ink wash", out=tmp_path / "out2")
    assert "note:" not in output  # the same text: nothing to say


# --- 4. evaluate's own outputs are not inputs ---------------------------------------------------------------
def test_second_run_with_out_in_the_results_folder(tmp_path, fast_cli):
    folder = tmp_path / "o12"
    folder.mkdir()
    render_word(folder / "word.png", size=128)
    write_json({"text": TEXT, "band": "none"}, folder / "word.json")
    for _ in range(2):
        result, output = evaluate_cli(str(folder), out=folder)
        assert result.exit_code == 0, output
        assert set(rows(folder)) == {"word.png"}
        assert "1 of 1 image with text" in output
    assert "bands.png" in output  # named once in the skip note
    # an --out folder inside the results: on the second run `evaluate o12/* --out o12/ev` names it too
    for paths in ([folder / "word.png"], [folder / "word.png", folder / "ev"]):
        result, output = evaluate_cli(*map(str, paths), out=folder / "ev")
        assert result.exit_code == 0, output
        assert set(rows(folder / "ev")) == {"word.png"}


def test_plots_moved_elsewhere_are_still_not_inputs(tmp_path, fast_cli):
    first = tmp_path / "first"
    render_word(tmp_path / "word.png", size=128)
    assert evaluate_cli(str(tmp_path / "word.png"), "--text", TEXT, out=first)[0].exit_code == 0
    folder = tmp_path / "mixed"
    folder.mkdir()
    render_word(folder / "word.png", size=128)
    for plot in ("bands.png", "clip_vs_text_area.png"):
        (folder / plot).write_bytes((first / plot).read_bytes())
    items = collect_inputs([folder], TEXT, [])
    assert [i.image.name for i in items] == ["word.png"]


# --- 5. square brackets in paths and texts are printed as they are -------------------------------------
def test_brackets_in_paths_are_printed_verbatim(tmp_path, fast_cli):
    folder = tmp_path / "in[bold]"
    folder.mkdir()
    render_word(folder / "word[red].png", size=128)
    (folder / "bad[red].png").write_text("not a png")
    (folder / "word[red].json").write_text(json.dumps({"text": "[blue]ink", "band": "[green]c2"}))
    out = tmp_path / "ev12[red]"
    result, output = evaluate_cli(str(folder), "--text", TEXT, out=out)
    assert result.exit_code == 0, output
    assert f"{out / 'report.html'}" in output and f"{out / 'metrics.csv'}" in output
    assert "bad[red].png" in output  # the skip note
    assert "word[red].png" in output and "[blue]ink" in output  # the --text note
    assert "[green]c2" in output  # the per-band table

    result, output = run_cli("analyze", str(folder / "word[red].png"), "--text", TEXT, "--weights", "random",
                             "--device", "cpu", "--out", str(out / "an[red]"))
    assert result.exit_code == 0, output
    assert str(out / "an[red]" / "per_image.csv") in output


def test_text_flag_problems_are_errors_before_anything_is_written(tmp_path):
    gradient(tmp_path / "a.png", size=64)
    with pytest.raises(SpectralStyleError, match="--text"):
        collect_inputs([tmp_path], " ")
