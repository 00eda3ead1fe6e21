"""Runs that share one --out at the same time: names reserved and checked again, checkpoints keyed by run,
a manifest that only grows, batches that wait for (and take over) jobs of other processes, one band spelling.

Real concurrent processes and a real kill -9 where the claim is about processes; the library otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spectralstyle.batch.jobs import job_id
from spectralstyle.batch.manifest import read_manifest, read_state
from spectralstyle.batch.plan import build_plan, make_plan
from spectralstyle.batch.runner import BatchHooks, run_batch
from spectralstyle.media.images import read_png_metadata
from spectralstyle.method.vgg import load_vgg_content
from spectralstyle.runs.checkpoints import RunControl
from spectralstyle.runs.models import Models
from spectralstyle.runs.naming import NAMES_DIR, reserve_stem
from spectralstyle.runs.transfer import output_stem, run_job
from spectralstyle.settings import TransferConfig
from test_batch import BIN, TINY, WRAPPER, make_images, tiny_config

DEFAULT_HASH = "7270d6796c2c543e"  # the defaults since --size N keeps the aspect ratio (docs/sizes-and-names.md)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SPECTRALSTYLE_LOCK_STALE_S": "4"}  # polls every 0.5 s


def spectralstyle(*args, launcher: list[str] | None = None) -> subprocess.Popen:
    command = (launcher or [str(BIN / "spectralstyle")]) + [str(a) for a in args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for(condition, timeout: float = 300.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- one band, one hash ---------------------------------------------------------------------------------
def test_equivalent_band_spellings_are_one_result_and_the_default_hash_is_kept():
    assert TransferConfig().digest() == DEFAULT_HASH
    assert TransferConfig(band="4-7,16-49").digest() == TransferConfig(band="c1").digest()
    assert TransferConfig(band=" 16-49, 4-7 ").digest() == TransferConfig(band="c1").digest()
    assert TransferConfig(band="0-49").digest() == TransferConfig(band="none").digest()
    assert TransferConfig(band="4-49").digest() == DEFAULT_HASH  # c2's own frequencies
    assert TransferConfig(band="3-10,20,21").digest() == TransferConfig(band="3-10,20-21").digest()
    assert TransferConfig(band="c1").digest() != TransferConfig(band="c2").digest()
    cfg = tiny_config()
    assert job_id("a.png", "pop art", "4-7,16-49", cfg.replace(band="4-7,16-49").digest()) == \
        job_id("a.png", "pop art", "c1", cfg.replace(band="c1").digest())


# --- the library: reservation, the check at the write, checkpoints ------------------------------------------
@pytest.fixture(scope="module")
def models(narrow_clip) -> Models:
    vgg = load_vgg_content("random", None, device="cpu")
    mp = pytest.MonkeyPatch()
    mp.setattr("spectralstyle.runs.models.load_clip", lambda *args, **kwargs: narrow_clip)
    mp.setattr("spectralstyle.runs.models.load_vgg_content", lambda *args, **kwargs: vgg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like the subprocesses' OMP_NUM_THREADS=1: tiny runs on shared cores
    try:
        yield Models.load(tiny_config())
    finally:
        torch.set_num_threads(threads)
        mp.undo()


@pytest.fixture()
def photo(tmp_path) -> Path:
    return make_images(tmp_path / "photos", ["boat.png"]) / "boat.png"


def test_a_result_of_an_equivalent_band_spelling_is_this_run_s(photo, tmp_path):
    """A ``c1`` result is the same run as ``--band 4-7,16-49``: same name, no hashed file beside it."""
    out, c1, spelled = tmp_path / "out", tiny_config().replace(band="c1"), tiny_config().replace(band="4-7,16-49")
    out.mkdir()
    plain = output_stem(photo, "pop art", spelled.band)
    assert plain == output_stem(photo, "pop art", c1.band) == "boat_pop-art_c1"
    record = {"content": str(photo.resolve()), "text": "pop art", "config_hash": c1.digest(), "band": "c1"}
    (out / f"{plain}.json").write_text(json.dumps(record))
    with reserve_stem(out, plain, photo, "pop art", spelled.digest()) as name:
        assert name.stem == plain and not name.moved
    with reserve_stem(out, plain, photo, "pop art", tiny_config().replace(band="c2").digest()) as other:
        assert other.moved


def test_a_name_another_run_holds_is_not_free(models, photo, tmp_path):
    """A run of other settings holds the plain name (started, not finished): this run writes beside it."""
    out, config = tmp_path / "out", tiny_config()
    plain = output_stem(photo, "pop art", config.band)
    other = reserve_stem(out, plain, photo, "pop art", config.replace(steps=6).digest())
    assert other.stem == plain and (out / NAMES_DIR / f"{plain}.lock").is_file()
    try:
        result = run_job(photo, "pop art", config, models, out)
    finally:
        other.release()
    assert result.image.name == f"{plain}_{config.digest()[:8]}.png"
    assert not (out / f"{plain}.png").exists()  # left to the run that holds it
    assert not (out / NAMES_DIR).exists()  # every reservation released


def test_the_name_is_checked_again_at_the_write(models, photo, tmp_path):
    """Another writer (a tool that does not reserve) puts a result under the name while the run runs."""
    out, config = tmp_path / "out", tiny_config().replace(steps=2)
    plain = output_stem(photo, "pop art", config.band)
    foreign = {"content": str(photo.resolve()), "text": "pop art", "config_hash": "f" * 16, "status": "finished"}

    def intruder(step: int, losses: dict) -> None:
        if step == 1:
            (out / f"{plain}.json").write_text(json.dumps(foreign))

    notes: list[str] = []
    result = run_job(photo, "pop art", config, models, out, on_step=intruder, on_note=notes.append)
    assert result.image.name == f"{plain}_{config.digest()[:8]}.png"
    assert json.loads((out / f"{plain}.json").read_text()) == foreign  # untouched
    assert len(notes) == 1 and "taken by another run" in notes[0]
    assert read_png_metadata(result.image)["config_hash"] == config.digest()


def test_checkpoints_of_two_settings_under_one_name_are_kept_apart(models, photo, tmp_path):
    out = tmp_path / "out"
    a, b = tiny_config().replace(steps=3), tiny_config().replace(steps=3, lr=2e-4)

    def stop(step: int, losses: dict) -> None:
        if step == 1:
            raise KeyboardInterrupt

    control = RunControl(checkpoint_every=1)
    for cfg in (a, b):  # the same explicit name: before, both used .checkpoints/<stem>.pt
        assert run_job(photo, "pop art", cfg, models, out, on_step=stop, stem="same", control=control).interrupted
    assert len(list((out / ".checkpoints").glob("*.pt"))) == 2
    notes: list[str] = []
    resumed = run_job(photo, "pop art", a, models, out, stem="same", control=control, on_note=notes.append)
    assert notes == ["resuming same from step 1"] and resumed.record["resumed_from_step"] == 1
    assert len(list((out / ".checkpoints").glob("*.pt"))) == 1  # b's is still there


def test_run_batch_is_usable_without_the_command_line(models, tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png"])
    out, config = tmp_path / "out", tiny_config()
    plan = build_plan(photos, ["pop art"], ["4-7,16-49", "c1"], config, out)  # one band, spelled twice: one job
    assert len(plan) == 1 and plan[0].stem == "a_pop-art_c1"
    outcome = run_batch(plan, out, device="cpu", config=config, models=models)
    assert outcome.count("finished") == 1 and not outcome.failed and not outcome.left_to_others
    assert json.loads(outcome.manifest.read_text())["counts"] == {"finished": 1}
    assert run_batch(plan, out, device="cpu", config=config, models=models).count("skipped") == 1


def test_a_batch_job_writes_beside_a_name_another_run_is_writing(models, tmp_path):
    """Another process (of other settings) holds the job's name: the job moves, records its name, and the
    manifest lists it under that name."""
    photos = make_images(tmp_path / "photos", ["a.png"])
    out, config = tmp_path / "out", tiny_config()
    plan = build_plan(photos, ["pop art"], ["c2"], config, out)
    other = reserve_stem(out, plan[0].stem, photos / "a.png", "pop art", config.replace(steps=5).digest())
    notes: list[str] = []
    try:
        outcome = run_batch(plan, out, device="cpu", config=config, models=models,
                            hooks=BatchHooks(on_note=notes.append))
    finally:
        other.release()
    moved = f"a_pop-art_c2_{config.digest()[:8]}"
    assert outcome.count("finished") == 1 and read_manifest(out)[plan[0].job_id]["stem"] == moved
    assert (out / f"{moved}.png").is_file() and not (out / "a_pop-art_c2.png").exists()
    assert any("writing " + moved in n for n in notes), notes
    again = build_plan(photos, ["pop art"], ["c2"], config, out)  # a rerun finds the job under its name
    assert again[0].stem == moved and run_batch(again, out, device="cpu", models=models).count("skipped") == 1


def test_state_files_that_are_not_objects_are_ignored(tmp_path):
    (tmp_path / ".jobs").mkdir()
    (tmp_path / ".jobs" / "0123456789abcdef.json").write_text("[]")
    (tmp_path / ".jobs" / "fedcba9876543210.json").write_text('{"no": "id"}')
    assert read_state(tmp_path, "0123456789abcdef") is None and read_manifest(tmp_path) == {}


# --- real processes started together on one --out --------------------------------------------------------
def test_two_transfers_with_other_steps_started_together_keep_both(tmp_path):
    """Acceptance: --steps 4 and --steps 6 at once on one --out: two results, each sidecar matching its PNG."""
    photo = make_images(tmp_path / "photos", ["boat.png"]) / "boat.png"
    out = tmp_path / "out"
    args = ["transfer", photo, "pop art", "--out", out, *TINY]
    procs = [spectralstyle(*args, "--steps", str(steps)) for steps in (4, 6)]
    outputs = [p.communicate(timeout=400) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    images = sorted(out.glob("boat_pop-art_c2*.png"))
    assert len(images) == 2, images
    steps = set()
    for image in images:
        sidecar = json.loads(image.with_suffix(".json").read_text())
        embedded = read_png_metadata(image)
        assert sidecar["config"]["steps"] == embedded["config"]["steps"] == sidecar["steps_done"]
        assert sidecar["config_hash"] == embedded["config_hash"] and sidecar["output"] == str(image)
        steps.add(sidecar["config"]["steps"])
    assert steps == {4, 6}
    assert not (out / NAMES_DIR).exists() and not (out / ".checkpoints").exists()


@pytest.mark.slow  # test_a_batch_job_writes_beside_a_name_another_run_is_writing covers it in one process
def test_two_batches_with_other_steps_started_together_keep_both_and_the_manifest_lists_both(tmp_path):
    photos = make_images(tmp_path / "photos", ["boat.png"])
    out = tmp_path / "out"
    args = ["batch", photos, "--text", "pop art", "--out", out, *TINY]
    procs = [spectralstyle(*args, "--steps", str(steps)) for steps in (1, 2)]
    outputs = [p.communicate(timeout=400) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    states = read_manifest(out)
    assert sorted(s["status"] for s in states.values()) == ["finished", "finished"]
    assert len({s["stem"] for s in states.values()}) == 2  # each job finished under its own name
    for state in states.values():
        sidecar = json.loads((out / state["sidecar"]).read_text())
        assert sidecar["config_hash"] == state["config_hash"] == read_png_metadata(out / state["image"])["config_hash"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"finished": 2}  # the union, whichever process wrote it last


# --- a batch waits for the jobs of its plan that run elsewhere ---------------------------------------------
def start_hanging_owner(tmp_path: Path, args: list) -> tuple[subprocess.Popen, Path]:
    """A batch process that claims its first job, then stops there (alive) until the test kills it."""
    ready = tmp_path / "owner-ready"
    owner = spectralstyle(*args, launcher=[sys.executable, str(WRAPPER), "hang", "0", str(ready)])
    wait_for(lambda: ready.exists() or owner.poll() is not None, what="the owner to start its job")
    assert owner.poll() is None, owner.communicate()
    return owner, ready


def test_the_survivor_finishes_the_job_of_an_owner_killed_with_sigkill(tmp_path):
    """Acceptance: two processes on 2 jobs; job 1's owner is killed -9 while the other runs job 2."""
    photos = make_images(tmp_path / "photos", ["a.png", "b.png"])
    out = tmp_path / "out"
    args = ["batch", photos, "--text", "pop art", "--out", out, *TINY]
    plan = make_plan(photos, ["pop art"], ["c2"], tiny_config())
    owner, _ = start_hanging_owner(tmp_path, args)
    assert read_state(out, plan[0].job_id)["pid"] == owner.pid
    survivor = spectralstyle(*args)
    wait_for(lambda: (read_state(out, plan[1].job_id) or {}).get("pid") == survivor.pid, what="job 2 to start")
    os.kill(owner.pid, signal.SIGKILL)  # while the survivor runs job 2
    assert owner.wait(timeout=60) == -signal.SIGKILL
    stdout, stderr = survivor.communicate(timeout=400)
    assert survivor.returncode == 0, stderr
    assert "2 finished" in stderr and "Traceback" not in stderr, stderr
    states = read_manifest(out)
    assert all(states[j.job_id]["status"] == "finished" and states[j.job_id]["pid"] == survivor.pid for j in plan)
    assert [a["pid"] for a in states[plan[0].job_id]["attempts"]] == [owner.pid]  # taken over from the dead owner
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"finished": 2}
    assert all(j.image_path(out).is_file() for j in plan)
    assert not list((out / ".jobs").glob("*.lock")) and not (out / NAMES_DIR).exists()


