"""Downloads against a server on 127.0.0.1: hash checks, progress, interruptions, one download per machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spectralstyle.errors import WeightsMissingError
from spectralstyle.weights import resolve
from spectralstyle.weights import sources as weights
from spectralstyle.weights.download import ChecksumMismatch, IncompleteDownload, download
from weights_env import FileServer, isolate, sha256

DATA = os.urandom(300_000)
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture()
def server():
    with FileServer({"w.bin": DATA}) as s:
        yield s


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_download_checks_the_hash_and_shows_progress(server, tmp_path, capsys):
    target = tmp_path / "w.bin"
    download(f"{server.url}/w.bin", target, sha256(DATA), label="test weights")
    assert target.read_bytes() == DATA
    err = capsys.readouterr().err
    assert "test weights" in err and "kB" in err  # rich's size column
    again = tmp_path / "again.bin"
    with pytest.raises(ChecksumMismatch):
        download(f"{server.url}/w.bin", again, "0" * 64, quiet=True)
    assert _leftovers(tmp_path) == ["w.bin"]  # the wrong file is not kept under any name


def test_interrupted_download_leaves_no_complete_looking_file(server, tmp_path):
    with pytest.raises(IncompleteDownload, match="150000 of 300000 bytes"):
        download(f"{server.url}/cut/w.bin", tmp_path / "w.bin", quiet=True)
    assert _leftovers(tmp_path) == []


def test_two_processes_download_once(server, tmp_path):
    """Two ranks sharing a cache start together: one downloads, the other waits and finds the file."""
    go = tmp_path / "go"
    script = (f"import sys, time, pathlib; sys.path.insert(0, {str(SRC)!r}); "
              "from spectralstyle.weights.download import download; go = pathlib.Path(sys.argv[1]); "
              "pathlib.Path(sys.argv[5]).touch(); "
              "[time.sleep(0.01) for _ in range(6000) if not go.exists()]; "
              "download(sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4], quiet=True)")
    args = [str(go), f"{server.url}/slow/w.bin", str(tmp_path / "cache" / "w.bin"), sha256(DATA)]
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", script, *args, str(r)]) for r in ready]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both have imported and start at the same moment
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert server.requests["/slow/w.bin"] == 1
    assert (tmp_path / "cache" / "w.bin").read_bytes() == DATA
    assert _leftovers(tmp_path / "cache") == ["w.bin"]


def test_vgg_downloads_into_torchvision_cache_with_its_hash_prefix(server, tmp_path, monkeypatch):
    roots = isolate(tmp_path, monkeypatch)
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE")
    name = f"vgg19-{sha256(DATA)[:8]}.pth"  # torchvision's naming: the SHA-256 prefix in the file name
    server.files[name] = DATA
    monkeypatch.setattr(weights, "VGG19_FILE", name)
    monkeypatch.setattr(weights, "VGG19_URL", f"{server.url}/{name}")
    path = resolve.fetch_model("vgg19")
    assert path == roots["torch"] / "hub" / "checkpoints" / name and path.read_bytes() == DATA
    server.files["vgg19-00000000.pth"] = DATA
    monkeypatch.setattr(weights, "VGG19_FILE", "vgg19-00000000.pth")
    monkeypatch.setattr(weights, "VGG19_URL", f"{server.url}/vgg19-00000000.pth")
    with pytest.raises(WeightsMissingError, match="Downloading failed: SHA-256"):
        resolve.fetch_model("vgg19")
    assert not (roots["torch"] / "hub" / "checkpoints" / "vgg19-00000000.pth").exists()


def test_vqgan_download_records_size_and_digest(server, tmp_path, monkeypatch):
    roots = isolate(tmp_path, monkeypatch)
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE")
    monkeypatch.setattr(weights, "VQGAN_URL", f"{server.url}/w.bin")
    path = resolve.fetch_model("vqgan-f16-16384")
    assert path == roots["cache"] / "vqgan_imagenet_f16_16384.ckpt"
    assert weights.check_record(path) == "recorded" and str(len(DATA)) in weights.record_path(path).read_text()
    path.write_bytes(DATA[:-1])
    with pytest.raises(WeightsMissingError, match="is damaged"):
        resolve.fetch_model("vqgan-f16-16384")
    weights.redownload_vqgan()
    assert resolve.fetch_model("vqgan-f16-16384").read_bytes() == DATA
    assert server.requests["/w.bin"] == 2
