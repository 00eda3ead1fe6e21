"""One owner per batch job: lock files, stale takeover, and two real batch processes sharing one --out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from spectralstyle.batch.manifest import read_manifest
from spectralstyle.batch.plan import make_plan
from spectralstyle.media.claims import (
    _break_stale,
    holder,
    lock_path,
    owner_info,
    read_owner,
    try_claim,
)
from test_batch import BIN, TINY, make_images, tiny_config


def dead_pid() -> int:
    """A pid that ran on this host and has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, name: str, **info) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    record = {**owner_info(), **info}
    lock_path(folder, name).write_text(json.dumps(record))
    return record


def test_a_live_claim_excludes_others_until_released(tmp_path):
    first = try_claim(tmp_path, "job1", heartbeat=False)
    assert first is not None and read_owner(lock_path(tmp_path, "job1"))["pid"] == os.getpid()
    assert try_claim(tmp_path, "job1", heartbeat=False) is None  # same host, our pid is alive
    assert holder(tmp_path, "job1")["token"] == first.info["token"]
    first.release()
    assert not lock_path(tmp_path, "job1").exists() and holder(tmp_path, "job1") is None
    again = try_claim(tmp_path, "job1", heartbeat=False)
    assert again is not None
    again.release()


def test_heartbeat_refreshes_the_lock(tmp_path):
    claim = try_claim(tmp_path, "job", interval=0.05)
    first = read_owner(lock_path(tmp_path, "job"))["heartbeat"]
    time.sleep(0.3)
    assert read_owner(lock_path(tmp_path, "job"))["heartbeat"] > first
    claim.release()
    assert not lock_path(tmp_path, "job").exists()
    assert not [p for p in tmp_path.iterdir()]  # no temporary files or markers left


def test_stale_lock_of_a_dead_pid_on_this_host_is_taken_over(tmp_path):
    write_lock(tmp_path, "job", pid=dead_pid())
    claim = try_claim(tmp_path, "job", heartbeat=False)
    assert claim is not None and read_owner(lock_path(tmp_path, "job"))["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.lock"]  # the takeover marker is gone
    claim.release()


def test_other_host_is_judged_by_its_heartbeat(tmp_path):
    fresh = write_lock(tmp_path, "fresh", host="node-b.example", pid=1, heartbeat=time.time() - 10)
    assert try_claim(tmp_path, "fresh", heartbeat=False) is None
    assert read_owner(lock_path(tmp_path, "fresh"))["token"] == fresh["token"]
    write_lock(tmp_path, "old", host="node-b.example", pid=1, heartbeat=time.time() - 3600)
    claim = try_claim(tmp_path, "old", heartbeat=False)
    assert claim is not None and read_owner(lock_path(tmp_path, "old"))["host"] == socket.gethostname()
    claim.release()


def test_two_processes_judging_the_same_lock_stale_cannot_both_win(tmp_path):
    """B read the stale lock T, then A took it over; B's late takeover of T must not remove A's lock."""
    stale = write_lock(tmp_path, "job", pid=dead_pid())
    seen_by_b = read_owner(lock_path(tmp_path, "job"))
    assert seen_by_b["token"] == stale["token"]
    a = try_claim(tmp_path, "job", heartbeat=False)
    assert a is not None
    assert _break_stale(tmp_path, "job", seen_by_b, 120.0) is False  # B backs off
    assert read_owner(lock_path(tmp_path, "job"))["token"] == a.info["token"]
    assert try_claim(tmp_path, "job", heartbeat=False) is None
    a.release()


def test_a_takeover_in_progress_by_a_live_process_is_left_alone(tmp_path):
    stale = write_lock(tmp_path, "job", pid=dead_pid())
    marker = tmp_path / f"job.takeover-{stale['token']}"
    marker.write_text(json.dumps(owner_info()))  # this (live) process is taking it over
    assert try_claim(tmp_path, "job", heartbeat=False) is None
    assert read_owner(lock_path(tmp_path, "job"))["token"] == stale["token"]
    # its taker died: the marker is stale too, and is taken over through the next marker
    marker.write_text(json.dumps(owner_info() | {"pid": dead_pid()}))
    claim = try_claim(tmp_path, "job", heartbeat=False)
    assert claim is not None and sorted(p.name for p in tmp_path.iterdir()) == ["job.lock"]
    claim.release()


def test_unreadable_lock_is_judged_by_its_age(tmp_path):
    lock_path(tmp_path, "job").write_text("")  # its writer died between create and write
    assert try_claim(tmp_path, "job", heartbeat=False) is None  # young: maybe being written right now
    old = time.time() - 3600
    os.utime(lock_path(tmp_path, "job"), (old, old))
    claim = try_claim(tmp_path, "job", heartbeat=False)
    assert claim is not None
    claim.release()


def test_two_batch_processes_share_the_work(tmp_path):
    """Acceptance: started together on 2 jobs into one --out, each job runs exactly once."""
    photos = make_images(tmp_path / "photos", ["a.png", "b.png"])
    out = tmp_path / "out"
    command = [str(BIN / "spectralstyle"), "batch", str(photos), "--text", "pop art",
               "--out", str(out), *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [p.communicate(timeout=400) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
    plan = make_plan(photos, ["pop art"], ["c2"], tiny_config())
    log = (out / "spectralstyle.log").read_text()
    for job in plan:
        assert log.count(f"start job {job.job_id}") == 1, log
        assert job.image_path(out).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"finished": 2}
    assert {s["job_id"] for s in manifest["jobs"]} == {j.job_id for j in plan}
    assert all(s["attempts"] == [] for s in read_manifest(out).values())  # nobody retried anybody's job
    assert not list((out / ".jobs").glob("*.lock")) and not list((out / ".jobs").glob("*takeover*"))
    summaries = [stderr[stderr.index("batch: 2 jobs:"):] for _, stderr in outputs]
    ran = [int(s.split(" finished")[0].rsplit(" ", 1)[-1]) for s in summaries]
    assert sum(ran) == 2, summaries
    # a process that met the other's running jobs says so and still exits 0
    for summary, n in zip(summaries, ran):
        skipped = int(summary.split(" skipped")[0].rsplit(" ", 1)[-1])
        if n + skipped < 2:
            assert f"{2 - n - skipped} running elsewhere" in summary, summary
