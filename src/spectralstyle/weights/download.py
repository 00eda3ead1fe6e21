"""Downloading one URL into one file: once per machine, checked, and never half-written under its name.

Ranks of a torchrun job or tasks of a Slurm array often share a cache and start at the same moment.
A ``filelock`` lock beside the target makes one of them download while the others wait, then find
the finished file. The bytes go to a temporary file in the same folder, are checked against the
expected SHA-256 (or its prefix, as torchvision names its files), and only then renamed, so an
interrupted or wrong download never looks complete. A rich progress bar (size, speed) goes to stderr.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from filelock import FileLock
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from spectralstyle.interrupts import interruptible
from spectralstyle.weights.network import check_reachable

DOWNLOAD_TIMEOUT_S = 30
CHUNK_BYTES = 1 << 20


class ChecksumMismatch(ValueError):
    """The downloaded bytes are not the published file."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(f"SHA-256 of {url} is {actual}, expected {expected}")
        self.expected, self.actual = expected, actual


class IncompleteDownload(OSError):
    """The server closed the connection before sending the whole file."""


def lock_for(target: Path) -> FileLock:
    """The lock every process takes before creating ``target``: ``<target>.lock`` beside it."""
    return FileLock(str(target) + ".lock")


def download(url: str, target: Path, sha256: str = "", label: str | None = None, quiet: bool = False,
             timeout: float = DOWNLOAD_TIMEOUT_S, replace: bool = False) -> Path:
    """``target``, downloaded from ``url`` unless another process already finished it.

    ``sha256`` is the full digest or a prefix of it; empty means the file has no published digest.
    ``replace`` downloads even over an existing (damaged) file. Raises ``OSError``/``URLError`` on
    network trouble (``NetworkUnreachable`` within seconds when the server does not answer) and
    ``ChecksumMismatch`` when the bytes are not the published file.
    """
    if target.is_file() and not replace:
        return target
    check_reachable(url)  # a few seconds at most, once per process; nothing is created before it
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_for(target)
    with lock:
        try:
            if target.is_file() and not replace:  # another process finished it while this one waited
                return target
            with interruptible():  # nothing of a download is kept, so a signal stops it at once
                _fetch(url, target, sha256, label or target.name, quiet, timeout)
        finally:
            _remove_lock_file(lock.lock_file)
    return target


def _remove_lock_file(path: str) -> None:
    """Unlinked while still held, so no empty ``.lock`` stays beside the cache. A process already waiting
    on the old file then takes it and finds the target (or downloads again into its own temporary file:
    harmless, each download is checked and renamed into place whole)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _fetch(url: str, target: Path, sha256: str, label: str, quiet: bool, timeout: float) -> None:
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.build_opener().open(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            received = 0
            with _progress(quiet) as progress:
                task = progress.add_task(label, total=total)
                try:
                    while chunk := resp.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
                        received += len(chunk)
                        progress.advance(task, len(chunk))
                except http.client.IncompleteRead:
                    pass  # reported below with the sizes
        if total is not None and received != total:
            raise IncompleteDownload(f"the connection ended after {received} of {total} bytes of {url}")
        actual = digest.hexdigest()
        if sha256 and not actual.startswith(sha256.lower()):
            raise ChecksumMismatch(url, sha256, actual)
        os.chmod(tmp_name, _new_file_mode())
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), transient=False, disable=quiet,
    )


def _new_file_mode() -> int:
    """0666 less the umask, as ``open()`` gives (mkstemp gives 0600); image_io has the same, but
    importing it loads torch, and download-only processes (ranks waiting on a lock) should start fast."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, remembered per (path, size, modification time) within this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f, interruptible():  # gigabytes: Ctrl-C/SIGTERM must not wait for the end
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


_DIGESTS: dict[tuple[str, int, int], str] = {}
