"""Errors that need no model come before torch is imported: one short line, exit 2 (issues 19 and 20).

One subprocess runs every case through the app and reports whether torch was imported by then, so
the claim is checked without timing anything.
"""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

SCRIPT = r"""
import json, sys
from spectralstyle.cli.app import app
cases = json.loads(sys.argv[1])
report = []
for args in cases:
    try:
        app(args, prog_name="spectralstyle", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code
    report.append({"code": code, "torch": "torch" in sys.modules})
print(json.dumps(report))
"""


def run_cases(cases: list[list[str]], tmp_path) -> tuple[list[dict], list[str]]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(cases)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return json.loads(proc.stdout), lines


def test_mistakes_are_one_line_before_torch(tmp_path):
    image = tmp_path / "c.png"
    Image.new("RGB", (64, 48)).save(image)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "weights").mkdir()
    long_prompt = "word " * 20_000  # 100 kB
    tiny = ["--weights", "random", "--device", "cpu"]
    cases = {
        "image missing": ["transfer", str(tmp_path / "none.png"), "pop art", *tiny],
        "empty text": ["transfer", str(image), "  ", *tiny],
        "bad device": ["transfer", str(image), "pop art", "--weights", "random", "--device", "gpu"],
        "out is a file": ["transfer", str(image), "pop art", *tiny, "--out", str(blocker)],
        "out under a file": ["transfer", str(image), "pop art", *tiny, "--out", str(blocker / "o")],
        "folder": ["transfer", str(tmp_path), "pop art", *tiny],
        "steps bound": ["transfer", str(image), "pop art", *tiny, "--steps", "99999999999999999999999"],
        "source text": ["transfer", str(image), "pop art", *tiny, "--source-text", "very " * 100],
        "vgg folder": ["transfer", str(image), "pop art", *tiny, "--vgg-weights", str(tmp_path / "weights")],
        "long prompt": ["transfer", str(image), long_prompt, *tiny],
        "train text": ["train", "", "--images", str(image), *tiny],
        "generate device": ["generate", "a cat", "--device", "tpu"],
        "apply contrast": ["apply", "m.stylenet.pt", str(image), "--contrast", "-1"],
        "mask missing": ["transfer", str(image), "pop art", *tiny, "--mask", "none.png"],
        "model missing": ["apply", "m.stylenet.pt", str(image)],
        "apply input missing": ["apply", str(blocker), "none.png"],
        "mix missing": ["apply", str(blocker), str(image), "--mix", "none.stylenet.pt"],
        "photo as model": ["apply", str(image), str(image)],
        "evaluate missing": ["evaluate", "results"],
        "batch folder missing": ["batch", "photos", "--text", "pop art", "--out", "o"],
        "prompts missing": ["batch", str(tmp_path), "--prompts", "none.txt", "--out", "o"],
        "train images missing": ["train", "pop art", "--images", "photos", *tiny],
        "study content missing": ["study", "photos", "--out", "s"],
    }
    report, lines = run_cases(list(cases.values()), tmp_path)
    assert [r["code"] for r in report] == [2] * len(cases), dict(zip(cases, report))
    assert not any(r["torch"] for r in report), "torch was imported before a mistake that needs no model"
    assert len(lines) == len(cases), lines  # one line each
    assert all(line.startswith("error: ") and len(line) < 500 for line in lines), lines
    said = dict(zip(cases, lines))
    assert "does not exist" in said["image missing"]
    assert "unknown device 'gpu'" in said["bad device"]
    assert "is not a folder" in said["out is a file"] and "is a file" in said["out under a file"]
    assert "spectralstyle batch" in said["folder"]
    assert "steps must be in [1, 10000000]" in said["steps bound"] and "space" not in said["steps bound"]
    assert "source_text is too long" in said["source text"]
    assert "is a folder, not a weights file" in said["vgg folder"]
    assert "too long for CLIP" in said["long prompt"] and "…" in said["long prompt"]
    assert said["mask missing"].endswith("mask none.png does not exist")
    assert said["model missing"].endswith("model file m.stylenet.pt does not exist")
    assert said["apply input missing"].endswith("input none.png does not exist")
    assert said["mix missing"].endswith("--mix model file none.stylenet.pt does not exist")
    assert "c.png is an image, not a style model: `apply MODEL IMAGES...` takes the model first" in said[
        "photo as model"]
    assert said["evaluate missing"].endswith("results does not exist")
    assert said["batch folder missing"].endswith("content folder photos does not exist or is not a folder")
    assert said["prompts missing"].endswith("prompts file none.txt does not exist")
    assert said["train images missing"].endswith("photos does not exist")
    assert said["study content missing"].endswith("content photos does not exist")
    assert not (tmp_path / "outputs").exists()  # nothing created by a refused run


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch, capsys):
    """`spectralstyle ... | head`: when the reader has gone, no "error: file system error: Broken pipe" line."""
    import io

    import pytest
    import typer

    from spectralstyle.cli.common import one_line_errors

    def write_into_a_closed_pipe() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with pytest.raises(typer.Exit) as stopped:
        one_line_errors(write_into_a_closed_pipe)
    assert stopped.value.exit_code == 1 and capsys.readouterr().err == ""
    with pytest.raises(typer.Exit) as other:  # any other file system error is still one line, exit 2
        one_line_errors(lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert other.value.exit_code == 2
