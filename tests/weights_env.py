"""Helpers for the weights tests: an isolated set of caches and a local HTTP server that counts requests."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CACHE_VARIABLES = ("HF_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HUGGINGFACE_HUB_CACHE")


def isolate(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """Empty HOME, TORCH_HOME, HF_HOME and spectralstyle cache, so a developer's real caches never matter."""
    roots = {name: tmp_path / name for name in ("home", "torch", "hf", "cache")}
    for root in roots.values():
        root.mkdir()
    monkeypatch.setenv("HOME", str(roots["home"]))
    monkeypatch.setenv("TORCH_HOME", str(roots["torch"]))
    monkeypatch.setenv("HF_HOME", str(roots["hf"]))
    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(roots["cache"]))
    for name in CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return roots


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_snapshot(hf_home: Path, repo: str, revision: str, files: dict[str, bytes], main: bool = True) -> Path:
    """A Hugging Face cache entry laid out as huggingface_hub writes it: blobs, snapshot links, refs/main."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = root / "blobs" / sha256(data)
        blob.write_bytes(data)
        (snap / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    if main:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / "main").write_text(revision)
    return snap


class FileServer:
    """Serves byte strings on 127.0.0.1: ``/name`` whole, ``/slow/name`` in pieces, ``/cut/name`` cut short."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests[self.path] += 1
                mode, _, name = self.path.lstrip("/").rpartition("/")
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "cut":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                pieces = 10 if mode == "slow" else 1
                step = -(-len(data) // pieces)
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step])
                    self.wfile.flush()
                    if mode == "slow":
                        time.sleep(0.15)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