def test_no_wait_exits_75_and_without_it_a_batch_waits_for_a_live_owner(tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png"])
    out = tmp_path / "out"
    args = ["batch", photos, "--text", "pop art", "--out", out, *TINY]
    owner, _ = start_hanging_owner(tmp_path, args)
    try:
        impatient = spectralstyle(*args, "--no-wait")
        _, stderr = impatient.communicate(timeout=400)
        assert impatient.returncode == 75, stderr
        assert "1 running elsewhere" in stderr and "--no-wait" in stderr and "Traceback" not in stderr
        log = tmp_path / "patient.err"
        with log.open("w") as err:
            patient = subprocess.Popen([str(BIN / "spectralstyle"), *map(str, args)], stdout=subprocess.PIPE,
                                       stderr=err, text=True, env=ENV)
        wait_for(lambda: "waiting for 1 job(s)" in log.read_text() or patient.poll() is not None, what="the note")
        time.sleep(1.0)  # two polls of the live owner's lock
        assert patient.poll() is None, log.read_text()  # it waits while the owner lives
        patient.send_signal(signal.SIGTERM)  # the wait is interruptible like a job
        patient.communicate(timeout=120)
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=60)
    assert patient.returncode == 130, log.read_text()
    assert "interrupted while waiting" in log.read_text() and "Traceback" not in log.read_text()


def test_a_lock_of_a_killed_unreaped_process_is_stale(tmp_path):
    """kill -9 leaves a zombie until its parent reaps it: its pid exists, but it runs no code."""
    from spectralstyle.media.claims import is_live, owner_info

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    info = owner_info() | {"pid": child.pid, "process_start": None}
    assert is_live(info)
    child.send_signal(signal.SIGKILL)
    wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 10, "zombie")
    assert not is_live(info)
    child.wait()


def test_the_stale_timeout_is_configurable(monkeypatch):
    from spectralstyle.media.claims import is_live, owner_info

    other_host = owner_info() | {"host": "node-b.example", "heartbeat": time.time() - 10}
    assert is_live(other_host)  # default: 120 s
    monkeypatch.setenv("SPECTRALSTYLE_LOCK_STALE_S", "5")
    assert not is_live(other_host)
    monkeypatch.setenv("SPECTRALSTYLE_LOCK_STALE_S", "nonsense")
    assert is_live(other_host)

