"""`spectralstyle batch`: plan, sharding, manifest, resume after a kill, bad images, torchrun ranks.

End-to-end runs use random weights and tiny sizes; they run in subprocesses because a killed run
and torchrun ranks are separate processes in real use too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.bands import split_band_list
from spectralstyle.batch.manifest import job_action, read_manifest, read_state
from spectralstyle.batch.plan import collect_prompts, make_plan, read_prompts
from spectralstyle.batch.shards import (
    DistEnv,
    Shard,
    rank_device,
    resolve_shard,
    shard_jobs,
)
from spectralstyle.cli.app import app
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import TransferConfig

TINY = ["--weights", "random", "--steps", "1", "--size", "32x32", "--crops", "1", "--crop-size", "32",
        "--device", "cpu"]
BIN = Path(sys.executable).parent
WRAPPER = Path(__file__).with_name("batch_process.py")
runner = CliRunner()


def tiny_config(**changes) -> TransferConfig:
    """The settings of TINY (its --size 32x32 is exact: keep_aspect off)."""
    return TransferConfig(weights="random", steps=1, width=32, height=32, keep_aspect=False, crops=1, crop_size=32,
                          device="cpu", **changes)


def make_images(folder: Path, names: list[str]) -> Path:
    """Small distinct RGB images (a colour ramp each), plus nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        x = torch.linspace(0, 1, 40)
        img = torch.stack([x.expand(36, 40), x.flip(0).expand(36, 40), torch.full((36, 40), 0.2 + 0.3 * i)])
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(folder / name)
    return folder


def run_cli(*args: str, env: dict[str, str] | None = None,
            launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    command = (launcher or [str(BIN / "spectralstyle")]) + [str(a) for a in args]
    return subprocess.run(command, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


# --- pure functions: plan and split ------------------------------------------------------------
@pytest.fixture()
def plan12(tmp_path):
    folder = make_images(tmp_path / "photos", ["a.png", "b.png", "c.png"])
    return make_plan(folder, ["pop art", "watercolor"], ["c2", "none"], tiny_config())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_shards_are_a_disjoint_cover_of_the_plan(plan12, n):
    ids = [j.job_id for j in plan12]
    shards = [[j.job_id for j in shard_jobs(plan12, Shard(i, n))] for i in range(n)]
    flat = [jid for s in shards for jid in s]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat)) == 12
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    for i, s in enumerate(shards):  # job k of the sorted plan goes to shard k mod n
        assert s == [jid for k, jid in enumerate(ids) if k % n == i]
    # Slurm array tasks x torchrun ranks compose into one finer split, still disjoint and complete
    nested = [j.job_id for i in range(n) for r in range(2) for j in shard_jobs(plan12, Shard(i, n).within(r, 2))]
    assert sorted(nested) == sorted(ids) and len(set(nested)) == 12


def test_plan_is_stable_and_ids_depend_on_inputs(plan12, tmp_path):
    assert len({j.job_id for j in plan12}) == 12 and len({j.stem for j in plan12}) == 12
    moved = make_images(tmp_path / "elsewhere", ["c.png", "a.png", "b.png"])
    again = make_plan(moved, ["watercolor", "pop art"], ["none", "c2"], tiny_config())
    assert [j.job_id for j in again] == [j.job_id for j in plan12]  # order and ids independent of the input order
    other = make_plan(moved, ["pop art", "watercolor"], ["c2", "none"], tiny_config(lr=1e-3))
    assert not {j.job_id for j in other} & {j.job_id for j in plan12}
    assert {j.config.band for j in plan12} == {"c2", "none"} and all(j.config_hash == j.config.digest() for j in plan12)


def test_colliding_output_names_get_the_job_id(tmp_path):
    folder = make_images(tmp_path / "p", ["boat.png", "boat.jpg"])
    plan = make_plan(folder, ["Pop art", "pop art!"], ["c2"], tiny_config())
    assert len({j.stem for j in plan}) == 4 and all(j.stem.endswith(j.job_id[:8]) for j in plan)


