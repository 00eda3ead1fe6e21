"""One owner per name: a lock file per batch job (or per result name), claimed atomically, kept alive by a heartbeat.

Used for batch jobs (``OUT/.jobs/<job-id>.lock``, :mod:`spectralstyle.batch.runner`) and for result names
reserved by a run (``OUT/.names/<stem>.lock``, :mod:`spectralstyle.runs.naming`). Pure Python (no torch).

Why files and not a lock server: batch processes may run on several machines that share only the
output folder (Slurm array tasks, a resubmitted task while the first still runs). The only atomic,
exclusive operations such a folder offers everywhere are "create if absent" (``O_CREAT|O_EXCL``) and
``rename``; both are atomic on local filesystems, NFS v3 and later, Lustre and GPFS. ``flock``/``fcntl``
locks are not used: they die with their process (fine) but are unreliable over NFS and invisible
across some cluster filesystems.

Claim. ``OUT/.jobs/<job-id>.lock`` is created with ``O_CREAT|O_EXCL`` and holds JSON: host, pid, the
process's start time (so a recycled pid is not taken for the owner), a random token, the start time
and a heartbeat time. Only one process can create it; the others see it and judge its owner:

- same host: the owner is alive while its pid exists with the same process start time and is not a
  zombie (a process killed with ``kill -9`` whose parent has not reaped it yet runs no more code);
- another host: the owner is alive while its heartbeat (rewritten every ``HEARTBEAT_S`` seconds by a
  daemon thread, atomically through a temporary file and ``rename``) is younger than ``STALE_AFTER_S``.
  This compares the owner's clock with the reader's: clock skew between hosts must stay well below the
  timeout (NTP keeps it under a second; the timeout is two minutes).

A live owner's job is skipped ("running elsewhere"). A lock whose content cannot be parsed (its writer
died between create and write, a few microseconds) is judged by the file's age alone.

Takeover of a stale lock, and why two processes that both judge it stale cannot both win. Deleting
and recreating ``<job-id>.lock`` is not enough: if A deletes the stale lock and creates its own, B
(which judged the *old* lock stale a moment earlier) would delete A's fresh lock and create its own,
and both would run the job. So a stale lock with token T may be removed only by the one process that
created ``<job-id>.takeover-T`` with ``O_CREAT|O_EXCL``; every other process fails that create and
skips the job. The winner re-reads the lock, removes it only if it still holds token T, and then
competes like everyone else with an ``O_EXCL`` create of the lock (a brand-new process may beat it:
still exactly one owner). A marker is removed after the takeover; a process that creates the marker
again later finds a lock whose token is no longer T and backs off. If the winner itself dies during
its takeover (milliseconds), its marker is judged like a lock (pid, or age) and taken over the same way,
through ``<job-id>.takeover-<its token>``. Lock files are therefore only ever removed by their owner
(release) or by the single holder of the marker named after their token.

The one assumption this rests on: an owner judged stale really is gone. On one host the pid check
makes that exact; across hosts it holds when the heartbeat timeout is far longer than any pause of a
live owner (a suspended Slurm job on another node is the case to avoid: raise the timeout with
``$SPECTRALSTYLE_LOCK_STALE_S``).

After claiming, the caller must re-read the job's state: another process may have finished the job
between the caller's first look and its claim.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("spectralstyle")

HEARTBEAT_S = 5.0
"""How often an owner rewrites its lock's heartbeat."""
STALE_AFTER_S = 120.0
"""A lock of another host whose heartbeat is older than this is stale (its owner is presumed dead)."""
STALE_AFTER_ENV = "SPECTRALSTYLE_LOCK_STALE_S"
"""Environment variable that replaces ``STALE_AFTER_S`` (seconds), e.g. for a cluster with long pauses, or tests."""
LOCK_SUFFIX = ".lock"


def stale_after_s() -> float:
    """The heartbeat age after which another host's lock is stale: ``$SPECTRALSTYLE_LOCK_STALE_S`` or 120 s."""
    value = os.environ.get(STALE_AFTER_ENV, "").strip()
    try:
        seconds = float(value) if value else STALE_AFTER_S
    except ValueError:
        return STALE_AFTER_S
    return seconds if seconds > 0 else STALE_AFTER_S


def heartbeat_s() -> float:
    """How often a claim refreshes its heartbeat: every 5 s, or more often when the stale timeout is short."""
    return min(HEARTBEAT_S, stale_after_s() / 4)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/<pid>/stat`` (Linux; None elsewhere): state, ppid, ..., start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()  # fields 1-2 (pid, name) end at the last ")"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid``, to tell a recycled pid from the owner; None without ``/proc``."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None  # field 22 counted from 1


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except OSError:
        return False
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed (e.g. kill -9), not yet reaped by its parent: it runs no code
        return False
    now_start = fields[19] if fields else None
    return start is None or now_start is None or now_start == start


def owner_info(token: str | None = None, **extra: Any) -> dict[str, Any]:
    """What a lock (or takeover marker) says about the process holding it, plus ``extra`` (what it is for)."""
    now = time.time()
    return {**extra, "host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
            "token": token or secrets.token_hex(8), "started": now, "heartbeat": now}


