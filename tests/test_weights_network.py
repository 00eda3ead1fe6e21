"""Missing weights without network: a few seconds, one short message, no lock file, every missing model named."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spectralstyle.errors import WeightsMissingError
from spectralstyle.weights import network
from spectralstyle.weights.download import download
from spectralstyle.weights.resolve import require_generate_files
from weights_env import FileServer, isolate

EXE = Path(sys.executable).with_name("spectralstyle")


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    network.forget()
    yield isolate(tmp_path, monkeypatch)
    network.forget()


@pytest.fixture()
def silent_port():
    """A 127.0.0.1 port that takes connections (the kernel's backlog) but never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def _locks(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*.lock")]


def test_transfer_without_weights_behind_a_silent_proxy(roots, silent_port, content_image, tmp_path):
    """Acceptance (issue 19): empty HOME, no network: exit 2 within 12 s, under 1,200 characters, no traceback,
    no lock file. The only route out is a proxy that never answers (the environment's proxy, as on a cluster)."""
    proxy = f"http://127.0.0.1:{silent_port}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "spectralstyle_offline")}
    env.update(http_proxy=proxy, https_proxy=proxy, HTTP_PROXY=proxy, HTTPS_PROXY=proxy)
    start = time.monotonic()
    proc = subprocess.run([str(EXE), "transfer", str(content_image), "pop art", "--steps", "1", "--size", "64x48",
                           "--crops", "2", "--crop-size", "32", "--device", "cpu", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert elapsed < 12, elapsed
    assert "Traceback" not in proc.stderr and len(proc.stderr) < 1200, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert "CLIP ViT-B/32 and VGG19" in first and "spectralstyle weights download" in first
    assert "--weights random" in first and "no network" in proc.stderr.lower()
    assert first.endswith("shows every place looked in") and "..." not in first, first  # the why fits whole
    assert _locks(*roots.values()) == []


def test_network_is_asked_once_per_process(roots, silent_port, monkeypatch):
    monkeypatch.setattr(network, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{silent_port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    start = time.monotonic()
    for host in ("a.example", "b.example", "c.example"):
        with pytest.raises(network.NetworkUnreachable, match="no answer"):
            download(f"http://{host}/w.bin", roots["cache"] / f"{host}.bin")
    assert time.monotonic() - start < 1.5  # one wait, then known
    assert list(roots["cache"].iterdir()) == [] and network.network_down()


def test_a_refused_port_fails_at_once_and_leaves_no_lock(roots):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = roots["cache"] / "sub" / "w.bin"
    with pytest.raises(OSError):
        download(f"http://127.0.0.1:{port}/w.bin", target)
    assert not (roots["cache"] / "sub").exists()  # nothing created before the answer
    assert not network.network_down()  # only that server is known to refuse


def test_a_failed_download_leaves_no_lock_file(roots):
    with FileServer({"w.bin": b"x" * 1000}) as server:
        with pytest.raises(OSError):
            download(f"{server.url}/missing.bin", roots["cache"] / "missing.bin")  # 404 after the lock is taken
        download(f"{server.url}/w.bin", roots["cache"] / "w.bin")
    assert sorted(p.name for p in roots["cache"].iterdir()) == ["w.bin"]


def test_generate_vqgan_names_every_missing_model(roots):
    with pytest.raises(WeightsMissingError) as err:
        require_generate_files("ViT-B/32", "pretrained", "ViT-B/32", None, "pretrained")
    first = str(err.value).split(". ")[0]
    assert "CLIP ViT-B/32 and VQGAN f16_16384" in first and "weights download clip-vit-b-32 vqgan-f16-16384" in first
    absent = roots["home"] / "absent.ckpt"
    with pytest.raises(WeightsMissingError, match=f"--vqgan-checkpoint {absent} does not exist"):
        require_generate_files("ViT-B/32", "random", "ViT-B/32", str(absent), "random")
    require_generate_files("ViT-B/32", "random", "ViT-B/32", None, "random")  # random weights: nothing needed


def test_openai_urls_match_the_clip_package():
    """The copy used before the clip package is imported is the package's own table."""
    from clip import clip as clip_impl

    from spectralstyle.weights.sources import OPENAI_URLS

    assert {name: clip_impl._MODELS[name] for name in OPENAI_URLS} == OPENAI_URLS


def test_missing_weights_are_found_before_torch_is_imported(roots):
    code = ("import sys, types\nfrom spectralstyle.weights.resolve import require_run_files\n"
            "try:\n    require_run_files(types.SimpleNamespace())\nexcept Exception as exc:\n"
            "    print(type(exc).__name__, 'torch' in sys.modules, 'clip' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))
    assert proc.stdout.split() == ["WeightsMissingError", "False", "False"], proc.stderr