def test_shard_sources():
    assert resolve_shard(None, DistEnv(), {}) == Shard(0, 1)
    torchrun = DistEnv.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert torchrun == DistEnv(3, 4, 1)
    assert resolve_shard(None, torchrun, {}) == Shard(3, 4)
    assert resolve_shard("1/3", torchrun, {}) == Shard(7, 12)
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "2",
             "SLURM_ARRAY_TASK_MAX": "5"}
    assert resolve_shard(None, DistEnv(), slurm) == Shard(3, 4)
    assert resolve_shard("0/2", DistEnv(), slurm) == Shard(0, 2)  # --shard wins
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(SpectralStyleError):
            resolve_shard(bad, DistEnv(), {})
    with pytest.raises(SpectralStyleError):
        DistEnv.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(SpectralStyleError, match="not contiguous"):
        resolve_shard(None, DistEnv(), {**slurm, "SLURM_ARRAY_TASK_MAX": "9"})
    with pytest.raises(SpectralStyleError, match="not all integers"):
        resolve_shard(None, DistEnv(), {**slurm, "SLURM_ARRAY_TASK_ID": "x"})


def test_rank_device():
    dev = rank_device("auto", DistEnv(1, 2, 1))
    if torch.cuda.is_available():
        assert dev == torch.device(f"cuda:{1 % torch.cuda.device_count()}")
    else:
        assert dev == torch.device("cpu")
    assert rank_device("cpu", DistEnv(1, 2, 1)) == torch.device("cpu")


def test_bands_and_prompts(tmp_path):
    def split_bands(values):
        return [band.spec for band in split_band_list(values)]

    assert split_bands(["c2,none"]) == ["c2", "none"]
    assert split_bands(["c2,4-7,16-49", "none", "C2"]) == ["c2", "4-7,16-49", "none"]
    assert split_bands(["4-7;16-49"]) == ["4-7", "16-49"]
    assert split_bands(["4-49,c2", "0-49;none"]) == ["4-49", "0-49"]  # same frequencies as c2 / none: once each
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# styles to try\npop art\n\n   \n  watercolor painting  \n#oil\npop art\n")
    assert read_prompts(prompts) == ["pop art", "watercolor painting", "pop art"]
    assert collect_prompts(prompts, ["ink", "pop art"]) == ["pop art", "watercolor painting", "ink"]
    with pytest.raises(SpectralStyleError, match="too long"):
        collect_prompts(None, ["word " * 80])
    windows = tmp_path / "windows.txt"  # a BOM and CRLF line ends, as Notepad writes them
    windows.write_bytes("pop art\r\npop art\r\n".encode("utf-8-sig"))
    assert collect_prompts(windows, None) == ["pop art"]


def test_finished_job_keeps_its_names_when_a_new_prompt_collides(tmp_path):
    """Adding "Pop Art" next to a finished "pop art" must not rename (and so re-run) the finished job."""
    photos, out = make_images(tmp_path / "photos", ["boat.png"]), tmp_path / "out"
    res = invoke("batch", photos, "--text", "pop art", "--out", out, "--weights", "random", "--steps", "1",
                 "--size", "32x32", "--crops", "1", "--crop-size", "32", "--device", "cpu")
    assert res.exit_code == 0, res.output
    first = make_plan(photos, ["pop art"], ["c2"], tiny_config(), out)[0]
    assert first.stem == "boat_pop-art_c2"
    plan = make_plan(photos, ["pop art", "Pop Art"], ["c2"], tiny_config(), out)
    stems = {j.text: j.stem for j in plan}
    assert stems["pop art"] == "boat_pop-art_c2"  # as recorded in its finished state
    assert stems["Pop Art"].startswith("boat_pop-art_c2_")  # the newcomer gets the id suffix
    assert job_action(plan[[j.text for j in plan].index("pop art")], out,
                      read_state(out, first.job_id)) == ("skip", "finished")
    assert make_plan(photos, ["pop art", "Pop Art"], ["c2"], tiny_config())[0].stem.startswith("boat_pop-art_c2_")


