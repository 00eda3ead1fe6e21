"""The command line starts instantly: help, version and completion load no model library."""

from __future__ import annotations

import json
import os
import subprocess
import sys

COMMANDS = ("transfer", "apply", "batch", "evaluate", "analyze", "generate", "train", "video", "bench", "study", "demo",
            "weights")
HEAVY = ("torch", "torchvision", "clip", "rapidocr", "matplotlib", "av", "transformers")


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "spectralstyle", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def imported(importtime_stderr: str) -> set[str]:
    """Top-level packages named in ``-X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


HELP_CASES = [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)]
HELP_SCRIPT = r"""
import io, json, sys
from contextlib import redirect_stdout
from spectralstyle.cli.app import app
report = []
for args in json.loads(sys.argv[1]):
    with redirect_stdout(io.StringIO()) as shown:
        try:
            app(args, prog_name="spectralstyle")
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    report.append({"args": args, "code": code, "chars": len(shown.getvalue())})
print(json.dumps(report))
"""


def test_help_and_version_import_no_model_library():
    """Every command's help and --version, one after another in one fresh process (one start-up instead
    of 14): the modules a process holds only grow, so no heavy one at the end means none was loaded by any."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", HELP_SCRIPT, json.dumps(HELP_CASES)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert [r["args"] for r in report] == HELP_CASES
    assert all(r["code"] == 0 and r["chars"] > 10 for r in report), report  # each printed its help or version
    loaded = imported(proc.stderr)
    assert "spectralstyle" in loaded  # the measurement itself works
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_every_command_is_registered():
    proc = run("--help")
    for command in COMMANDS:
        assert f" {command} " in proc.stdout, proc.stdout


def test_shell_completion_script():
    proc = subprocess.run([sys.executable, "-m", "spectralstyle", "--show-completion", "bash"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "complete" in proc.stdout and "_SPECTRALSTYLE_COMPLETE" in proc.stdout.upper()


def test_help_lists_choices_and_flags():
    out = run("transfer", "--help").stdout
    assert "fp32|bf16|fp16" in out and "pretrained|random" in out and "plain|filtered" in out
    assert "--compile" in out and "--no-compile" in out
    assert "<bool>" not in out.split("--help")[0]  # flags show no value type
    assert "fourier|vqgan" in run("generate", "--help").stdout


def test_bad_choice_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "spectralstyle", "transfer", "x.jpg", "pop art",
                           "--precision", "fp17"],
                          capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "fp17" in lines[0] and "fp32" in lines[0]
