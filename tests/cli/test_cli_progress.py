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


def told(total_steps: int, first_step_s: float, device: str) -> str:
    text = io.StringIO()
    estimate = RunEstimate(total_steps, device, Console(file=text, width=200))
    estimate.clock = clock = Clock()
    estimate.started = 0.0
    clock.now = first_step_s
    estimate.step()
    clock.now = 2 * first_step_s
    estimate.step()  # told once only
    return text.getvalue()


def test_the_estimate_after_the_first_step_and_the_quick_hint():
    slow = told(200, 4.0, "cpu")  # 200 steps of 4 s: 13 min on a CPU
    assert slow.count("the whole run will take about 13 min") == 1
    assert "--config quick" in slow and 200 * 4.0 > QUICK_HINT_SECONDS
    assert "--config quick" not in told(200, 2.0, "cpu")  # under 10 minutes
    assert "--config quick" not in told(200, 4.0, "cuda")  # a GPU: no hint


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
