"""evaluate's and analyze's outputs: declared names, never another evaluation's files overwritten, and a
report that marks random-weights results and shows each result's key settings. No CLIP needed: the
measurements are given, the files (CSV, plots, HTML) are written for real."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

from spectralstyle.evaluation.inputs import EvalInput, collect_images
from spectralstyle.evaluation.ocr import TextSummary
from spectralstyle.evaluation.outputs import (
    REPORT_HTML,
    choose_outputs,
    evaluation_key,
    is_output_name,
    suffixed,
    write_evaluation_record,
)
from spectralstyle.evaluation.report import write_report
from spectralstyle.evaluation.scores import ImageMetrics
from spectralstyle.record import RunRecord


def result(path: Path, seed: int, weights: str = "random") -> ImageMetrics:
    Image.new("RGB", (32, 24), (seed * 20 % 255, 90, 40)).save(path)
    record = RunRecord(text="pop art", band="c2", steps_done=2, config={
        "steps": 2, "size": [64, 48], "seed": seed, "precision": "fp32", "weights": weights})
    return ImageMetrics(EvalInput(path, "pop art", "c2", record=record), TextSummary((), 32, 24), 0.25)


def test_names_are_plain_when_free_or_ours_and_hashed_otherwise(tmp_path):
    names, note = choose_outputs(tmp_path, "evaluate", [tmp_path / "a.png"], {"weights": "random"})
    assert names.tag == "" and note is None and names.path("html") == tmp_path / REPORT_HTML
    write_evaluation_record(names, [tmp_path / "a.png"], {"weights": "random"})
    same, _ = choose_outputs(tmp_path, "evaluate", [tmp_path / "a.png"], {"weights": "random"})
    assert same.tag == ""  # the same evaluation again: its own names
    other, note = choose_outputs(tmp_path, "evaluate", [tmp_path / "a.png"], {"weights": "pretrained"})
    key = evaluation_key("evaluate", [tmp_path / "a.png"], {"weights": "pretrained"})
    assert other.tag == key[:8] and other.path("html").name == f"report_{key[:8]}.html"
    assert note.count("\n") == 0 and "report.html holds another evaluate" in note and "--overwrite" in note
    assert choose_outputs(tmp_path, "evaluate", [tmp_path / "b.png"], {}, overwrite=True)[0].tag == ""
    assert choose_outputs(tmp_path, "analyze", [tmp_path / "b.png"], {})[0].tag == ""  # analyze's names are apart


def test_files_of_unknown_origin_are_not_replaced(tmp_path):
    (tmp_path / "metrics.csv").write_text("made by someone else\n")  # e.g. an evaluation from before report.json
    names, note = choose_outputs(tmp_path, "evaluate", [tmp_path / "a.png"], {})
    assert names.tag and note


def test_suffixed_plots_are_recognised_as_outputs():
    assert suffixed("clip_vs_text_area.png", "0123abcd") == "clip_vs_text_area_0123abcd.png"
    assert all(is_output_name(n) for n in ("bands.png", "bands_0123abcd.png", "spectrum_0123456789ab.png"))
    assert not any(is_output_name(n) for n in ("photo.png", "bands_x.png", "photo_0123abcd.png"))


def test_a_second_evaluation_into_one_folder_keeps_the_first(tmp_path):
    out = tmp_path / "eval"
    first = write_report([result(tmp_path / "a.png", 7)], out, {"weights": "random"})
    kept = {p: p.read_bytes() for p in first.all}
    notes: list[str] = []
    second = write_report([result(tmp_path / "b.png", 8)], out, {"weights": "random"}, on_note=notes.append)
    assert {p: p.read_bytes() for p in first.all} == kept  # the first evaluation's files are untouched
    assert second.html != first.html and second.note and notes == [second.note]
    assert {p.name for p in second.all} == {suffixed(p.name, second.html.stem.rsplit("_", 1)[1]) for p in first.all}
    again = write_report([result(tmp_path / "b.png", 8)], out, {"weights": "random"}, on_note=notes.append)
    assert again.html == second.html and len(notes) == 2  # the same evaluation finds its own names again
    replaced = write_report([result(tmp_path / "b.png", 8)], out, {"weights": "random"}, overwrite=True)
    assert replaced.html == first.html and "b.png" in first.csv.read_text()
    assert collect_images([tmp_path, out], out_dir=out) == [tmp_path / "a.png", tmp_path / "b.png"]  # not the plots


def test_report_marks_random_weights_and_tells_two_runs_apart(tmp_path):
    runs = [result(tmp_path / "photo_pop-art_c2.png", 7), result(tmp_path / "photo_pop-art_c2_ab12cd34.png", 8,
                                                                  weights="pretrained")]
    files = write_report(runs, tmp_path / "eval", scored_with="CLIP ViT-B/32, random weights")
    page = files.html.read_text()
    assert "steps 2 · size 64x48 · band c2 · seed 7 · precision fp32" in page
    assert "steps 2 · size 64x48 · band c2 · seed 8 · precision fp32" in page
    assert page.count('<span class="random"') == 2  # the one random card, and the banner
    assert "1 of 2 results made with random weights" in page and "scored with CLIP ViT-B/32, random weights" in page
    rows = list(csv.DictReader(files.csv.open()))
    assert [(r["weights"], r["seed"], r["steps"], r["size"]) for r in rows] == [("random", "7", "2", "64x48"),
                                                                              ("pretrained", "8", "2", "64x48")]


def test_evaluate_command_keeps_an_earlier_report_unless_overwrite(tmp_path, monkeypatch, narrow_clip):
    from typer.testing import CliRunner

    from spectralstyle.cli.app import app
    from spectralstyle.media.files import write_json

    monkeypatch.setattr("spectralstyle.cli.evaluate._load_clip", lambda *args: narrow_clip)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (48, 32), (40, 120, 200)).save(tmp_path / name / f"{name}.png")
        write_json({"text": "pop art", "band": "c2"}, tmp_path / name / f"{name}.json")
    out = tmp_path / "eval"

    def evaluate(folder: str, *extra: str):
        run = CliRunner().invoke(app, ["evaluate", str(tmp_path / folder), "--weights", "random", "--device", "cpu",
                                       "--out", str(out), *extra])
        assert run.exit_code == 0, run.output
        return run.output

    evaluate("a")
    first = (out / "report.html").read_bytes()
    output = evaluate("b")
    assert (out / "report.html").read_bytes() == first  # not silently replaced
    [second] = [p for p in out.glob("report_*.html")]
    assert output.count("holds another evaluate") == 1 and second.name in output.replace("\n", "")
    assert "b.png" in second.read_text() and "b.png" in next(out.glob("metrics_*.csv")).read_text()
    evaluate("b", "--overwrite")
    assert "b.png" in (out / "metrics.csv").read_text()
