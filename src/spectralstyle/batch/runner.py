"""Batch runs: a plan of (content image, prompt, band) jobs, split over ranks, resumable from disk.

Plan. Every job has a stable id, a hash of (image name relative to the content folder, prompt, band,
config hash), so the same command on any machine, in any process, names the same jobs. The plan is
sorted on content alone (name, prompt, band, id), never on discovery order.

Split. Job ``k`` of the sorted plan goes to shard ``k mod n``. A shard comes from ``--shard i/n``
(Slurm arrays: ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT`` when ``--shard`` is absent) and
from torchrun's ``RANK``/``WORLD_SIZE``; both compose (shard ``i*W + r`` of ``n*W``). The split is
a pure function of the plan, so no scheduler or process group is needed: each job belongs to
exactly one (shard, rank), none is run twice and none is lost.

Manifest: one small JSON state file per job, ``OUT/.jobs/<job_id>.json``, merged on read. Why
not SQLite or a shared JSONL file: ranks may sit on several machines that share OUT over NFS, where
SQLite's POSIX locks are unreliable (its own documentation warns that the database can be corrupted)
and ``O_APPEND`` writes from several clients may interleave or overwrite each other. A whole-file
write to a temporary name followed by ``rename`` is atomic on local filesystems and on NFS; a job
belongs to exactly one rank, and while it runs its owner holds ``OUT/.jobs/<job_id>.lock``
(:mod:`spectralstyle.batch.claims`), so even two processes started on the same plan by mistake never write
one state file at the same time, nor run one job twice.
Readers merge the folder; ``OUT/manifest.json`` is a convenience snapshot of that merge written when
a run ends (the ``.jobs`` folder is the truth). Images and sidecars are written atomically by
``image_io`` too, so a crash never leaves a half-written file under a final name.

Resume: a job is skipped only when its state says finished, its PNG and sidecar JSON exist and the
sidecar's config hash equals the job's; anything else (failed, interrupted, a "running" left by a
killed process, a missing or overwritten output) is run again.

Testing hook: ``SPECTRALSTYLE_TEST_FAIL_AFTER_JOBS=N`` makes a runner kill its own process (like
``kill -9`` or a preemption, exit code 86) right after it has marked job N+1 as running, i.e. after
N jobs finished in this process. Only tests set it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import torch

from spectralstyle.method.bands import band_label
from spectralstyle.batch.claims import holder, try_claim
from spectralstyle.device import free_device_memory, is_out_of_memory, out_of_memory_message, resolve_device
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import write_json
from spectralstyle.media.images import list_images
from spectralstyle.interrupts import stop_at_step_boundary, stop_requested
from spectralstyle.record import read_record
from spectralstyle.runs.naming import existing_record, free_stem, same_run, split_own_results
from spectralstyle.runs.checkpoints import NoteCallback, RunControl, interruption_message
from spectralstyle.settings import TransferConfig
from spectralstyle.runs.train import MODEL_SUFFIX, TrainSettings, model_stem, run_train_job, train_digest
from spectralstyle.runs.models import Models
from spectralstyle.runs.transfer import output_stem, run_job

log = logging.getLogger("spectralstyle")

STATE_DIR = ".jobs"
MANIFEST_NAME = "manifest.json"
TEST_CRASH_ENV = "SPECTRALSTYLE_TEST_FAIL_AFTER_JOBS"
TEST_CRASH_EXIT = 86
GATHER_TIMEOUT = timedelta(hours=48)
"""How long a rank that is done waits for the slowest rank before printing only its own summary."""

# Job states written to OUT/.jobs/<id>.json
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"
SKIPPED = "skipped"  # a result of this run only: already finished earlier
ELSEWHERE = "elsewhere"  # a result of this run only: another live process owns the job (claims.py)
MANIFEST_LOCK = "manifest"


# --- inputs -------------------------------------------------------------------------------------
def read_prompts(path: str | Path) -> list[str]:
    """Prompts of a text file: one per line; blank lines and lines starting with ``#`` are ignored."""
    p = Path(path)
    if not p.is_file():
        raise SpectralStyleError(f"prompts file {p} does not exist")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM from Windows editors is not text
    except (OSError, UnicodeDecodeError) as exc:
        raise SpectralStyleError(f"prompts file {p} is not readable UTF-8 text ({exc.__class__.__name__})") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def collect_prompts(prompts_file: str | Path | None, texts: list[str] | None) -> list[str]:
    """Prompts from ``--prompts`` then ``--text``, first occurrence kept; each checked against CLIP's limit."""
    from spectralstyle.method.prompts import style_prompts

    prompts: list[str] = []
    sources = [(f"{prompts_file}", p) for p in read_prompts(prompts_file)] if prompts_file else []
    sources += [("--text", t.strip()) for t in texts or []]
    for origin, text in sources:
        try:
            style_prompts(text)  # weighted prompts "a|b:0.5|c:-1", each in every template
        except SpectralStyleError as exc:
            raise SpectralStyleError(f"prompt {text!r} from {origin}: {exc}") from None
        if text not in prompts:
            prompts.append(text)
    if not prompts:
        raise SpectralStyleError("no prompts: give --prompts FILE (one per line) or --text TEXT")
    return prompts


