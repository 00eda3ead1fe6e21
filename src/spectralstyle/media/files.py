"""Writing files so that nothing half-done ever carries a final name.

A result is written to a temporary file in the same folder and renamed into place (atomic on local
filesystems and on NFS), so a crash, Ctrl-C or a full disk never leaves a half-written file under the
final name. Pure Python (no torch): used by the weights tools and the command line too.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spectralstyle.errors import SpectralStyleError


def default_file_mode() -> int:
    """0666 less the process umask: what ``open()`` would give a new file (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and check that files can be written there, before any long computation."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SpectralStyleError(f"{what} {folder} is not a folder (a file is in the way)") from None
    except OSError as exc:
        raise SpectralStyleError(f"cannot create {what} {folder}: {exc.strerror or exc}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".spectralstyle-probe-"):
            pass
    except OSError as exc:
        raise SpectralStyleError(f"cannot write in {what} {folder}: {exc.strerror or exc}") from None
    return folder


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())  # readable by others as usual, e.g. on a shared results folder
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno is not None and exc.filename is None:  # a failed write (a full disk) names no file: name it
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(data: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)
