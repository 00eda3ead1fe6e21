"""Writing files so that nothing half-done ever carries a final name.

A result is written to a temporary file in the same folder and renamed into place (atomic on local
filesystems and on NFS), so a crash, Ctrl-C or a full disk never leaves a half-written file under the
final name. Pure Python (no torch): used by the weights tools and the command line too, which also
check here that the paths a run reads exist (``check_exists``) before torch is imported.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from spectralstyle.errors import SpectralStyleError


def check_exists(path: Path, what: str = "", kind: str = "any") -> None:
    """``path`` exists: as a file (``kind="file"``), a folder (``"folder"``) or either; the message names it
    ``what`` ('model file X does not exist'). The one check of a path a run reads: the commands call it before
    torch is imported, the library where it reads the path, so both say the same."""
    p = Path(path)
    name = f"{what} {p}" if what else str(p)
    if not p.exists():
        raise SpectralStyleError(f"{name} does not exist" + (" or is not a folder" if kind == "folder" else ""))
    if kind == "file" and p.is_dir():
        raise SpectralStyleError(f"{name} is a folder, not a file")
    if kind == "folder" and not p.is_dir():
        raise SpectralStyleError(f"{name} does not exist or is not a folder")


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
    remove_stale_temporaries(folder)  # what a killed run left (also in OUT/.checkpoints)
    remove_stale_temporaries(folder / ".checkpoints")
    return folder


TEMP_MARK = ".spectralstyle-"
"""In every temporary name, with the host and process that write it: ``.NAME.spectralstyle-HOST-PID-XXXX.tmp.SUFFIX``,
so a later run can tell the leftovers of a killed process (kill -9, a node that died) from a write in progress."""
STALE_FOREIGN_S = 24 * 3600  # a temporary file of another host (shared folder) is stale after a day untouched
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
# What torch's zip writer raises when the bytes do not reach the disk (a full disk, a quota): RuntimeError
TORCH_WRITE_FAILURE = re.compile(r"unexpected pos|PytorchStreamWriter|failed writing|file write failed|"
                                 r"No space left|Disk quota", re.IGNORECASE)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def write_failure(target: Path, exc: BaseException) -> SpectralStyleError | None:
    """The one line for a write that did not reach the disk (full disk, quota, read-only, torch's writer), or None."""
    if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
        return SpectralStyleError(f"could not write {target}: {exc.strerror or exc} (nothing was kept under that name; "
                                  "free some space or choose another --out)")
    if isinstance(exc, RuntimeError) and TORCH_WRITE_FAILURE.search(str(exc)):
        reason = " ".join(str(exc).split())[:120]
        return SpectralStyleError(f"could not write {target}: the disk took only part of it ({reason}); nothing was "
                                  "kept under that name; free some space or choose another --out")
    return None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    A write that fails (a full disk, also inside torch's writer) becomes one SpectralStyleError naming ``path``;
    the temporary file is always removed, so no partial or stray file is left.
    """
    target = Path(path)
    if target.is_dir():
        raise SpectralStyleError(f"{target} is a folder where a file should be written; move it away")
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}{TEMP_MARK}{_host()}-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())  # readable by others as usual, e.g. on a shared results folder
        os.replace(tmp, target)
    except (OSError, RuntimeError) as exc:
        failure = write_failure(target, exc)
        if failure is not None:
            raise failure from None
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:  # name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _owner_gone(name: str, age_s: float) -> bool:
    """Whether the process that wrote temporary file ``name`` is gone (its host and pid are in the name)."""
    match = re.search(re.escape(TEMP_MARK) + r"(.+)-(\d+)-[^-]*\.tmp", name)
    if match is None:
        return age_s > STALE_FOREIGN_S  # a temporary name of an older version: stale once a day old
    host, pid = match.group(1), int(match.group(2))
    if host != _host():
        return age_s > STALE_FOREIGN_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete this tool's temporary files in ``folder`` whose writer is dead (kill -9 during a write); the
    removed paths. Files of a process still writing are left alone."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in folder.iterdir():
        name = entry.name
        if not (name.startswith(".") and ".tmp" in name and (TEMP_MARK in name or re.search(r"\.[^.]{8}\.tmp", name))):
            continue
        try:
            if entry.is_file() and not entry.is_symlink() and _owner_gone(name, now - entry.stat().st_mtime):
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue
    return removed


def open_for_append(path: str | Path) -> TextIO:
    """``path`` opened to append text, never through a symbolic link (O_NOFOLLOW): a link planted at
    ``OUT/spectralstyle.log`` must not make the tool write outside ``--out``."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or target.is_symlink():
            raise SpectralStyleError(f"{target} is a symbolic link; the tool does not write through it "
                                     "(remove it, or choose another --out)") from None
        if target.is_dir():
            raise SpectralStyleError(f"{target} is a folder where the log file should be; move it away") from None
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


@contextmanager
def all_or_none(*paths: str | Path) -> Iterator[None]:
    """The files of one result (a model, its preview, its sidecar) written together: if the block fails
    (a full disk at the second file), those of ``paths`` that it created are removed again, so a failed
    run leaves no stray preview beside no model. Files that existed before are left alone."""
    fresh = [Path(p) for p in paths if not Path(p).exists()]
    try:
        yield
    except BaseException:
        for path in fresh:
            if path.is_file():
                path.unlink()
        raise


def write_json(data: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)
