"""Checkpoints that let an interrupted run continue where it stopped, with the same result bit for bit.

A checkpoint, ``OUT/.checkpoints/<run key>.pt``, holds everything that decides the steps still to come:
the trainable parameters, the Adam, schedule and GradScaler states, every random generator (torch's
global CPU and CUDA generators and the crop samplers' own), the step and the loss history. Restoring
all of it makes the resumed steps the very same computations as in an uninterrupted run, so the
result is identical on the same device (on CPU bit for bit; tested). Only the wall time differs.

It is written every ``checkpoint_every`` steps and when a run is interrupted between two steps,
atomically (a temporary file renamed into place), and removed once the result is written. Its keys
are tensors, numbers, strings and lists, so ``torch.load(weights_only=True)`` reads it: loading a
checkpoint never runs code. The loss history is stored as JSON text.

A checkpoint is used only when it belongs to the same run: the same settings (config hash) and the
same inputs (content pixels and text, or prompt). Its file name is that run key (``run_key``), not the
result's name, so runs of other settings that share a name (started together, or one after the other)
never read or replace each other's checkpoint, and a run that moved to another name still finds its own.
A file whose content does not match its key is ignored with a note, never half used. The run-control
options here (how often to checkpoint, whether to resume) do not change the
result, so they are not settings and stay out of the config hash.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import raise_if_stop_requested
from spectralstyle.media.files import atomic_path
from spectralstyle.settings import RunControl

log = logging.getLogger("spectralstyle")

CHECKPOINT_DIR = ".checkpoints"
CHECKPOINT_FORMAT = "spectralstyle-checkpoint-1"

NoteCallback = Callable[[str], None]


class HasRandomState(Protocol):
    """A crop sampler: its random generators' states as tensors, and back."""

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def trainable_parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters an optimisation changes (a frozen decoder inside a generator is not saved).

    Not copied on the CPU: ``torch.save`` writes them before the next step changes them.
    """
    return {name: p.detach().cpu() for name, p in module.named_parameters() if p.requires_grad}


def global_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@dataclass
class TrainingState:
    """The objects whose state decides every later step of one optimisation."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any | None = None
    scaler: Any | None = None
    samplers: dict[str, HasRandomState] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {
            "parameters": trainable_parameters(self.module),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "samplers": {name: sampler.state_dict() for name, sampler in self.samplers.items()},
            "global_rng": global_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        params = dict(self.module.named_parameters())
        saved = state["parameters"]
        trainable = {name for name, p in params.items() if p.requires_grad}
        if set(saved) != trainable:
            raise ValueError("the checkpoint's parameters do not match the model")
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        for name, sampler in self.samplers.items():
            sampler.load_state_dict(state["samplers"][name])
        set_global_rng_state(state["global_rng"])


def run_key(config_hash: str, *inputs: str | bytes | torch.Tensor) -> str:
    """Hash of a run's settings and inputs: a checkpoint continues only the run it was taken from.

    The config hash alone is not enough: two content images with the same stem (``a/x.png``,
    ``b/x.png``) or an edited image would share it.
    """
    digest = hashlib.sha256(config_hash.encode())
    for item in inputs:
        if isinstance(item, torch.Tensor):
            digest.update(item.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        else:
            digest.update(item if isinstance(item, bytes) else item.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass
class Resumed:
    """What a run continues from: steps already done, their loss records, and the time they took."""

    step: int
    history: list[dict[str, float]]
    seconds: float


class Checkpointer:
    """Saves and finds the checkpoint of one run (``OUT/.checkpoints/<run key>.pt``; ``stem`` names it in notes).

    The optimisation loop calls ``resume`` once before its first step, ``after_step`` after every
    step and ``on_interrupt`` when it stops early; ``run_job`` calls ``remove`` once the result is
    written. ``on_note`` receives the lines a user should see (resuming, ignoring a checkpoint).
    """

    def __init__(self, out: str | Path, stem: str, config_hash: str, key: str, control: RunControl | None = None,
                 on_note: NoteCallback | None = None) -> None:
        self.path = Path(out) / CHECKPOINT_DIR / f"{key}.pt"  # keyed by settings and inputs, not by the name
        if self.path.is_dir():  # found now, before the work, not at the first save (or after the result)
            raise SpectralStyleError(f"{self.path} is a folder where this run's checkpoint should be; move it away")
        self.stem, self.config_hash, self.key = stem, config_hash, key
        self.control = control or RunControl()
        self.on_note = on_note
        self.resumed_from = 0
        self.saved_step: int | None = None  # the step of the checkpoint on disk, if this run has one
        self.write_seconds: list[float] = []  # how long each write took (the cost measured in the README)

    @property
    def enabled(self) -> bool:
        return self.control.checkpoint_every > 0

    def note(self, message: str) -> None:
        log.info(message)
        if self.on_note:
            self.on_note(message)

    def resume(self, state: TrainingState) -> Resumed | None:
        """Load this run's checkpoint into ``state`` if there is a matching one; else start at step 0."""
        if not self.path.is_file():
            return None
        if not self.control.resume:
            self.note(f"not resuming {self.stem} (--no-resume): starting over, removing {self.path}")
            self.remove()
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("not a spectralstyle checkpoint")
        except Exception as exc:  # damaged (a full disk, a copy cut short) or foreign: never half used
            self.note(f"ignoring checkpoint {self.path}: unreadable ({type(exc).__name__}); starting from step 0")
            return None
        if saved.get("config_hash") != self.config_hash:
            self.note(f"ignoring checkpoint {self.path}: written with other settings "
                      f"(config {saved.get('config_hash')}, "
                      f"now {self.config_hash}); starting from step 0")
            return None
        if saved.get("run_key") != self.key:
            self.note(f"ignoring checkpoint {self.path}: written for another content image or text; "
                      "starting from step 0")
            return None
        snapshot = copy.deepcopy(state.state_dict())  # to put back if the checkpoint does not fit the model
        try:
            state.load_state_dict(saved["state"])
            history = json.loads(saved["history_json"])
            step = int(saved["step"])
            if len(history) != step:
                raise ValueError("the loss history does not match the step")
        except Exception as exc:
            state.load_state_dict(snapshot)
            self.note(f"ignoring checkpoint {self.path}: it does not fit this run ({type(exc).__name__}); "
                      "starting from step 0")
            return None
        self.resumed_from = self.saved_step = step
        self.note(f"resuming {self.stem} from step {step}")
        return Resumed(step, history, float(saved.get("seconds", 0.0)))

    def after_step(self, step: int, last_step: int, state: TrainingState, history: list[dict[str, float]],
                   seconds: float) -> None:
        """Write a checkpoint every ``checkpoint_every`` steps (not after the last: the result follows)."""
        if self.enabled and step % self.control.checkpoint_every == 0 and step < last_step:
            self.save(step, state, history, seconds)

    def on_interrupt(self, step: int, state: TrainingState, history: list[dict[str, float]], seconds: float) -> None:
        """Save the state of a run stopped between two steps (unless it is already saved, or off)."""
        if self.enabled and step > 0 and step != self.saved_step:
            self.save(step, state, history, seconds)

    def save(self, step: int, state: TrainingState, history: list[dict[str, float]], seconds: float) -> Path:
        start = time.perf_counter()
        payload = {
            "format": CHECKPOINT_FORMAT, "config_hash": self.config_hash, "run_key": self.key, "step": step,
            "seconds": float(seconds), "history_json": json.dumps(history), "state": state.state_dict(),
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        self.saved_step = step
        self.write_seconds.append(time.perf_counter() - start)
        return self.path

    def remove(self) -> None:
        """Delete the checkpoint (the result is written), and its folder once empty."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.saved_step = None
        with contextlib.suppress(OSError):  # not empty: other runs' checkpoints
            self.path.parent.rmdir()


def resume_into(checkpoints: Checkpointer | None, state: TrainingState,
                history: list[dict[str, float]]) -> tuple[int, float]:
    """Restore ``state`` (and the loss ``history``, in place) from a matching checkpoint.

    Returns the first step to run and the seconds already spent (1 and 0.0 for a fresh start).
    """
    resumed = checkpoints.resume(state) if checkpoints is not None else None
    if resumed is None:
        return 1, 0.0
    history[:] = resumed.history
    return resumed.step + 1, resumed.seconds


def consistent_step(history: list[dict[str, float]], stepped: int) -> int | None:
    """The step a stopped run's state belongs to: the steps recorded if every one of them was also
    applied to the model, optimiser and schedule; None when it stopped mid-step (no checkpoint then)."""
    return len(history) if len(history) == stepped else None


def end_step(checkpoints: Checkpointer | None, step: int, steps: int, state: TrainingState,
             history: list[dict[str, float]], started: float) -> None:
    """After a finished step of an optimisation loop: a checkpoint when one is due, then stop here
    (``StopRequested``) if Ctrl-C or SIGTERM asked for it."""
    if checkpoints is not None:
        checkpoints.after_step(step, steps, state, history, time.perf_counter() - started)
    if step < steps:
        raise_if_stop_requested()


def save_on_stop(checkpoints: Checkpointer | None, state: TrainingState, history: list[dict[str, float]],
                 stepped: int, started: float) -> None:
    """After Ctrl-C or SIGTERM: a checkpoint of the last consistent step (none when it stopped mid-step)."""
    done = consistent_step(history, stepped)
    if checkpoints is not None and done is not None:
        checkpoints.on_interrupt(done, state, history, time.perf_counter() - started)


def interruption_message(record: dict[str, Any]) -> str:
    """The one line that ends an interrupted run: where it stopped and what the same command will do."""
    step, saved = record.get("steps_done", 0), record.get("checkpoint_step")
    if saved is not None and saved == step:
        then = "run the same command to resume"
    elif saved is not None:
        then = f"run the same command to resume from step {saved}"
    elif record.get("run_control", {}).get("checkpoint_every") == 0:
        then = "checkpoints are off (--checkpoint-every 0), so the same command starts over"
    else:
        then = "run the same command to start again"
    return f"interrupted at step {step}; {then}"
