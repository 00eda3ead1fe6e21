"""What every optimisation loop shares, whatever it trains: the end of each step (divergence check,
history, progress, snapshots), precision, and writing its results (snapshots, the result and its sidecar,
comparisons, saved models) atomically. ``transfer``, ``generate``, ``train`` and ``video`` use it."""

from __future__ import annotations

import contextlib
import json
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from spectralstyle import __version__
from spectralstyle.bands import band_label
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import atomic_path, write_json
from spectralstyle.media.images import finish_image, open_rgb, save_png, side_by_side
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.record import RunRecord
from spectralstyle.runs.checkpoints import Checkpointer
from spectralstyle.runs.naming import ReservedName

StepCallback = Callable[[int, dict[str, float]], None]
SnapshotCallback = Callable[[int, torch.Tensor], None]


@dataclass
class RunHistory:
    """Per-step loss records, wall time, and whether Ctrl-C ended the run early."""

    history: list[dict[str, float]]
    seconds: float
    interrupted: bool = False

    @property
    def steps_done(self) -> int:
        return len(self.history)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def check_finite(loss: float, step: int, precision: str) -> None:
    """A NaN or infinite loss means the run diverged: stop instead of saving a black image as a result."""
    if not math.isfinite(loss):
        hint = "a lower --lr" + (" or --precision fp32" if precision != "fp32" else "")
        raise SpectralStyleError(f"the loss became {loss} at step {step}: the run diverged (try {hint}); "
                                 "no result was written")


@dataclass
class StepLog:
    """The end of every optimisation step, shared by transfer and generate: stop on a diverged loss,
    keep the record, report it, and hand a snapshot over every ``save_every`` steps (not the last)."""

    steps: int
    save_every: int
    precision: str = "fp32"
    on_step: StepCallback | None = None
    on_snapshot: SnapshotCallback | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def add(self, record: dict[str, float], image: torch.Tensor) -> None:
        step = int(record["step"])
        check_finite(record["total"], step, self.precision)
        self.history.append(record)
        if self.on_step:
            self.on_step(step, record)
        if self.on_snapshot and self.save_every and step % self.save_every == 0 and step < self.steps:
            self.on_snapshot(step, image.detach())


def environment_info(device: torch.device) -> dict[str, Any]:
    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    info = {
        "spectralstyle": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
        "clip-anytorch": version("clip-anytorch"),
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


@dataclass
class JobOutput:
    """What a loop wrote: the result, its sidecar, and the sidecar's object (``RunRecord.to_dict()``)."""

    image: Path
    sidecar: Path
    record: dict[str, Any]
    model: Path | None = None
    interrupted: bool = False


def write_record(record: RunRecord, path: Path) -> Path:
    """The sidecar ``path`` of ``record``, atomically (the format ``RunRecord.to_json`` gives)."""
    return write_json(record.to_dict(), path)


class RunWriter:
    """Writes one run's snapshots and its result: ``<stem>.png`` + ``<stem>.json``, atomically.

    After Ctrl-C only a snapshot (and its sidecar) is written, never the finished names, so nothing
    half-done is presented as a result.
    """

    def __init__(self, out: Path, stem: str, record: RunRecord, contrast: float,
                 name: ReservedName | None = None,
                 controls: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.out, self.stem, self.record, self.contrast = out, stem, record, contrast
        self.name = name  # the reservation of ``stem`` (runs/naming.py), checked again just before the write
        self.controls = controls
        """The step after the contrast and the output size (colours, mask, strength:
        ``method.controls.apply_controls``); it gets the finished image at the size it is written at."""

    def written(self, image: torch.Tensor | Image.Image) -> torch.Tensor | Image.Image:
        """The image as it is written: clamped, contrast (a PIL image is already finished, at the output
        size), then the result controls."""
        if isinstance(image, Image.Image):
            if self.controls is None:
                return image
            finished = TF.to_tensor(image.convert("RGB")).unsqueeze(0)
        else:
            finished = finish_image(image, self.contrast)
        return self.controls(finished) if self.controls is not None else finished

    def snapshot(self, step: int, image: torch.Tensor) -> Path:
        path = self.out / "snapshots" / f"{self.stem}_step{step:04d}.png"
        record = {**self.record.to_dict(), "step": step, "status": "snapshot"}
        return save_png(self.written(image), path, record)

    def finish(self, result: RunHistory, image: torch.Tensor | Image.Image,
               before_write: Callable[[RunRecord], None] | None = None,
               checkpoints: Checkpointer | None = None) -> JobOutput:
        """Write the result (or, if interrupted, a last snapshot); ``before_write`` may add files and keys.

        ``image`` is the raw output tensor (finished here with the contrast) or an already finished PIL image
        (``output_size.result_at_output_size``); a snapshot needs the tensor.

        The checkpoint is removed only after the result is written; an interrupted run's record names
        it and its step (``checkpoint_step``: None when there is none to resume from).
        """
        record = self.record
        record.losses, record.steps_done = result.history, result.steps_done
        record.wall_time_s = round(result.seconds, 3)
        if checkpoints is not None:
            record.extra["resumed_from_step"] = checkpoints.resumed_from
        if result.interrupted:
            record.status = "interrupted"
            if checkpoints is not None:
                record.extra["checkpoint_step"] = checkpoints.saved_step
                record.extra["checkpoint"] = str(checkpoints.path) if checkpoints.saved_step is not None else None
            path = self.snapshot(result.steps_done, image)
            return JobOutput(path, write_record(record, path.with_suffix(".json")), record.to_dict(), interrupted=True)
        record.status = "finished"
        if self.name is not None:
            self.stem = self.name.confirm()
        image_path, sidecar_path = self.out / f"{self.stem}.png", self.out / f"{self.stem}.json"
        record.output = str(image_path)
        if before_write:
            before_write(record)
        save_png(self.written(image), image_path, record.to_dict())
        write_record(record, sidecar_path)
        if checkpoints is not None:
            checkpoints.remove()
        return JobOutput(image_path, sidecar_path, record.to_dict())


def write_comparison(results: list[JobOutput], out: str | Path, prefix: str, **extra: Any) -> JobOutput:
    """``<prefix>_compare_<band>-vs-<band>.png``: runs that differ only in band, labelled, with a sidecar."""
    first = results[0].record
    panels = [(open_rgb(r.image), f"band {r.record['band']}") for r in results]
    stem = f"{prefix}_compare_" + "-vs-".join(band_label(r.record["band"]) for r in results)
    panel_records = [{"band": r.record["band"], "image": str(r.image), "sidecar": str(r.sidecar)} for r in results]
    record = RunRecord(kind="comparison", content=first.get("content"), text=first["text"],
                       extra={**extra, "panels": panel_records})
    out = Path(out)
    image = save_png(side_by_side(panels), out / f"{stem}.png", record.to_dict())
    return JobOutput(image, write_record(record, out / f"{stem}.json"), record.to_dict())


def save_stylenet(net: StyleNet, path: Path, record: RunRecord | dict[str, Any]) -> None:
    """Weights plus the settings that trained them (as JSON, so ``torch.load(weights_only=True)`` reads it)."""
    record = record.to_dict() if isinstance(record, RunRecord) else record
    with atomic_path(path) as tmp:
        torch.save({"format": "spectralstyle-stylenet-1", "ngf": net.ngf, "state_dict": net.state_dict(),
                    "record_json": json.dumps({k: v for k, v in record.items() if k != "losses"}, default=str)}, tmp)


def is_compile_error(exc: BaseException) -> bool:
    """Errors raised by torch.compile's tracing or code generation (not by the model itself)."""
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))
