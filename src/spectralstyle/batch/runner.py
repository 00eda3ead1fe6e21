"""Running a batch plan: this process's jobs on one device, each claimed, named, run and recorded.

A job runs only in the process that claims it (``OUT/.jobs/<job_id>.lock``, :mod:`spectralstyle.media.claims`).
Before it starts, its result name is reserved (``OUT/.names/<stem>.lock``,
:func:`spectralstyle.runs.naming.reserve_stem`),
so batches (and ``transfer`` runs) of other settings started together on one OUT never write over each
other; the name is checked again just before the write and recorded in the job's state.

A job another live process owns is "running elsewhere". The runner does not exit while any of its jobs
is: after its own jobs it waits (one note, then a poll every few seconds, bounded by the lock timeout),
and as soon as such a job's owner is gone (killed, preempted: its lock goes stale, see claims.py) it takes
the job over and runs it, or finds it finished by its owner. ``wait=False`` (``--no-wait``) returns at
once with those jobs left as ``elsewhere``.

Library use: ``run_batch(plan, out, ...)`` runs a plan from ``batch.plan`` without the command line and
returns a :class:`BatchOutcome` (this process's results, every rank's when gathered, the manifest).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from spectralstyle.batch.jobs import (
    ELSEWHERE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    SKIPPED,
    Job,
    JobResult,
    one_line,
)
from spectralstyle.batch.manifest import (
    STATE_DIR,
    base_state,
    job_action,
    now,
    read_state,
    recorded_stem,
    state_path,
    write_manifest,
)
from spectralstyle.batch.plan import plan_digest
from spectralstyle.batch.shards import DistEnv, Shard, gather_results, rank_device, resolve_shard, shard_jobs
from spectralstyle.device import free_device_memory, is_out_of_memory
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stop_at_step_boundary, stop_requested
from spectralstyle.media.claims import holder, stale_after_s, try_claim
from spectralstyle.media.files import write_json
from spectralstyle.runs.checkpoints import NoteCallback, RunControl, interruption_message
from spectralstyle.runs.models import Models
from spectralstyle.runs.naming import ReservedName, reserve_stem
from spectralstyle.runs.train import run_train_job
from spectralstyle.runs.transfer import run_job
from spectralstyle.settings import TransferConfig

log = logging.getLogger("spectralstyle")


def poll_interval_s() -> float:
    """How often a waiting process looks at the jobs running elsewhere: an eighth of the lock timeout, 0.2-10 s."""
    return min(10.0, max(0.2, stale_after_s() / 8))


@dataclass
class BatchHooks:
    """Display callbacks of the CLI; all optional."""

    on_job_start: Callable[[Job, int, int], None] | None = None
    on_step: Callable[[Job, int, dict[str, float]], None] | None = None
    on_job_end: Callable[[Job, JobResult], None] | None = None
    on_models_loading: Callable[[torch.device], None] | None = None
    on_note: NoteCallback | None = None  # resuming a job from its checkpoint, ignoring one, waiting, a moved name


@dataclass
class BatchRunner:
    """Runs this shard's jobs on one device: models are loaded once (lazily), failures stay per job."""

    out: Path
    shard: Shard
    device: torch.device
    save_model: bool = False
    hooks: BatchHooks = field(default_factory=BatchHooks)
    overwrite: bool = False
    models: Models | None = None
    control: RunControl = field(default_factory=RunControl)  # checkpoints of each job (not in the config hash)
    wait: bool = True  # wait for jobs running elsewhere (and take over the ones whose owner dies)
    finished_here: int = 0
    _names: set[str] = field(default_factory=set, init=False, repr=False)  # every name of this process's jobs

    def _models(self, config: TransferConfig) -> Models:
        if self.models is None:
            if self.hooks.on_models_loading:
                self.hooks.on_models_loading(self.device)
            self.models = Models.load(config.replace(device=str(self.device)))
        return self.models

    def _note(self, message: str) -> None:
        log.info(message)
        if self.hooks.on_note:
            self.hooks.on_note(message)

    def _end(self, job: Job, result: JobResult) -> JobResult:
        if self.hooks.on_job_end:
            self.hooks.on_job_end(job, result)
        return result

    def run(self, jobs: list[Job]) -> list[JobResult]:
        """Run (or skip) each job in order, then wait for the ones running elsewhere (unless ``wait`` is off).

        Stops at Ctrl-C/SIGTERM after recording the current job.
        """
        self._names = {j.stem for j in jobs} | {j.base for j in jobs if j.base}
        results: dict[int, JobResult] = {}
        with stop_at_step_boundary():  # SIGTERM (Slurm, torchrun) like Ctrl-C: stop after the job's current step
            for position, job in enumerate(jobs, 1):
                results[position] = result = self._attempt(job, position, len(jobs))
                if result.status == INTERRUPTED:
                    return [results[k] for k in sorted(results)]
            waiting = [k for k, r in results.items() if r.status == ELSEWHERE]
            if waiting and self.wait:
                self._wait_for(jobs, waiting, results)
        return [results[k] for k in sorted(results)]

    def _wait_for(self, jobs: list[Job], waiting: list[int], results: dict[int, JobResult]) -> None:
        """Poll the jobs running elsewhere until each is finished by its owner or taken over and run here."""
        noted = False
        while True:
            still = []
            for k in waiting:
                job = jobs[k - 1]
                if holder(self.out / STATE_DIR, job.job_id) is not None:
                    still.append(k)  # its owner is alive: look again later
                    continue
                results[k] = result = self._attempt(job, k, len(jobs), quiet=True)
                if result.status == ELSEWHERE:
                    still.append(k)  # claimed again by another process in between
                elif result.status == SKIPPED:
                    self._end(job, result)  # finished by its owner: say so once
                elif result.status == INTERRUPTED:
                    return
            waiting = still
            if not waiting:
                return
            if not noted:
                owners = sorted({results[k].error for k in waiting})
                self._note(f"waiting for {len(waiting)} job(s) of this plan running in another process "
                           f"({'; '.join(owners)}); checking every {poll_interval_s():g}s, and taking over any "
                           "whose process stops (--no-wait exits instead)")
                noted = True
            deadline = time.monotonic() + poll_interval_s()
            while time.monotonic() < deadline:
                if stop_requested() is not None:
                    job = jobs[waiting[0] - 1]
                    results[waiting[0]] = JobResult(job.job_id, job.describe(), INTERRUPTED,
                                                    "interrupted while waiting for jobs running in another process; "
                                                    "run the same command to continue")
                    return
                time.sleep(min(0.1, poll_interval_s()))

    def _attempt(self, job: Job, position: int, total: int, quiet: bool = False) -> JobResult:
        """Skip, run, or leave to its live owner one job."""
        state = read_state(self.out, job.job_id)
        if job_action(job, self.out, state)[0] == "skip":
            job.stem = recorded_stem(job, state)
            return JobResult(job.job_id, job.describe(), SKIPPED, image=str(job.image_path(self.out)))
        claim = try_claim(self.out / STATE_DIR, job.job_id)
        if claim is None:  # a live process owns it (see claims.py): not ours, not a failure
            owner = holder(self.out / STATE_DIR, job.job_id) or {}
            result = JobResult(job.job_id, job.describe(), ELSEWHERE,
                               f"running on {owner.get('host', '?')}, pid {owner.get('pid', '?')}")
            return result if quiet else self._end(job, result)
        with claim:
            state = read_state(self.out, job.job_id)  # again: another process may have finished it meanwhile
            action, why = job_action(job, self.out, state)
            if action == "skip":
                job.stem = recorded_stem(job, state)
                return JobResult(job.job_id, job.describe(), SKIPPED, image=str(job.image_path(self.out)))
            if stop_requested() is not None:  # the signal came while the previous job wrote its result
                why = "interrupted before this job started; run the same command to continue"
                return self._end(job, JobResult(job.job_id, job.describe(), INTERRUPTED, why))
            with self._reserve(job) as name:
                if self.hooks.on_job_start:
                    self.hooks.on_job_start(job, position, total)
                result = self._run_one(job, state, why, name)
        self.finished_here += result.status == FINISHED
        return self._end(job, result)

    def _reserve(self, job: Job) -> ReservedName:
        """This job's result name, held until it is written (see runs/naming.py); a note when it moves."""
        others = self._names - {job.stem, job.base}
        planned = job.stem
        if job.train:  # train's names never moved beside other results: only a live writer moves one
            name = reserve_stem(self.out, planned, job.content, job.text, job.config_hash, overwrite=True,
                                taken=others)
        else:
            name = reserve_stem(self.out, job.base or planned, job.content, job.text, job.config_hash,
                                overwrite=self.overwrite, taken=others, first=planned)
        name.on_note = self.hooks.on_note
        if name.stem != planned:
            self._note(f"{job.describe()}: {planned} is being written by another run or holds another result; "
                       f"writing {name.stem} instead")
        job.stem = name.stem
        return name

    def _run_one(self, job: Job, previous: dict[str, Any] | None, why: str, name: ReservedName) -> JobResult:
        history = list((previous or {}).get("attempts", []))
        if previous:  # keep the story of earlier attempts (failed, killed, config changed, ...)
            keys = ("status", "error", "started", "ended", "host", "pid", "shard")
            history.append({k: previous.get(k) for k in keys})
        base = {**base_state(job, self.out, str(self.shard), str(self.device)), "attempts": history}
        started, t0 = now(), time.perf_counter()
        write_json({**base, "status": RUNNING, "started": started, "reason": why}, state_path(self.out, job.job_id))
        log.info("start job %s (%s): %s -> %s", job.job_id, why, job.describe(), job.stem)
        status, error, metrics = FAILED, "", {}
        try:
            models = self._models(job.config)
        except KeyboardInterrupt:
            error = "interrupted while loading the models; run the same command to continue"
            wall = self._write_end(base, started, INTERRUPTED, error, {}, t0, job)
            return JobResult(job.job_id, job.describe(), INTERRUPTED, error, wall)
        except Exception as exc:  # no job can run without the models: stop the batch (exit 2 for user errors)
            self._write_end(base, started, FAILED, f"could not load the models: {one_line(exc)}", {}, t0, job)
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
                                 save_model=self.save_model, control=self.control, on_note=self.hooks.on_note,
                                 name=name)
            job.stem = name.stem  # confirmed at the write (it moves if another writer took the name meanwhile)
            base.update(stem=job.stem, image=job.image_path(self.out).name, sidecar=job.sidecar_path(self.out).name)
            record = output.record
            last = record["losses"][-1] if record["losses"] else {}
            metrics = {"final_losses": {k: v for k, v in last.items() if k != "step"},
                       "wall_time_s": record["wall_time_s"], "steps_done": record["steps_done"],
                       "resumed_from_step": record.get("resumed_from_step", 0)}
            status = INTERRUPTED if output.interrupted else FINISHED
            if output.interrupted:
                error = f"{interruption_message(record)} (last state: {output.image})"
        except KeyboardInterrupt:
            status, error = INTERRUPTED, "interrupted before the optimisation started; run the same command to continue"
        except SpectralStyleError as exc:  # a bad image, for example
            error = one_line(exc)
        except Exception as exc:  # one bad job must not stop the batch
            error = one_line(exc)
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
        write_json({**base, "status": status, "error": error or None, "started": started, "ended": now(),
                    "job_wall_time_s": wall, "metrics": metrics}, state_path(self.out, job.job_id))
        return wall


