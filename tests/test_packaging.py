"""What a normal (non-editable) install gets: every module, the prompt templates and the presets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("spectralstyle-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_every_module_and_the_data(wheel):
    names = set(wheel.namelist())
    modules = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "spectralstyle").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert "spectralstyle/data/imagenet_templates.txt" in names
    assert {"spectralstyle/data/coffee.jpg", "spectralstyle/data/SAMPLE_LICENSE.txt"} <= names  # `demo`'s photo
    presets = {f"spectralstyle/presets/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    assert presets and presets <= names, sorted(presets - names)


def test_preset_by_name_from_any_folder(tmp_path, monkeypatch):
    from spectralstyle.settings import TransferConfig, preset_names, resolve_settings

    monkeypatch.chdir(tmp_path)  # not the checkout: the name must not depend on the working folder
    assert {"default", "quick", "paper"} <= set(preset_names())
    quick = resolve_settings(TransferConfig, "quick")
    assert (quick.width, quick.crops, quick.steps) == (256, 16, 60)
    assert resolve_settings(TransferConfig, "default") == TransferConfig()