def read_owner(path: Path) -> dict[str, Any] | None:
    """The owner recorded in a lock or marker; None if the file is gone. Unparseable content gets a
    token made from the file's identity, so that it, too, can be taken over exactly once."""
    try:
        raw = path.read_bytes()
        st = path.stat()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(raw)
        if isinstance(info, dict) and isinstance(info.get("token"), str):
            return info
    except ValueError:
        pass
    return {"token": f"x{st.st_ino}-{st.st_mtime_ns}", "heartbeat": st.st_mtime, "unreadable": True}


def is_live(info: dict[str, Any], stale_after: float | None = None, now: float | None = None) -> bool:
    """Same host: the pid runs (and is the same process). Other host or unreadable: a fresh heartbeat."""
    now = time.time() if now is None else now
    stale_after = stale_after_s() if stale_after is None else stale_after
    if not info.get("unreadable") and info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return _pid_alive(info["pid"], info.get("process_start"))
    try:
        return now - float(info.get("heartbeat", 0)) < stale_after
    except (TypeError, ValueError):
        return False


def _create_exclusive(path: Path, info: dict[str, Any]) -> bool:
    """Atomically create ``path`` holding ``info``; False if it exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, json.dumps(info).encode())
    finally:
        os.close(fd)
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@dataclass
class Claim:
    """This process's ownership of one job: a heartbeat thread until ``release``."""

    path: Path
    info: dict[str, Any]
    interval: float = field(default_factory=heartbeat_s)
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start_heartbeat(self) -> "Claim":
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.path.name}", daemon=True)
        self._thread.start()
        return self

    def _mine(self) -> bool:
        current = read_owner(self.path)
        return current is not None and current.get("token") == self.info["token"]

    def holds(self) -> bool:
        """True while the lock on disk is still this claim's (not released, not taken over)."""
        return not self.lost and self._mine()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self._mine():  # taken over: our owner was judged dead (see the module docstring)
                    self.lost = True
                    log.warning("lock %s was taken over by another process", self.path)
                    return
                self.info["heartbeat"] = time.time()
                tmp = self.path.with_name(f".{self.path.name}.{self.info['token']}.tmp")
                tmp.write_text(json.dumps(self.info))
                os.replace(tmp, self.path)
            except OSError as exc:  # a slow or full disk: keep trying, the owner is alive
                log.warning("could not refresh lock %s: %s", self.path, exc)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._mine():
            _remove(self.path)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}{LOCK_SUFFIX}"


def holder(folder: Path, name: str, stale_after: float | None = None) -> dict[str, Any] | None:
    """The live owner of lock ``name`` in ``folder``, or None when it is free or stale."""
    info = read_owner(lock_path(folder, name))
    return info if info is not None and is_live(info, stale_after) else None


def try_claim(folder: str | Path, name: str, stale_after: float | None = None,
              interval: float | None = None, heartbeat: bool = True,
              extra: dict[str, Any] | None = None) -> Claim | None:
    """Claim lock ``name`` in ``folder`` (taking over a stale one), or None if a live process holds it.

    ``extra`` is stored in the lock beside the owner (what the claim is for: a reserved name's run).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder, name)
    stale_after = stale_after_s() if stale_after is None else stale_after
    interval = heartbeat_s() if interval is None else interval
    mine = owner_info(**(extra or {}))
    for _ in range(8):  # each round either wins, meets a live owner, or saw the lock change under it
        if _create_exclusive(path, mine):
            claim = Claim(path, mine, interval)
            return claim.start_heartbeat() if heartbeat else claim
        current = read_owner(path)
        if current is None:
            continue  # released between our create and our read: try again
        if is_live(current, stale_after):
            return None
        if not _break_stale(folder, name, current, stale_after):
            return None  # another process is taking it over right now
    return None


def _break_stale(folder: Path, name: str, stale: dict[str, Any], stale_after: float) -> bool:
    """Remove the stale lock with ``stale``'s token if this process wins its takeover marker.

    True means the lock is gone (by our hand or someone else's) and the caller may compete for it again.
    """
    marker = _win_marker(folder, name, stale["token"], stale_after)
    if marker is None:
        return False
    try:
        current = read_owner(lock_path(folder, name))
        if current is not None and current.get("token") == stale["token"]:
            log.warning("taking over stale lock of job %s (host %s, pid %s)", name, stale.get("host"), stale.get("pid"))
            _remove(lock_path(folder, name))
        return current is None or current.get("token") == stale["token"]
    finally:
        for path in marker:
            _remove(path)


def _win_marker(folder: Path, name: str, token: str, stale_after: float, depth: int = 0) -> list[Path] | None:
    """Create ``<name>.takeover-<token>`` exclusively (or, if its creator died, the marker after it).

    Returns the markers to remove once done (ours and the dead ones we replaced), or None if a live
    process holds the takeover.
    """
    marker = Path(folder) / f"{name}.takeover-{token}"
    mine = owner_info()
    if _create_exclusive(marker, mine):
        return [marker]
    info = read_owner(marker)
    if info is None:  # removed in between: that takeover is over; the caller re-reads the lock
        return [marker] if _create_exclusive(marker, mine) else None
    if is_live(info, stale_after) or depth >= 4:
        return None
    chain = _win_marker(folder, name, info["token"], stale_after, depth + 1)
    return None if chain is None else [*chain, marker]