# --- user errors and the dry run (no model is loaded) ------------------------------------------
def test_user_errors_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    photos = make_images(tmp_path / "photos", ["a.png"])
    comments = tmp_path / "comments.txt"
    comments.write_text("# nothing\n\n")
    cases = [
        ([empty, "--text", "pop art"], "no images"),
        ([tmp_path / "missing", "--text", "pop art"], "does not exist"),
        ([photos, "--prompts", tmp_path / "nope.txt"], "prompts file"),
        ([photos, "--prompts", comments], "no prompts"),
        ([photos], "no prompts"),
        ([photos, "--text", "x", "--band", "c1", "--bands", "c2,none"], "not both"),
        ([photos, "--text", "x", "--bands", "c9"], "unknown band"),
        ([photos, "--text", "x", "--shard", "2/2"], "shard"),
    ]
    for args, message in cases:
        result = invoke("batch", *args, "--out", tmp_path / "out", *TINY)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)
    assert not (tmp_path / "out" / ".jobs").exists()


def test_dry_run_lists_the_plan_without_running(tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png", "b.png"])
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("pop art\n# skip me\nwatercolor\n")
    out = tmp_path / "out"
    result = invoke("batch", photos, "--prompts", prompts, "--bands", "c2,none", "--out", out, "--dry-run", *TINY)
    assert result.exit_code == 0, result.output
    plan = make_plan(photos, ["pop art", "watercolor"], ["c2", "none"], tiny_config())
    assert "8 jobs = 2 images x 2 prompts x 2 bands" in result.output and "8 new" in result.output
    assert all(j.job_id in result.output for j in plan) and "skip me" not in result.output
    assert not out.exists()  # nothing written: no manifest, no log, no model run


# --- kill after one job, resume, a bad image -----------------------------------------------------
@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    photos = make_images(root / "photos", ["a.png", "b.png"])
    (photos / "c_broken.jpg").write_text("this is not a JPEG")
    prompts = root / "prompts.txt"
    prompts.write_text("# one style\n\npop art\n")
    out = root / "out"
    args = ["batch", photos, "--prompts", prompts, "--out", out, *TINY]  # 3 jobs: a.png, b.png, c_broken.jpg
    killed = run_cli(*args, launcher=[sys.executable, str(WRAPPER), "kill", "1"])  # a real SIGKILL as job 2 starts
    after_kill = read_manifest(out)
    first = out / "a_pop-art_c2.png"
    mtime = first.stat().st_mtime_ns if first.exists() else None
    resumed = run_cli(*args)
    plan = make_plan(photos, ["pop art"], ["c2"], tiny_config())
    return dict(out=out, photos=photos, prompts=prompts, killed=killed, after_kill=after_kill, first=first,
                mtime=mtime, resumed=resumed, plan=plan)


def test_kill_leaves_one_finished_job_and_one_running(killed_then_resumed):
    r = killed_then_resumed
    assert r["killed"].returncode == -signal.SIGKILL, r["killed"].stderr
    statuses = sorted(s["status"] for s in r["after_kill"].values())
    assert statuses == ["finished", "running"]
    finished = next(s for s in r["after_kill"].values() if s["status"] == "finished")
    assert finished["name"] == "a.png" and finished["text"] == "pop art" and r["mtime"] is not None


def test_resume_skips_finished_runs_the_rest_and_reports_the_bad_image(killed_then_resumed):
    r = killed_then_resumed
    out, resumed, plan = r["out"], r["resumed"], r["plan"]
    assert resumed.returncode == 1, resumed.stderr  # a job failed
    assert r["first"].stat().st_mtime_ns == r["mtime"]  # the finished job was not run again
    assert "2 to run, 1 already finished" in resumed.stderr
    assert re.search(r"3 jobs.*1 finished, 1 skipped.*1 failed", resumed.stderr)
    summary = resumed.stderr[resumed.stderr.index("batch: 3 jobs:"):].splitlines()[1:]  # one line per failed job
    broken = {j.job_id for j in plan if j.name == "c_broken.jpg"}
    assert len(summary) == 1 and all("not a readable image" in line for line in summary), summary
    assert {re.search(r"failed c_broken\.jpg · .* \(([0-9a-f]{16})\): ", line).group(1) for line in summary} == broken

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"finished": 2, "failed": 1}
    assert [s["job_id"] for s in manifest["jobs"]] == [j.job_id for j in plan]
    assert manifest["config"] == tiny_config().to_dict()
    for job, state in zip(plan, manifest["jobs"]):
        assert state == read_state(out, job.job_id)
        assert state["config_hash"] == job.config_hash and state["name"] == job.name and state["text"] == job.text
        if job.name == "c_broken.jpg":
            assert state["status"] == "failed" and "not a readable image" in state["error"]
            continue
        sidecar = json.loads((out / state["sidecar"]).read_text())
        assert state["status"] == "finished" and (out / state["image"]).is_file()
        assert sidecar["config_hash"] == job.config_hash and sidecar["status"] == "finished"
        assert state["metrics"]["steps_done"] == 1 and state["metrics"]["wall_time_s"] > 0
        assert state["metrics"]["final_losses"]["total"] == pytest.approx(sidecar["losses"][-1]["total"])
        assert job_action(job, out, state) == ("skip", "finished")
    # the job that was running when the process died was redone, and remembers that
    killed_job = next(s for s in manifest["jobs"] if s["name"] == "b.png")
    assert [a["status"] for a in killed_job["attempts"]] == ["running"] and killed_job["status"] == "finished"


