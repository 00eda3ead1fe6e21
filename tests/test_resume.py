"""Resumable runs (issue 15, items 1 and 2): checkpoints, and Ctrl-C or SIGTERM ending a run between two steps.

Every run here uses one tiny setting (64x64, one crop of 32, 4 steps, a checkpoint every 2 steps) so
that one uninterrupted run, made once in this process, is the reference that every resumed run
must equal bit for bit: its per-step losses and its decoded pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from spectralstyle.batch.jobs import FINISHED, INTERRUPTED
from spectralstyle.batch.manifest import read_manifest
from spectralstyle.cli.app import app
from spectralstyle.interrupts import (
    StopRequested,
    raise_if_stop_requested,
    stop_at_step_boundary,
    stop_requested,
)
from spectralstyle.runs.checkpoints import (
    Checkpointer,
    RunControl,
    TrainingState,
    interruption_message,
)
from spectralstyle.runs.generate import GenerateModels, run_generation
from spectralstyle.runs.models import Models
from spectralstyle.runs.transfer import run_job
from spectralstyle.settings import GenerateConfig, TransferConfig

STEPS = 4
CONFIG = TransferConfig(weights="random", device="cpu", steps=STEPS, width=64, height=64, keep_aspect=False, crops=1,
                        crop_size=32)
FLAGS = ["--weights", "random", "--device", "cpu", "--steps", str(STEPS), "--size", "64x64", "--crops", "1",
         "--crop-size", "32", "--checkpoint-every", "2"]
TEXT = "pop art"
STEM = "photo_pop-art_c2"
runner = CliRunner()


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def checkpoint_path(out: Path) -> Path:
    """The one checkpoint in ``out`` (named by its run key, not by the result's name)."""
    found = sorted(p for p in (out / ".checkpoints").glob("*.pt") if not p.name.startswith("."))
    assert len(found) <= 1, found
    return found[0] if found else out / ".checkpoints" / "none.pt"


def stop_at(step_to_stop: int):
    """An on_step callback that presses Ctrl-C (raises KeyboardInterrupt) once ``step_to_stop`` is done."""

    def on_step(step: int, losses: dict[str, float]) -> None:
        if step == step_to_stop:
            raise KeyboardInterrupt

    return on_step


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    """A photo-like image, named so that its results are ``photo_pop-art_c2``."""
    x = torch.linspace(0, 1, 72)
    img = torch.stack([x.expand(64, 72), x.flip(0).expand(64, 72), torch.full((64, 72), 0.4)])
    img[:, 20:44, 24:50] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    folder = tmp_path_factory.mktemp("content")
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(folder / "photo.png")
    return folder / "photo.png"


@pytest.fixture(scope="module")
def models() -> Models:
    """The models every console-script run builds for these settings (random weights are repeatable)."""
    return Models.load(CONFIG)


@pytest.fixture(scope="module")
def reference(models, content, tmp_path_factory):
    """The uninterrupted run, and the step of the checkpoint on disk as each step ended."""
    out = tmp_path_factory.mktemp("reference")
    on_disk: dict[int, int | None] = {}

    def on_step(step: int, losses: dict[str, float]) -> None:
        path = checkpoint_path(out)
        on_disk[step] = torch.load(path, weights_only=True)["step"] if path.exists() else None

    result = run_job(content, TEXT, CONFIG, models, out, on_step=on_step, control=RunControl(checkpoint_every=2))
    return result, on_disk


@pytest.fixture(scope="module")
def interrupted(models, content, tmp_path_factory) -> Path:
    """An output folder holding the checkpoint of a run stopped (Ctrl-C) after step 1."""
    out = tmp_path_factory.mktemp("interrupted")
    result = run_job(content, TEXT, CONFIG, models, out, on_step=stop_at(1), control=RunControl(checkpoint_every=2))
    assert result.interrupted and result.record["checkpoint_step"] == 1
    return out


@pytest.fixture()
def cli_models(monkeypatch, models):
    """In-process CLI runs reuse the models this module already built (what Models.load would build again)."""
    monkeypatch.setattr(Models, "load", classmethod(lambda cls, config, **kwargs: models))
    return models


# --- library level ----------------------------------------------------------------------------------
def test_checkpoint_every_n_steps_removed_after_the_result(reference):
    result, on_disk = reference
    assert on_disk == {1: None, 2: None, 3: 2, 4: 2}  # none after the last step: the result follows
    assert not (result.image.parent / ".checkpoints").exists()
    record = result.record
    assert record["resumed_from_step"] == 0 and record["run_control"] == {"checkpoint_every": 2, "resume": True}
    assert "checkpoint_every" not in record["config"] and record["config_hash"] == CONFIG.digest()


def test_resume_after_ctrl_c_repeats_the_uninterrupted_run_bit_for_bit(models, content, reference, interrupted,
                                                                       tmp_path):
    out = tmp_path / "o"
    shutil.copytree(interrupted, out)
    saved = torch.load(checkpoint_path(out), weights_only=True)  # loads without running code
    assert saved["step"] == 1 and saved["config_hash"] == CONFIG.digest()
    assert len(json.loads(saved["history_json"])) == 1

    notes: list[str] = []
    result = run_job(content, TEXT, CONFIG, models, out, control=RunControl(checkpoint_every=2), on_note=notes.append)
    assert notes == [f"resuming {STEM} from step 1"]
    assert result.record["resumed_from_step"] == 1 and result.record["steps_done"] == STEPS
    assert result.record["losses"] == reference[0].record["losses"]  # steps 2..4 computed here, 1 restored
    assert np.array_equal(pixels(result.image), pixels(reference[0].image))
    assert not checkpoint_path(out).exists()


def test_checkpoint_of_other_settings_is_neither_used_nor_replaced(models, content, interrupted, tmp_path):
    """Checkpoints are named by settings and inputs: a run of other settings under the same name never sees
    the interrupted run's checkpoint, which stays for that run to resume."""
    out = tmp_path / "o"
    shutil.copytree(interrupted, out)
    kept = checkpoint_path(out)
    before = kept.read_bytes()
    notes: list[str] = []
    other = CONFIG.replace(lr=1e-3, steps=1)
    result = run_job(content, TEXT, other, models, out, on_note=notes.append, stem=STEM)
    assert notes == [] and result.record["resumed_from_step"] == 0
    assert [r["step"] for r in result.record["losses"]] == [1]
    assert kept.read_bytes() == before


def test_checkpoint_of_other_settings_or_inputs_is_ignored_with_a_note(interrupted, tmp_path):
    """A checkpoint file under another run's key (copied or renamed by hand): never resumed, checked before
    any state is loaded."""
    net = nn.Linear(2, 2)
    state = TrainingState(net, torch.optim.Adam(net.parameters()))
    (tmp_path / ".checkpoints").mkdir()
    shutil.copy(checkpoint_path(interrupted), tmp_path / ".checkpoints" / "another-input.pt")
    notes: list[str] = []
    checkpoints = Checkpointer(tmp_path, STEM, CONFIG.digest(), key="another-input", on_note=notes.append)
    assert checkpoints.resume(state) is None and "another content image or text" in notes[0]
    notes.clear()
    checkpoints = Checkpointer(tmp_path, STEM, "0" * 16, key="another-input", on_note=notes.append)
    assert checkpoints.resume(state) is None and "other settings" in notes[0]


def test_checkpoint_every_0_writes_none(models, content, tmp_path):
    result = run_job(content, TEXT, CONFIG, models, tmp_path, on_step=stop_at(1),
                     control=RunControl(checkpoint_every=0))
    assert result.interrupted and result.record["checkpoint_step"] is None
    assert not (tmp_path / ".checkpoints").exists()
    assert "checkpoints are off" in interruption_message(result.record)


def test_generate_resumes_bit_for_bit(narrow_clip, tmp_path):
    """Fourier generator with cutout noise: its two cutout generators are restored too."""
    models = GenerateModels(narrow_clip, torch.device("cpu"))
    config = GenerateConfig(weights="random", device="cpu", steps=4, width=32, height=32, cutouts=2)
    control = RunControl(checkpoint_every=2)
    full = run_generation(TEXT, config, models, tmp_path / "full", control=control)
    stopped = run_generation(TEXT, config, models, tmp_path / "cut", control=control, on_step=stop_at(3))
    assert stopped.interrupted and stopped.record["checkpoint_step"] == 3
    resumed = run_generation(TEXT, config, models, tmp_path / "cut", control=control)
    assert resumed.record["resumed_from_step"] == 3 and resumed.record["losses"] == full.record["losses"]
    assert np.array_equal(pixels(resumed.image), pixels(full.image))
    assert not (tmp_path / "cut" / ".checkpoints").exists()


def test_first_signal_asks_to_stop_second_stops_at_once():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_at_step_boundary():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs; it only records the request
        assert stop_requested() == signal.SIGTERM
        with pytest.raises(StopRequested):
            raise_if_stop_requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert stop_requested() is None


# --- the console script and the CLI ----------------------------------------------------------------
def test_sigterm_to_transfer_then_the_same_command_resumes_bit_for_bit(content, reference, cli_models, tmp_path):
    """Acceptance: SIGTERM to the console script mid-run exits 130 with one line and keeps the checkpoint;
    the same command again resumes and writes the image of the uninterrupted run."""
    out = tmp_path / "o"
    args = ["transfer", str(content), TEXT, *FLAGS, "--out", str(out)]
    exe = Path(sys.executable).with_name("spectralstyle")
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SPECTRALSTYLE_OFFLINE": "1"})
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not checkpoint_path(out).exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "error:" not in err
    lines = [line for line in err.splitlines() if "interrupted" in line]
    step = torch.load(checkpoint_path(out), weights_only=True)["step"]
    assert 2 <= step < STEPS
    assert len(lines) == 1 and f"interrupted at step {step}; run the same command to resume" in lines[0], err
    assert (out / "snapshots" / f"{STEM}_step{step:04d}.png").is_file() and not (out / f"{STEM}.png").exists()
    assert f"interrupted at step {step}" in (out / "spectralstyle.log").read_text()

    again = runner.invoke(app, args)  # the same command, in this process
    assert again.exit_code == 0, again.output
    assert f"resuming {STEM} from step {step}" in again.output
    record = json.loads((out / f"{STEM}.json").read_text())
    assert record["resumed_from_step"] == step and record["losses"] == reference[0].record["losses"]
    assert np.array_equal(pixels(out / f"{STEM}.png"), pixels(reference[0].image))
    assert not checkpoint_path(out).exists()


def test_sigterm_to_batch_then_the_job_resumes_bit_for_bit(content, reference, cli_models, tmp_path):
    """A real SIGTERM to a running batch (this process, from another thread): the job keeps its checkpoint,
    the command exits 130 with one line, and the next run continues the job to the uninterrupted result."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(content, folder / content.name)
    out = tmp_path / "o"
    args = ["batch", str(folder), "--out", str(out), "--text", TEXT, *FLAGS]

    ended = threading.Event()

    def send_sigterm_at_first_checkpoint() -> None:
        while not ended.is_set() and not checkpoint_path(out).exists():
            time.sleep(0.02)
        if not ended.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # a late signal must not end pytest
    try:
        sender = threading.Thread(target=send_sigterm_at_first_checkpoint)
        sender.start()
        try:
            first = runner.invoke(app, args)
        finally:
            ended.set()
            sender.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert first.exit_code == 130, first.output
    assert first.output.count("interrupted at step") == 1 and "run the same command to resume" in first.output
    assert "interrupted: interrupted" not in first.output
    [state] = read_manifest(out).values()
    assert state["status"] == INTERRUPTED
    step = torch.load(checkpoint_path(out), weights_only=True)["step"]

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert f"resuming {STEM} from step {step}" in second.output
    [state] = read_manifest(out).values()
    assert state["status"] == FINISHED and state["metrics"]["resumed_from_step"] == step
    assert np.array_equal(pixels(out / f"{STEM}.png"), pixels(reference[0].image))
    assert not checkpoint_path(out).exists()


def test_no_resume_starts_over(content, interrupted, cli_models, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(interrupted, out)
    res = runner.invoke(app, ["transfer", str(content), TEXT, *FLAGS, "--no-resume", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"not resuming {STEM} (--no-resume): starting over" in res.output and "from step" not in res.output
    record = json.loads((out / f"{STEM}.json").read_text())
    assert record["resumed_from_step"] == 0 and record["steps_done"] == STEPS
    assert record["run_control"]["resume"] is False
    assert not checkpoint_path(out).exists()


def test_negative_checkpoint_every_is_one_line(content, tmp_path):
    res = runner.invoke(app, ["transfer", str(content), TEXT, *FLAGS[:-1], "-1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--checkpoint-every must be" in res.output and "Traceback" not in res.output
