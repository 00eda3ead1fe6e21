"""The README is a user's page: short, a quickstart first, and its first command and Python example run."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_short_and_starts_with_a_quickstart():
    lines = README.splitlines()
    assert len(lines) <= 300
    assert any(line.startswith("## Quickstart") for line in lines[:40])
    assert "--weights random" in "\n".join(lines[:40])


def test_the_quickstart_demo_runs_as_written(tmp_path, monkeypatch):
    """The first command a new user types, unchanged (the sample photo is 512x341: at --size 128 it works at
    128x88, so the default 128-px crops must shrink to fit)."""
    line = next(line for line in README.splitlines() if line.startswith("spectralstyle demo "))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, shlex.split(line, comments=True)[1:])
    assert result.exit_code == 0, result.output
    assert "try/coffee_pop-art_c2.png" in result.stdout and (tmp_path / "try" / "coffee_pop-art_c2.json").is_file()
    assert "crops of 88 px" in result.output


def _python_block(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_api_example_runs(tmp_path, monkeypatch):
    """The README's API example, on small files of the names it uses, with tiny random-weights settings
    in place of ``steps=100`` (the only change: the example's own calls and files are used)."""
    code = _python_block("## Python API")
    assert "steps=100" in code
    code = code.replace("steps=100", 'steps=1, size="64x48", crops=2, crop_size=32, weights="random", device="cpu"')
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (80, 60), (200, 120, 40)).save("photo.jpg")
    Image.new("RGB", (120, 90), (20, 120, 200)).save("big.jpg")
    Image.new("L", (120, 90), 255).save("sky.png")
    namespace: dict = {}
    # the example loads styles/pop-art_c2.stylenet.pt: the model it trained, saved under that name first
    first, rest = code.split("style = ", 1)
    exec(first, namespace)  # noqa: S102 - the README's own example
    os.makedirs("styles")
    namespace["model"].save("styles/pop-art_c2.stylenet.pt")
    exec("style = " + rest, namespace)  # noqa: S102
    assert Image.open("photo_pop-art.png").size == (80, 60)
    assert Image.open("big_pop-art.png").size == (120, 90)
    assert Path("photo_pop-art_with_record.json").is_file()
