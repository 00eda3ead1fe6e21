"""Weights files told from their first bytes: incomplete downloads named at once, reads stopped at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spectralstyle.errors import SpectralStyleError, WeightsMissingError
from spectralstyle.method import weights_check
from spectralstyle.weights.formats import PICKLE, SAFETENSORS, ZIP, sniff

EXE = Path(sys.executable).with_name("spectralstyle")


def test_zero_filled_clip_weights_is_one_line_within_seconds(tmp_path, content_image):
    """Acceptance (issue 20): a 300 MB zero-filled --clip-weights file: exit 2 within 10 s, no word "tar"."""
    zeros = tmp_path / "ViT-B-32.pt"
    with open(zeros, "wb") as f:
        f.truncate(300 * 2**20)  # sparse: what a preallocated, interrupted download leaves
    start = time.monotonic()
    proc = subprocess.run([str(EXE), "transfer", str(content_image), "pop art", "--clip-weights", str(zeros),
                           "--weights", "random", "--steps", "1", "--size", "64x48", "--crops", "2",
                           "--crop-size", "32",
                           "--device", "cpu", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert elapsed < 10, elapsed
    assert "tar" not in proc.stderr.lower() and "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "incomplete download" in error[0] and str(zeros) in error[0]


def _zip_file(path: Path) -> Path:
    torch.save({"w": torch.arange(1000.0)}, path)
    return path


def test_formats_from_their_first_bytes(tmp_path):
    from safetensors.torch import save_file

    assert sniff(_zip_file(tmp_path / "a.pt")) == ZIP
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    assert sniff(legacy) == PICKLE
    st = tmp_path / "b.bin"  # by content, not by suffix
    save_file({"w": torch.ones(4)}, st)
    assert sniff(st) == SAFETENSORS


@pytest.mark.parametrize("damage", ["empty", "zeros", "cut-zip", "cut-safetensors", "zero-tail-zip", "html"])
def test_incomplete_downloads_are_named(tmp_path, damage):
    from safetensors.torch import save_file

    whole = _zip_file(tmp_path / "whole.pt")
    path = tmp_path / "file.pt"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "zeros":
        path.write_bytes(bytes(100_000))
    elif damage == "cut-zip":
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif damage == "zero-tail-zip":  # preallocated, half written
        data = whole.read_bytes()
        path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    elif damage == "cut-safetensors":
        save_file({"w": torch.ones(10_000)}, tmp_path / "whole.safetensors")
        path = tmp_path / "file.safetensors"
        path.write_bytes((tmp_path / "whole.safetensors").read_bytes()[:5000])
    else:
        path.write_bytes(b"<!DOCTYPE html><html><body>429 Too Many Requests</body></html>")
    with pytest.raises(WeightsMissingError) as info:
        sniff(path, "CLIP checkpoint")
    message = str(info.value)
    assert "incomplete download" in message and "not a readable CLIP checkpoint" in message and "\n" not in message


def test_a_foreign_file_is_not_a_weights_format(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_bytes(b"PNG? no: just some bytes that are not weights")
    with pytest.raises(WeightsMissingError, match="no weights format starts with its bytes"):
        sniff(path)


def test_weights_import_reads_a_file_once(tmp_path, monkeypatch):
    """identify() reads the file once and tries the loaded object as CLIP, VGG19 and VQGAN in turn."""
    calls = []
    real = weights_check.read_weights

    def counting(path, what):
        calls.append(path)
        return real(path, what)

    monkeypatch.setattr(weights_check, "read_weights", counting)
    path = tmp_path / "other.pt"
    torch.save({"decoder.conv_in.weight": torch.ones(2, 2)}, path)
    with pytest.raises(SpectralStyleError) as info:
        weights_check.identify(path)
    assert len(calls) == 1
    reasons = str(info.value).split(": ", 1)[1].split(" | ")
    assert len(reasons) == 3 and "VQGAN" in reasons[0]  # its key names are VQGAN's: that reason first


def test_weights_import_of_a_stylenet_says_apply(tmp_path, monkeypatch):
    from spectralstyle.cli.app import app
    from spectralstyle.method.stylenet import StyleNet
    from spectralstyle.runs.outputs import save_stylenet

    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "pop-art_c2.stylenet.pt"
    save_stylenet(StyleNet(ngf=4), model, {"text": "pop art"})
    result = CliRunner().invoke(app, ["weights", "import", str(model)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "StyleNet" in lines[0] and f"spectralstyle apply {model}" in lines[0]
    assert not (tmp_path / "cache").exists()


SLOW_HASH = """
import sys, time
from pathlib import Path
from spectralstyle.interrupts import stop_at_step_boundary
from spectralstyle.weights.download import sha256_of
try:
    with stop_at_step_boundary():  # as in every command: there the first signal alone only asks to stop later
        print("ready", flush=True)
        sha256_of(Path(sys.argv[1]))
except KeyboardInterrupt:
    print("stopped", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_stops_a_weights_read_at_once(tmp_path, signum):
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(64 * 2**30)  # sparse: hashing it would take minutes
    proc = subprocess.Popen([sys.executable, "-c", SLOW_HASH, str(big)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out.strip() == "stopped"
    assert time.monotonic() - sent < 5


def test_given_files_are_sniffed_without_torch(tmp_path):
    """The early check of --clip-weights and friends imports no torch (it runs before models load)."""
    zeros = tmp_path / "vgg.pth"
    zeros.write_bytes(bytes(8192))
    code = (f"import sys, types; from spectralstyle.weights.formats import check_given_files\n"
            f"try:\n    check_given_files(types.SimpleNamespace(vgg_weights={str(zeros)!r}))\n"
            f"except Exception as exc:\n    print(json.dumps([str(exc), 'torch' in sys.modules]))\n")
    proc = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, timeout=60)
    message, torch_loaded = json.loads(proc.stdout)
    assert "incomplete download" in message and "not a readable VGG19 state dict" in message and not torch_loaded