# --- the library entry point ------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    """What ``run_batch`` did: this process's results, every rank's (None when not gathered), the manifest."""

    results: list[JobResult]
    merged: list[JobResult] | None
    manifest: Path

    def count(self, status: str, merged: bool = True) -> int:
        return sum(r.status == status for r in (self.merged if merged and self.merged is not None else self.results))

    @property
    def interrupted(self) -> list[JobResult]:
        return [r for r in self.results if r.status == INTERRUPTED]

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in (self.merged if self.merged is not None else self.results) if r.status == FAILED]

    @property
    def left_to_others(self) -> list[JobResult]:
        """Jobs still running in another process when this one returned (only with ``wait=False``)."""
        return [r for r in self.results if r.status == ELSEWHERE]


def run_batch(plan: list[Job], out: str | Path, *, device: str | torch.device = "auto", shard: Shard | None = None,
              dist: DistEnv | None = None, config: TransferConfig | None = None, save_model: bool = False,
              overwrite: bool = False, control: RunControl | None = None, hooks: BatchHooks | None = None,
              wait: bool = True, models: Models | None = None) -> BatchOutcome:
    """Run this process's share of ``plan`` (``batch.plan.build_plan``) into ``out`` and write the manifest.

    ``shard`` defaults to the Slurm array/torchrun split of the environment, ``device`` to the rank's
    device. Jobs of this shard that another process runs are waited for unless ``wait`` is False (see the
    module doc). ``config`` is the batch's settings as recorded in the manifest (default: the first job's).
    """
    out = Path(out)
    dist = dist or DistEnv.from_env()
    shard = shard or resolve_shard(None, dist)
    dev = rank_device(device, dist) if isinstance(device, str) else device
    runner = BatchRunner(out, shard, dev, save_model=save_model, hooks=hooks or BatchHooks(), overwrite=overwrite,
                         models=models, control=control or RunControl(), wait=wait)
    results = runner.run(shard_jobs(plan, shard))
    config = config or (plan[0].config if plan else TransferConfig())
    if any(r.status == INTERRUPTED for r in results):
        return BatchOutcome(results, None, write_manifest(out, plan, config))
    merged = gather_results(results, dist, plan_digest(plan))
    return BatchOutcome(results, merged, write_manifest(out, plan, config))
