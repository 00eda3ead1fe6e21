"""Where pretrained weights live, and fetching them once on first use.

Cache: ``$SPECTRALSTYLE_CACHE`` if set, else ``~/.cache/spectralstyle``. A download goes to a
temporary file, is checked against its SHA-256 prefix when one is known, and only then renamed,
so an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsMissingError
from .image_io import default_file_mode

CACHE_ENV = "SPECTRALSTYLE_CACHE"
OFFLINE_ENV = "SPECTRALSTYLE_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class WeightsFile:
    """A downloadable weights file: what it is, its file name in the cache, its URL and checksum."""

    what: str
    filename: str
    url: str
    sha256_prefix: str = ""


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "spectralstyle"


def _missing(spec: WeightsFile, target: Path, reason: str, flag: str) -> WeightsMissingError:
    return WeightsMissingError(
        f"{spec.what} weights '{spec.filename}' are not in {target.parent} and could not be downloaded "
        f"({reason}): download {spec.url} and put it at {target} (or set {CACHE_ENV}, or pass {flag} PATH); "
        f"--weights random runs without any download"
    )


def fetch(spec: WeightsFile, flag: str) -> Path:
    """Path of the cached file, downloading it first if needed; WeightsMissingError when impossible."""
    target = cache_dir() / spec.filename
    if target.is_file():
        return target
    if os.environ.get(OFFLINE_ENV):
        raise _missing(spec, target, f"{OFFLINE_ENV} is set", flag)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _download(spec, target)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise _missing(spec, target, str(getattr(exc, "reason", exc)), flag) from None
    return target


def _download(spec: WeightsFile, target: Path) -> None:
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if spec.sha256_prefix and not digest.hexdigest().startswith(spec.sha256_prefix):
            raise ValueError(f"checksum mismatch for {spec.url}")
        os.chmod(tmp_name, default_file_mode())
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def local_file(path: str | os.PathLike, what: str) -> Path:
    """A user-given weights path, checked to exist."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsMissingError(f"{what} weights file {p} does not exist")
    return p
