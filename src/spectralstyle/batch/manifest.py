"""The state of every batch job in an output folder: one small JSON file per job, merged on read.

``OUT/.jobs/<job_id>.json`` is written only by the job's owner (the holder of ``OUT/.jobs/<job_id>.lock``,
:mod:`spectralstyle.media.claims`), as a whole file to a temporary name and ``rename``d into place. Why
not SQLite or a shared JSONL file: ranks may sit on several machines that share OUT over NFS, where
SQLite's POSIX locks are unreliable (its own documentation warns that the database can be corrupted)
and ``O_APPEND`` writes from several clients may interleave or overwrite each other; a rename is atomic
on local filesystems and on NFS.

``OUT/manifest.json`` is a snapshot of that merge, written at the end of every batch process under the
``manifest`` lock: the jobs of this process's plan (pending if never started) and every job ever
finished in that OUT by any plan (a second batch with other settings adds its jobs; it never shrinks
the manifest; an earlier job whose result was since replaced with ``--overwrite`` is listed as
``replaced``, one whose files are gone as ``missing``). The ``.jobs`` folder is the truth; the
manifest is for reading.

Resume rule (``job_action``): a job is skipped only when its state says finished, its outputs exist and
the sidecar's config hash equals the job's; anything else (failed, interrupted, a "running" left by a
killed process, a missing or overwritten output) is run again.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spectralstyle.bands import band_label
from spectralstyle.batch.jobs import FAILED, FINISHED, INTERRUPTED, PENDING, RUNNING, Job
from spectralstyle.media.claims import try_claim
from spectralstyle.media.files import write_json
from spectralstyle.record import read_record
from spectralstyle.settings import TransferConfig

STATE_DIR = ".jobs"
MANIFEST_NAME = "manifest.json"
MANIFEST_LOCK = "manifest"


def state_path(out: Path, jid: str) -> Path:
    return Path(out) / STATE_DIR / f"{jid}.json"


def _read_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when missing, unreadable or not an object (``[]``, ``3``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_state(out: Path, jid: str) -> dict[str, Any] | None:
    """A job's last written state, or None if it never started (or the file is unreadable)."""
    return _read_object(state_path(out, jid))


def read_manifest(out: str | Path) -> dict[str, dict[str, Any]]:
    """All job states in OUT, merged from every rank's state files (job id -> state)."""
    folder = Path(out) / STATE_DIR
    states: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        state = _read_object(path)
        if state is not None and isinstance(state.get("job_id"), str):
            states[state["job_id"]] = state
    return states


def job_action(job: Job, out: Path, state: dict[str, Any] | None) -> tuple[str, str]:
    """What a run does with ``job``: ``("skip", why)`` only when finished with matching outputs, else
    ``("run", why)``."""
    if state is None:
        return "run", "new"
    status = state.get("status")
    if status != FINISHED:
        return "run", {FAILED: "retry failed", INTERRUPTED: "retry interrupted", RUNNING: "retry (was running)"}.get(
            status, f"retry ({status})")
    image, sidecar = recorded_paths(job, out, state)
    if not image.is_file() or not sidecar.is_file():
        return "run", "output missing"
    record = read_record(image)  # the one reader: a sidecar that is not a JSON object counts as none
    if record is None:
        return "run", "sidecar unreadable"
    if state.get("config_hash") != job.config_hash or record.config_hash != job.config_hash:
        return "run", "config changed"
    return "skip", "finished"


def recorded_stem(job: Job, state: dict[str, Any] | None) -> str:
    """The name a job's state says it was written under (chosen when it ran: see runs/naming.py), else the plan's."""
    stem = (state or {}).get("stem")
    return stem if isinstance(stem, str) and stem and "/" not in stem and stem not in (".", "..") else job.stem


def recorded_paths(job: Job, out: Path, state: dict[str, Any] | None) -> tuple[Path, Path]:
    """(main output, sidecar) of ``job`` under its recorded name."""
    stem, planned = recorded_stem(job, state), job.stem
    try:
        job.stem = stem
        return job.image_path(out), job.sidecar_path(out)
    finally:
        job.stem = planned


def base_state(job: Job, out: Path, shard: str, device: str) -> dict[str, Any]:
    """What every state file of ``job`` written by this process says besides its status."""
    return {
        "job_id": job.job_id, "content": str(job.content), "name": job.name, "text": job.text, "band": job.band,
        "config_hash": job.config_hash, "stem": job.stem,
        "image": job.image_path(out).name, "sidecar": job.sidecar_path(out).name,
        "shard": shard, "host": socket.gethostname(), "pid": os.getpid(), "device": device,
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _still_there(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """A job finished by an earlier plan, as the manifest lists it: ``replaced`` when its sidecar now holds
    another run's result (``--overwrite``), ``missing`` when its outputs are gone."""
    sidecar, image = state.get("sidecar"), state.get("image")
    if not isinstance(sidecar, str) or not isinstance(image, str) or not (out / image).is_file():
        return {**state, "status": "missing"}
    record = _read_object(out / sidecar)
    if record is None or record.get("config_hash") != state.get("config_hash"):
        return {**state, "status": "replaced"}
    return state


def write_manifest(out: Path, plan: list[Job], config: TransferConfig) -> Path:
    """``OUT/manifest.json``: this plan's jobs plus every job ever finished in OUT (see the module doc).

    Processes sharing OUT write it one at a time (a lock around read-and-write), so the last one to
    finish reads every final state and writes the complete manifest, never an older one over it.
    """
    claim = None
    for _ in range(600):  # a write takes milliseconds; a holder that died is taken over (claims.py)
        claim = try_claim(Path(out) / STATE_DIR, MANIFEST_LOCK, heartbeat=False)
        if claim is not None:
            break
        time.sleep(0.05)
    try:
        return _write_manifest(out, plan, config)
    finally:
        if claim is not None:
            claim.release()


def _write_manifest(out: Path, plan: list[Job], config: TransferConfig) -> Path:
    states = read_manifest(out)
    planned = {j.job_id for j in plan}
    jobs = [states.get(j.job_id) or {"job_id": j.job_id, "name": j.name, "text": j.text, "band": j.band,
                                      "config_hash": j.config_hash, "stem": j.stem, "status": PENDING} for j in plan]
    earlier = [_still_there(Path(out), s) for jid, s in states.items()
               if jid not in planned and s.get("status") == FINISHED]
    earlier.sort(key=lambda s: (str(s.get("name")), str(s.get("text")), band_label(str(s.get("band"))),
                                str(s.get("config_hash")), s["job_id"]))
    jobs += earlier
    counts: dict[str, int] = {}
    for s in jobs:
        status = str(s.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
    return write_json({"updated": now(), "config": config.to_dict(), "plan": [j.job_id for j in plan],
                       "counts": counts, "jobs": jobs}, Path(out) / MANIFEST_NAME)
