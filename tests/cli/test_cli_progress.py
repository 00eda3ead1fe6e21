"""What a run tells while it works: the estimate after the first step, the quick-preset hint on a slow CPU,
the overall progress of a batch, and the bf16 note (cli/common.RunEstimate, cli/batch.JobsProgress)."""

from __future__ import annotations

import io

import torch
from rich.console import Console

from spectralstyle import device as device_module
from spectralstyle.batch.jobs import FINISHED, INTERRUPTED, SKIPPED, JobResult
from spectralstyle.cli.batch import JobsProgress
from spectralstyle.cli.common import QUICK_HINT_SECONDS, RunEstimate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def told(total_steps: int, first_step_s: float, device: str, later_step_s: float | None = None,
         first_number: int = 1) -> str:
    """What a run of ``total_steps`` says when its first step (numbered ``first_number``: above 1 when resumed)
    takes ``first_step_s`` and each later one ``later_step_s`` (default: the same)."""
    text = io.StringIO()
    estimate = RunEstimate(total_steps, device, Console(file=text, width=200))
    estimate.clock = clock = Clock()
    estimate.started = 0.0
    clock.now = first_step_s
    estimate.step(first_number)
    for number in range(first_number + 1, first_number + 3):
        clock.now += later_step_s or first_step_s
        estimate.step(number)  # told once only, after the second step
    return text.getvalue()


def test_the_estimate_after_the_first_step_and_the_quick_hint():
    slow = told(200, 4.0, "cpu")  # 200 steps of 4 s: 13 min on a CPU
    assert slow.count("the whole run will take about 13 min") == 1
    assert "--config quick" in slow and 200 * 4.0 > QUICK_HINT_SECONDS
    assert "--config quick" not in told(200, 2.0, "cpu")  # under 10 minutes
    assert "--config quick" not in told(200, 4.0, "cuda")  # a GPU: no hint


def test_the_estimate_leaves_out_the_warm_up_and_the_steps_a_resumed_run_did_before():
    warm = told(100, 30.0, "cpu", later_step_s=1.0)  # 30 s of warm-up, then 1 s a step: 30 + 99 s
    assert "first step took 30 s, then 1 s a step; the whole run will take about 2 min" in warm, warm
    resumed = told(40, 3.0, "cpu", first_number=31)  # resumed at step 30 of 40: 10 steps of 3 s
    assert "the whole run will take about 30 s" in resumed, resumed
    assert "one step took 5 s; the whole run will take about 5 s" in told(1, 5.0, "cpu")


def test_batch_overall_progress_counts_the_jobs_that_ran():
    progress = JobsProgress(3)
    progress.clock = clock = Clock()
    progress.started = 0.0
    clock.now = 60.0
    assert progress.end(JobResult("a", "a", FINISHED)) == "jobs 1/3, about 2 min left"
    assert progress.end(JobResult("b", "b", INTERRUPTED)) == ""  # its line ends the command; not counted
    clock.now = 120.0  # a job of this plan finished by the process that owned it, while this one waited
    assert progress.end(JobResult("c", "c", SKIPPED)) == "jobs 2/3, about 60 s left"
    clock.now = 180.0
    assert progress.end(JobResult("d", "d", FINISHED)) == "jobs 3/3"


def test_bf16_on_a_cpu_without_native_bf16_gets_one_note(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    notes = device_module.precision_notes(cpu, "bf16")
    assert len(notes) == 1 and "no native bf16" in notes[0]
    assert device_module.precision_notes(cpu, "fp32") == []
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert device_module.precision_notes(cpu, "bf16") == []