def test_rerun_plan_retries_failed_and_rechecks_outputs(killed_then_resumed):
    r = killed_then_resumed
    out, plan = r["out"], r["plan"]
    dry = invoke("batch", r["photos"], "--prompts", r["prompts"], "--out", out, "--dry-run", *TINY)
    assert dry.exit_code == 0 and "2 finished, 1 retry failed" in dry.output, dry.output
    job = next(j for j in plan if j.name == "b.png")
    state = read_state(out, job.job_id)
    sidecar = json.loads(job.sidecar_path(out).read_text())
    assert job_action(job, out, {**state, "config_hash": "0" * 16}) == ("run", "config changed")
    job.sidecar_path(out).write_text(json.dumps({**sidecar, "config_hash": "other"}))  # overwritten by another config
    assert job_action(job, out, state) == ("run", "config changed")
    job.image_path(out).unlink()
    assert job_action(job, out, state) == ("run", "output missing")


# --- torchrun: two CPU ranks split a batch ------------------------------------------------------
def test_torchrun_two_ranks_run_each_job_exactly_once(tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png", "b.png"])
    out = tmp_path / "out"
    proc = run_cli("batch", photos, "--text", "pop art", "--out", out, *TINY,
                   launcher=[str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "spectralstyle"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = make_plan(photos, ["pop art"], ["c2"], tiny_config())  # one job per rank
    states = read_manifest(out)
    assert set(states) == {j.job_id for j in plan}
    for k, job in enumerate(plan):
        state = states[job.job_id]
        assert state["status"] == "finished" and state["attempts"] == [] and state["shard"] == f"{k % 2}/2"
        assert job.image_path(out).is_file()
    logs = "".join(p.read_text() for p in sorted((out / "logs").glob("*/spectralstyle.log")))
    assert len(list((out / "logs").glob("*/spectralstyle.log"))) == 2
    for job in plan:  # each job started exactly once, over both ranks
        assert logs.count(f"start job {job.job_id}") == 1
    assert (proc.stdout + proc.stderr).count("batch: 2 jobs:") == 1  # rank 0 printed the merged summary
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"finished": 2}