# --- plan -----------------------------------------------------------------------------------------
@dataclass
class Job:
    """One (content image, prompt, band) run with the batch's settings."""

    job_id: str
    content: Path
    name: str
    text: str
    band: str
    config: TransferConfig
    stem: str = ""
    train: TrainSettings | None = None  # set: a ``--mode train`` job, one style model over ``train_images``
    train_images: tuple[Path, ...] = ()

    @property
    def config_hash(self) -> str:
        return train_digest(self.config, self.train) if self.train else self.config.digest()

    def base_stem(self) -> str:
        """The name the single command gives this output: ``transfer``'s, or ``train``'s ``<text>_<band>``."""
        return model_stem(self.text, self.band) if self.train else output_stem(Path(self.name), self.text, self.band)

    def image_path(self, out: Path) -> Path:
        """The job's main output: the stylised PNG, or the trained model."""
        if self.train:
            return out / f"{self.stem}{MODEL_SUFFIX}"
        return out / f"{self.stem}.png"

    def sidecar_path(self, out: Path) -> Path:
        return out / f"{self.stem}.json"

    def describe(self) -> str:
        return f"{self.name} · {self.text} · {band_label(self.band)}"


def job_id(name: str, text: str, band: str, config_hash: str) -> str:
    """Stable id of a job: the same inputs give the same id on every machine and in every process."""
    key = json.dumps([name, text, band, config_hash], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def make_plan(
    content_dir: str | Path, prompts: list[str], bands: list[str], config: TransferConfig, out: Path | None = None,
    overwrite: bool = False,
) -> list[Job]:
    """Every (image, prompt, band) job, sorted deterministically, with collision-free output names.

    With ``out``, a job finished there keeps the file names it was written under, even if a prompt
    added since then now shares its name (and would otherwise move it to a new, id-suffixed name), and
    a job whose name holds another run's result moves to a free name (results.py) unless ``overwrite``.
    Images this tool wrote are not content (results.py).
    """
    folder = Path(content_dir)
    if not folder.is_dir():
        raise SpectralStyleError(f"content folder {folder} does not exist or is not a folder")
    images, own = split_own_results(list_images(folder))
    if not images:
        extra = f" (only {len(own)} result(s) written by spectralstyle, which are not content)" if own else ""
        raise SpectralStyleError(f"no images (jpg, png, ...) in {folder}{extra}")
    if not prompts:
        raise SpectralStyleError("no prompts")
    configs = {band: config.replace(band=band) for band in bands}  # validates each band
    jobs = [
        Job(job_id(image.name, text, band, cfg.digest()), image, image.name, text, band, cfg)
        for image in images for text in prompts for band, cfg in configs.items()
    ]
    jobs.sort(key=lambda j: (j.name, j.text, band_label(j.band), j.job_id))
    _assign_stems(jobs)
    if out is not None:
        finished = _keep_finished_stems(jobs, Path(out))
        taken = {j.stem for j in jobs}  # unique within the plan
        for job in jobs:
            record = None if job.job_id in finished or overwrite else existing_record(Path(out), job.stem)
            if record is not None and not same_run(record, job.content, job.text, job.config_hash):
                taken.discard(job.stem)
                job.stem = free_stem(out, job.stem, job.content, job.text, job.config_hash, taken=taken)
                taken.add(job.stem)
    return jobs


def make_train_plan(
    content_dir: str | Path, prompts: list[str], bands: list[str], config: TransferConfig, train: TrainSettings,
    out: Path | None = None,
) -> list[Job]:
    """``--mode train``: one job per (prompt, band), each training a style model over all images of the folder.

    The job id covers the image names, so adding or removing an image trains the models again.
    """
    folder = Path(content_dir)
    if not folder.is_dir():
        raise SpectralStyleError(f"content folder {folder} does not exist or is not a folder")
    images = tuple(list_images(folder))
    if not images:
        raise SpectralStyleError(f"no images (jpg, png, ...) in {folder}")
    if not prompts:
        raise SpectralStyleError("no prompts")
    configs = {band: config.replace(band=band) for band in bands}
    for cfg in configs.values():
        train.check(cfg)
    name = f"{folder.name} ({len(images)} images)"
    image_key = json.dumps([p.name for p in images], ensure_ascii=False)
    jobs = [
        Job(job_id(image_key, text, band, train_digest(cfg, train)), folder, name, text, band, cfg,
            train=train, train_images=images)
        for text in prompts for band, cfg in configs.items()
    ]
    jobs.sort(key=lambda j: (j.text, band_label(j.band), j.job_id))
    _assign_stems(jobs)
    if out is not None:
        _keep_finished_stems(jobs, Path(out))
    return jobs


def _keep_finished_stems(jobs: list[Job], out: Path) -> set[str]:
    """Give finished jobs their recorded names back; returns their ids."""
    taken = {j.stem for j in jobs}
    finished = set()
    for job in jobs:
        state = read_state(out, job.job_id)
        recorded = state.get("stem") if state and state.get("status") == FINISHED else None
        if isinstance(recorded, str) and recorded != job.stem and recorded not in taken:
            taken.discard(job.stem)
            job.stem = recorded
            taken.add(recorded)
        if recorded == job.stem:
            finished.add(job.job_id)
    return finished


def _assign_stems(jobs: list[Job]) -> None:
    """The transfer command's file names; jobs whose names would collide get their id appended."""
    stems = [j.base_stem() for j in jobs]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    for j, stem in zip(jobs, stems):
        j.stem = stem if counts[stem] == 1 else f"{stem}_{j.job_id[:8]}"


# --- sharding -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """This process's share of the plan: jobs ``k`` with ``k mod count == index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise SpectralStyleError(f"bad shard {self.index}/{self.count}: need 0 <= i < n")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def within(self, rank: int, world_size: int) -> "Shard":
        """Sub-split among torchrun ranks: shard ``i*W + r`` of ``n*W`` (Slurm array x GPUs)."""
        return Shard(self.index * world_size + rank, self.count * world_size)


def shard_jobs(plan: list[Job], shard: Shard) -> list[Job]:
    return plan[shard.index :: shard.count]


def parse_shard(text: str) -> Shard:
    """``"3/8"`` -> Shard(3, 8) (0-based index)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SpectralStyleError(f"--shard {text!r} is not I/N (for example 0/4)") from None
    return Shard(index, count)


@dataclass(frozen=True)
class DistEnv:
    """What torchrun tells each process through the environment (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DistEnv":
        env = os.environ if env is None else env
        try:
            rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
            local = int(env["LOCAL_RANK"]) if "LOCAL_RANK" in env else None
        except ValueError:
            raise SpectralStyleError("RANK, WORLD_SIZE or LOCAL_RANK is not an integer") from None
        if world < 1 or not 0 <= rank < world:
            raise SpectralStyleError(f"RANK={rank} and WORLD_SIZE={world} do not fit (need 0 <= RANK < WORLD_SIZE)")
        return cls(rank, world, local)


def resolve_shard(option: str | None, dist: DistEnv, env: Mapping[str, str] | None = None) -> Shard:
    """``--shard`` (else a Slurm array's task id and count), sub-split among torchrun ranks."""
    env = os.environ if env is None else env
    if option:
        base = parse_shard(option)
    elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        try:
            task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
            low, high = int(env.get("SLURM_ARRAY_TASK_MIN", 0)), int(env.get("SLURM_ARRAY_TASK_MAX", task))
        except ValueError:
            raise SpectralStyleError("SLURM_ARRAY_TASK_ID/COUNT/MIN/MAX are not all integers; pass --shard I/N") from None
        if high - low + 1 != count:
            raise SpectralStyleError("the Slurm array is not contiguous (like --array=0-7); pass --shard I/N")
        base = Shard(task - low, count)
    else:
        base = Shard()
    return base.within(dist.rank, dist.world_size)


def rank_device(device: str, dist: DistEnv) -> torch.device:
    """cuda:LOCAL_RANK for torchrun ranks when CUDA is present and the device is auto or cuda."""
    name = (device or "auto").strip().lower()
    if dist.local_rank is not None and name in ("auto", "cuda") and torch.cuda.is_available():
        device = resolve_device(f"cuda:{dist.local_rank % torch.cuda.device_count()}")
        torch.cuda.set_device(device)  # so that library calls on the "current" device use this rank's GPU
        return device
    if dist.local_rank is not None and name == "auto":
        return torch.device("cpu")
    return resolve_device(name)


# --- manifest (per-job state files) ---------------------------------------------------------------
def state_path(out: Path, jid: str) -> Path:
    return Path(out) / STATE_DIR / f"{jid}.json"


def read_state(out: Path, jid: str) -> dict[str, Any] | None:
    """A job's last written state, or None if it never started (or the file is unreadable)."""
    try:
        return json.loads(state_path(out, jid).read_text())
    except (OSError, ValueError):
        return None


def read_manifest(out: str | Path) -> dict[str, dict[str, Any]]:
    """All job states in OUT, merged from every rank's state files (job id -> state)."""
    folder = Path(out) / STATE_DIR
    states: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(path.read_text())
            states[state["job_id"]] = state
    return states


def job_action(job: Job, out: Path, state: dict[str, Any] | None) -> tuple[str, str]:
    """What a run does with ``job``: ``("skip", why)`` only when finished with matching outputs, else ``("run", why)``."""
    if state is None:
        return "run", "new"
    status = state.get("status")
    if status != FINISHED:
        return "run", {FAILED: "retry failed", INTERRUPTED: "retry interrupted", RUNNING: "retry (was running)"}.get(
            status, f"retry ({status})")
    image, sidecar = job.image_path(out), job.sidecar_path(out)
    if not image.is_file() or not sidecar.is_file():
        return "run", "output missing"
    record = read_record(image)  # the one reader: a sidecar that is not a JSON object counts as none
    if record is None:
        return "run", "sidecar unreadable"
    if state.get("config_hash") != job.config_hash or record.config_hash != job.config_hash:
        return "run", "config changed"
    return "skip", "finished"


def _base_state(job: Job, out: Path, shard: Shard, device: torch.device) -> dict[str, Any]:
    return {
        "job_id": job.job_id, "content": str(job.content), "name": job.name, "text": job.text, "band": job.band,
        "config_hash": job.config_hash, "stem": job.stem,
        "image": job.image_path(out).name, "sidecar": job.sidecar_path(out).name,
        "shard": str(shard), "host": socket.gethostname(), "pid": os.getpid(), "device": str(device),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_manifest(out: Path, plan: list[Job], config: TransferConfig) -> Path:
    """``OUT/manifest.json``: the merged state of every job of this plan (pending if never started).

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
    jobs = [states.get(j.job_id) or {"job_id": j.job_id, "name": j.name, "text": j.text, "band": j.band,
                                      "config_hash": j.config_hash, "stem": j.stem, "status": "pending"} for j in plan]
    counts: dict[str, int] = {}
    for s in jobs:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    return write_json({"updated": _now(), "config": config.to_dict(), "counts": counts, "jobs": jobs},
                      Path(out) / MANIFEST_NAME)


# --- running --------------------------------------------------------------------------------------
@dataclass
class JobResult:
    """What happened to one job in this run (status: finished, skipped, failed or interrupted)."""

    job_id: str
    describe: str
    status: str
    error: str = ""
    wall_time_s: float = 0.0
    image: str = ""


@dataclass
class BatchHooks:
    """Display callbacks of the CLI; all optional."""

    on_job_start: Callable[[Job, int, int], None] | None = None
    on_step: Callable[[Job, int, dict[str, float]], None] | None = None
    on_job_end: Callable[[Job, JobResult], None] | None = None
    on_models_loading: Callable[[torch.device], None] | None = None
    on_note: NoteCallback | None = None  # resuming a job from its checkpoint, ignoring one


def crash_after_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """The testing hook SPECTRALSTYLE_TEST_FAIL_AFTER_JOBS (see the module docstring)."""
    value = (os.environ if env is None else env).get(TEST_CRASH_ENV, "").strip()
    return int(value) if value else None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SpectralStyleError):
        return str(exc)
    if is_out_of_memory(exc):
        return out_of_memory_message(exc)
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass
class BatchRunner:
    """Runs this shard's jobs on one device: models are loaded once (lazily), failures stay per job."""

    out: Path
    shard: Shard
    device: torch.device
    save_model: bool = False
    hooks: BatchHooks = field(default_factory=BatchHooks)
    crash_after: int | None = None
    overwrite: bool = False
    models: Models | None = None
    finished_here: int = 0
    control: RunControl = field(default_factory=RunControl)  # checkpoints of each job (not in the config hash)

    def _models(self, config: TransferConfig) -> Models:
        if self.models is None:
            if self.hooks.on_models_loading:
                self.hooks.on_models_loading(self.device)
            self.models = Models.load(config.replace(device=str(self.device)))
        return self.models

    def run(self, jobs: list[Job]) -> list[JobResult]:
        """Run (or skip) each job in order; stops at Ctrl-C/SIGTERM after recording the current job."""
        results: list[JobResult] = []
        with stop_at_step_boundary():  # SIGTERM (Slurm, torchrun) like Ctrl-C: stop after the job's current step
            for position, job in enumerate(jobs, 1):
                if job_action(job, self.out, read_state(self.out, job.job_id))[0] == "skip":
                    results.append(JobResult(job.job_id, job.describe(), SKIPPED, image=str(job.image_path(self.out))))
                    continue
                claim = try_claim(self.out / STATE_DIR, job.job_id)
                if claim is None:  # a live process owns it (see claims.py): not ours, not a failure
                    owner = holder(self.out / STATE_DIR, job.job_id) or {}
                    results.append(JobResult(job.job_id, job.describe(), ELSEWHERE,
                                             f"running on {owner.get('host', '?')}, pid {owner.get('pid', '?')}"))
                    if self.hooks.on_job_end:
                        self.hooks.on_job_end(job, results[-1])
                    continue
                with claim:
                    state = read_state(self.out, job.job_id)  # again: another process may have finished it meanwhile
                    action, why = job_action(job, self.out, state)
                    if action == "skip":
                        results.append(JobResult(job.job_id, job.describe(), SKIPPED, image=str(job.image_path(self.out))))
                        continue
                    self._keep_others_results(job)
                    if self.hooks.on_job_start:
                        self.hooks.on_job_start(job, position, len(jobs))
                    result = self._run_one(job, state, why)
                results.append(result)
                if self.hooks.on_job_end:
                    self.hooks.on_job_end(job, result)
                if result.status == INTERRUPTED:
                    break
                self.finished_here += result.status == FINISHED
        return results

    def _keep_others_results(self, job: Job) -> None:
        """Another run may have written under this job's name since the plan was made: move aside."""
        record = existing_record(self.out, job.stem)
        if not self.overwrite and record is not None and not same_run(record, job.content, job.text, job.config_hash):
            job.stem = free_stem(self.out, job.stem, job.content, job.text, job.config_hash)

    def _run_one(self, job: Job, previous: dict[str, Any] | None, why: str) -> JobResult:
        if stop_requested() is not None:  # the signal came while the previous job wrote its result
            return JobResult(job.job_id, job.describe(), INTERRUPTED,
                             "interrupted before this job started; run the same command to continue")
        history = list((previous or {}).get("attempts", []))
        if previous:  # keep the story of earlier attempts (failed, killed, config changed, ...)
            history.append({k: previous.get(k) for k in ("status", "error", "started", "ended", "host", "pid", "shard")})
        base = {**_base_state(job, self.out, self.shard, self.device), "attempts": history}
        started, t0 = _now(), time.perf_counter()
        write_json({**base, "status": RUNNING, "started": started, "reason": why}, state_path(self.out, job.job_id))
        log.info("start job %s (%s): %s -> %s", job.job_id, why, job.describe(), job.stem)
        self._maybe_crash_for_test()
        status, error, metrics = FAILED, "", {}
        try:
            models = self._models(job.config)
        except KeyboardInterrupt:
            error = "interrupted while loading the models; run the same command to continue"
            wall = self._write_end(base, started, INTERRUPTED, error, {}, t0, job)
            return JobResult(job.job_id, job.describe(), INTERRUPTED, error, wall)
        except Exception as exc:  # no job can run without the models: stop the batch (exit 2 for user errors)
            self._write_end(base, started, FAILED, f"could not load the models: {_one_line(exc)}", {}, t0, job)
            raise
        t0 = time.perf_counter()  # the job's time, not the one-off model loading
        out_of_memory = False
        try:
            on_step = (lambda step, losses: self.hooks.on_step(job, step, losses)) if self.hooks.on_step else None
            if job.train:
                output = run_train_job(list(job.train_images), job.text, job.config, job.train, models, self.out,
                                       on_step=on_step, stem=job.stem)
            else:
                output = run_job(job.content, job.text, job.config, models, self.out, on_step=on_step,
                                 save_model=self.save_model, stem=job.stem, control=self.control,
                                 on_note=self.hooks.on_note)
            record = output.record
            metrics = {"final_losses": {k: v for k, v in (record["losses"][-1] if record["losses"] else {}).items() if k != "step"},
                       "wall_time_s": record["wall_time_s"], "steps_done": record["steps_done"],
                       "resumed_from_step": record.get("resumed_from_step", 0)}
            status = INTERRUPTED if output.interrupted else FINISHED
            if output.interrupted:
                error = f"{interruption_message(record)} (last state: {output.image})"
        except KeyboardInterrupt:
            status, error = INTERRUPTED, "interrupted before the optimisation started; run the same command to continue"
        except SpectralStyleError as exc:  # a bad image, for example
            error = _one_line(exc)
        except Exception as exc:  # one bad job must not stop the batch
            error = _one_line(exc)
            log.error("job %s failed:\n%s", job.job_id, traceback.format_exc())
            out_of_memory = is_out_of_memory(exc)
        if out_of_memory:  # here the traceback, which holds the failed step's tensors, is gone
            free_device_memory(self.device)
        wall = self._write_end(base, started, status, error, metrics, t0, job)
        log.info("%s job %s in %.1fs%s", status, job.job_id, wall, f": {error}" if error else "")
        image = str(job.image_path(self.out)) if status == FINISHED else ""
        return JobResult(job.job_id, job.describe(), status, error, wall, image)

    def _write_end(self, base: dict[str, Any], started: str, status: str, error: str, metrics: dict[str, Any],
                   t0: float, job: Job) -> float:
        wall = round(time.perf_counter() - t0, 3)
        write_json({**base, "status": status, "error": error or None, "started": started, "ended": _now(),
                    "job_wall_time_s": wall, "metrics": metrics}, state_path(self.out, job.job_id))
        return wall

    def _maybe_crash_for_test(self) -> None:
        """The SPECTRALSTYLE_TEST_FAIL_AFTER_JOBS hook: die like a killed process once N jobs are done."""
        if self.crash_after is not None and self.finished_here >= self.crash_after:
            log.warning("test hook %s=%d: killing this process", TEST_CRASH_ENV, self.crash_after)
            logging.shutdown()
            os._exit(TEST_CRASH_EXIT)


# --- end of a distributed run ---------------------------------------------------------------------
def plan_digest(plan: list[Job]) -> str:
    """Hash of the whole plan in order: ranks that disagree on it would not split it cleanly."""
    return hashlib.sha256("".join(j.job_id for j in plan).encode()).hexdigest()[:16]


def gather_results(results: list[JobResult], dist: DistEnv, digest: str = "",
                   timeout: timedelta = GATHER_TIMEOUT) -> list[JobResult] | None:
    """Every rank's results on every rank (a gloo all-gather at the end), or None if that is impossible.

    Why at the end only: the split needs no communication; this just lets rank 0 print one merged
    summary and decide the exit code, and makes early ranks wait so torchrun does not tear down the
    slower ranks when an early one exits. Any failure, including ranks that saw different plans
    (``digest``), is logged and gives None: each rank then reports its own jobs.
    """
    if dist.world_size == 1:
        return results
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        return None
    import torch.distributed as tdist

    try:
        if not tdist.is_initialized():
            tdist.init_process_group("gloo", rank=dist.rank, world_size=dist.world_size, timeout=timeout)
        gathered: list[Any] = [None] * dist.world_size
        tdist.all_gather_object(gathered, (digest, [r.__dict__ for r in results]))
        digests = {d for d, _ in gathered}
        if len(digests) > 1:
            raise SpectralStyleError(f"the ranks saw {len(digests)} different plans (was the content folder or "
                                     "prompts file changed while they started?); check the manifest")
        return [JobResult(**r) for _, part in gathered for r in part]
    except Exception as exc:  # a missing peer or network problem must not hide this rank's own results
        log.warning("could not gather results from the other ranks: %s", _one_line(exc))
        return None
    finally:
        with contextlib.suppress(Exception):
            if tdist.is_initialized():
                tdist.destroy_process_group()
