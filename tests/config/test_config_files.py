"""Hostile config files are refused in one line before their values are built (config/files.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spectralstyle.config.files import MAX_DEPTH, MAX_VALUES, read_yaml_mapping
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import TransferConfig, resolve_settings

LAUGHS = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                   + [f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]"
                      for a, b in zip("abcdefgh", "bcdefghi")]) + "\nsteps: *i\n"


def refused(tmp_path, text: str, *words: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SpectralStyleError) as info:
        resolve_settings(TransferConfig, path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, message
    for word in words:
        assert word in message, message
    return message


def test_nested_aliases_are_measured_not_expanded(tmp_path):
    assert len(LAUGHS) < 600  # like the 536-byte file: 9**9 values once expanded
    refused(tmp_path, LAUGHS, f"more than {MAX_VALUES} values")


def test_the_billion_laughs_file_exits_2_at_once(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    proc = subprocess.run([sys.executable, "-m", "spectralstyle", "transfer", str(tmp_path / "x.png"), "pop art",
                           "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr) < 500 and proc.stderr.startswith("error:"), proc.stderr


def test_a_few_aliases_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {steps: 3}\n")
    assert read_yaml_mapping(path)["base"] == {"steps": 3}
    path.write_text("steps: &s 3\nlr_step: *s\n")
    assert resolve_settings(TransferConfig, path).lr_step == 3


def test_duplicate_and_non_text_keys(tmp_path):
    refused(tmp_path, "steps: 2\ncrops: 4\nsteps: 3\n", "'steps' twice", "lines 1 and 3")
    refused(tmp_path, "1: 2\n", "not a setting name", "1")
    refused(tmp_path, "? [a, b]\n: 2\n", "not a setting name")


def test_deep_nesting_is_one_line(tmp_path):
    message = refused(tmp_path, "steps: " + "[" * 5000 + "]" * 5000 + "\n", f"more than {MAX_DEPTH} levels")
    assert len(message) < 200


def test_long_values_and_keys_are_shortened(tmp_path):
    refused(tmp_path, "steps: " + "9" * 100_000 + "x\n", "steps", "…")
    refused(tmp_path, "k" * 1000 + ": 1\n", "unknown setting", "…")


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    refused(tmp_path, "# " + "x" * 300_000 + "\n", "larger than")
