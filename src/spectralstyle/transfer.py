"""The per-image CLIPstyler optimisation with SpectralCLIP, and writing its results.

``Models`` loads CLIP and VGG once per device; ``optimize`` trains a fresh StyleNet for one
(content, text); ``run_job`` adds the file handling: names, atomic writes, sidecar, snapshots.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .clip_model import SpectralCLIP, load_clip
from .settings import TransferConfig, loss_weights
from .augment import PatchAugmenter
from .device import check_precision, resolve_device
from .errors import SpectralStyleError
from .files import atomic_path, write_json
from .image_io import finish_image, load_image, open_rgb, save_png, side_by_side, slugify
from .interrupts import raise_if_stop_requested
from .losses import CLIPStyleLoss
from .resume import Checkpointer, NoteCallback, RunControl, TrainingState, end_step, resume_into, run_key, save_on_stop
from .bands import band_label
from .stylenet import StyleNet
from .vgg import VGGContent, load_vgg_content
from .weights.sources import resolve_model_files

StepCallback = Callable[[int, dict[str, float]], None]
SnapshotCallback = Callable[[int, torch.Tensor], None]


@dataclass
class Models:
    """Frozen CLIP and VGG on one device, shared by every job run there, with a text-feature cache."""

    clip: Any
    vgg: VGGContent
    device: torch.device
    weights: str
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)
    encoders: dict[tuple[str, bool], SpectralCLIP] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, config: TransferConfig) -> "Models":
        device = resolve_device(config.device)
        check_precision(device, config.precision)
        clip_source = config.clip_weights or config.clip_model
        clip_mode = "pretrained" if config.clip_weights else config.weights
        # both found (or one message listing every missing one) before either is loaded
        clip_file, vgg_file = resolve_model_files(clip_source, clip_mode, config.vgg_weights, config.weights,
                                                  config.clip_model)
        clip_model = load_clip(clip_file or clip_source, device=device, weights=clip_mode)
        vgg = load_vgg_content(config.weights, vgg_file or config.vgg_weights, device=device)
        if device.type == "cpu":  # oneDNN convolutions avoid layout reorders: measured 5-20% faster VGG on CPU
            vgg = vgg.to(memory_format=torch.channels_last)
        return cls(clip_model, vgg, device, config.weights)

    def encoder(self, band: str, compiled: bool = False) -> SpectralCLIP:
        """The SpectralCLIP encoder of a band, built once (and compiled once) per Models."""
        key = (band, compiled)
        if key not in self.encoders:
            encoder = SpectralCLIP(self.clip, band)
            if compiled:  # the ViT trunk; the filter and projection are a few small ops
                encoder.tokens = torch.compile(encoder.tokens)  # type: ignore[method-assign]
            self.encoders[key] = encoder
        return self.encoders[key]

    def loss_for(self, config: TransferConfig) -> CLIPStyleLoss:
        loss = CLIPStyleLoss(
            self.encoder(config.band, config.compile),
            self.vgg,
            loss_weights(config),
            threshold=config.threshold,
            source_text=config.source_text,
            source_encoder=config.source_encoder,
            text_cache=self.text_cache,
        )
        return loss.to(self.device)


@dataclass
class RunHistory:
    """Per-step loss records, wall time, and whether Ctrl-C ended the run early."""

    history: list[dict[str, float]]
    seconds: float
    interrupted: bool = False

    @property
    def steps_done(self) -> int:
        return len(self.history)


@dataclass
class OptimizationResult(RunHistory):
    net: StyleNet | None = None
    output: torch.Tensor | None = None


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


def _is_compile_error(exc: BaseException) -> bool:
    """Errors raised by torch.compile's tracing or code generation (not by the model itself)."""
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def optimize(
    content: torch.Tensor,
    text: str,
    config: TransferConfig,
    models: Models,
    on_step: StepCallback | None = None,
    on_snapshot: SnapshotCallback | None = None,
    checkpoints: Checkpointer | None = None,
) -> OptimizationResult:
    """Train a fresh StyleNet so that ``StyleNet(content)`` moves along the text direction in CLIP space.

    Ctrl-C (or a stop requested by a signal, see ``interrupts``) stops early and returns the current
    state with ``interrupted=True``. With ``checkpoints`` the run continues from a matching checkpoint
    and saves one every few steps and when it stops between two steps.
    """
    device = models.device
    torch.manual_seed(config.seed)
    content = content.to(device)
    loss_fn = models.loss_for(config)
    loss_fn.prepare(content, text)
    net = StyleNet().to(device)
    forward = torch.compile(net) if config.compile else net  # ``net`` stays the plain module (state_dict keys)
    augment = PatchAugmenter(config.crops, config.crop_size, config.distortion, seed=config.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    step_log = StepLog(config.steps, config.save_every, config.precision, on_step, on_snapshot)
    state = TrainingState(net, optimizer, scheduler, scaler, {"crops": augment})
    first, earlier_seconds = resume_into(checkpoints, state, step_log.history)
    start = time.perf_counter() - earlier_seconds
    interrupted, stepped = False, first - 1
    try:
        raise_if_stop_requested()
        for step in range(first, config.steps + 1):
            with autocast_context(device, config.precision):
                output = forward(content)
                terms = loss_fn(output, augment(output))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimizer)
            scaler.update()
            record = {"step": step, "lr": optimizer.param_groups[0]["lr"], **terms.as_floats()}
            with warnings.catch_warnings():  # fp16: the scaler skips steps with inf gradients; the schedule still counts them
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                scheduler.step()
            stepped = step
            step_log.add(record, output)
            end_step(checkpoints, step, config.steps, state, step_log.history, start)
    except KeyboardInterrupt:
        interrupted = True
        save_on_stop(checkpoints, state, step_log.history, stepped, start)
    except Exception as exc:
        if config.compile and _is_compile_error(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpectralStyleError(
                f"--compile failed on {device.type} ({type(exc).__name__}: {first[:200]}); "
                "run without --compile (on CPU torch.compile needs a working C++ compiler)"
            ) from None
        raise
    with torch.no_grad():
        final = net(content).float()
    return OptimizationResult(step_log.history, time.perf_counter() - start, interrupted, net=net, output=final)


def output_stem(content: Path, text: str, band: str) -> str:
    return f"{content.stem}_{slugify(text)}_{band_label(band)}"


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
    image: Path
    sidecar: Path
    record: dict[str, Any]
    model: Path | None = None
    interrupted: bool = False


def run_job(
    content_path: str | Path,
    text: str,
    config: TransferConfig,
    models: Models,
    out_dir: str | Path,
    on_step: StepCallback | None = None,
    save_model: bool = False,
    stem: str | None = None,
    control: RunControl | None = None,
    on_note: NoteCallback | None = None,
) -> JobOutput:
    """Stylise one image and write ``<stem>.png`` and ``<stem>.json`` (and snapshots, model) in ``out_dir``.

    On Ctrl-C the current state goes to ``snapshots/<stem>_stepNNNN.png`` and the finished names are
    not written, so nothing half-done is presented as a result; the checkpoint in
    ``.checkpoints/<stem>.pt`` (see ``resume``) lets the same call continue, and is removed once the
    result is written. ``on_note`` receives the lines about resuming.
    """
    content_path = Path(content_path)
    out = Path(out_dir)
    content = load_image(content_path, config.size)
    stem = stem or output_stem(content_path, text, config.band)
    control = control or RunControl()
    checkpoints = Checkpointer(out, stem, config.digest(), run_key(config.digest(), content, text), control, on_note)
    record: dict[str, Any] = {
        "content": str(Path(content_path).resolve()),  # absolute: evaluate finds it from any folder
        "text": text,
        "band": config.band,
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "environment": environment_info(models.device),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_control": control.to_dict(),  # not in the config (hash): it does not change the result
    }

    writer = RunWriter(out, stem, record, config.contrast)
    result = optimize(content, text, config, models, on_step=on_step, on_snapshot=writer.snapshot, checkpoints=checkpoints)
    model_path = out / f"{stem}.stylenet.pt" if save_model else None

    def save_model_file(finished: dict[str, Any]) -> None:
        if model_path is not None:
            save_stylenet(result.net, model_path, finished)
            finished["model"] = str(model_path)

    output = writer.finish(result, result.output, before_write=save_model_file, checkpoints=checkpoints)
    if not output.interrupted:
        output.model = model_path
    return output


class RunWriter:
    """Writes one run's snapshots and its result: ``<stem>.png`` + ``<stem>.json``, atomically.

    After Ctrl-C only a snapshot (and its sidecar) is written, never the finished names, so nothing
    half-done is presented as a result.
    """

    def __init__(self, out: Path, stem: str, record: dict[str, Any], contrast: float) -> None:
        self.out, self.stem, self.record, self.contrast = out, stem, record, contrast

    def snapshot(self, step: int, image: torch.Tensor) -> Path:
        path = self.out / "snapshots" / f"{self.stem}_step{step:04d}.png"
        return save_png(finish_image(image, self.contrast), path, {**self.record, "step": step, "status": "snapshot"})

    def finish(self, result: RunHistory, image: torch.Tensor,
               before_write: Callable[[dict[str, Any]], None] | None = None,
               checkpoints: Checkpointer | None = None) -> JobOutput:
        """Write the result (or, if interrupted, a last snapshot); ``before_write`` may add files and keys.

        The checkpoint is removed only after the result is written; an interrupted run's record names
        it and its step (``checkpoint_step``: None when there is none to resume from).
        """
        record = self.record
        record.update(losses=result.history, steps_done=result.steps_done, wall_time_s=round(result.seconds, 3))
        if checkpoints is not None:
            record["resumed_from_step"] = checkpoints.resumed_from
        if result.interrupted:
            record["status"] = "interrupted"
            if checkpoints is not None:
                record["checkpoint_step"] = checkpoints.saved_step
                record["checkpoint"] = str(checkpoints.path) if checkpoints.saved_step is not None else None
            path = self.snapshot(result.steps_done, image)
            return JobOutput(path, write_json(record, path.with_suffix(".json")), record, interrupted=True)
        record["status"] = "finished"
        image_path, sidecar_path = self.out / f"{self.stem}.png", self.out / f"{self.stem}.json"
        record["output"] = str(image_path)
        if before_write:
            before_write(record)
        save_png(finish_image(image, self.contrast), image_path, record)
        write_json(record, sidecar_path)
        if checkpoints is not None:
            checkpoints.remove()
        return JobOutput(image_path, sidecar_path, record)


def write_comparison(results: list[JobOutput], out: str | Path, prefix: str, **extra: Any) -> JobOutput:
    """``<prefix>_compare_<band>-vs-<band>.png``: runs that differ only in band, labelled, with a sidecar."""
    first = results[0].record
    panels = [(open_rgb(r.image), f"band {r.record['band']}") for r in results]
    stem = f"{prefix}_compare_" + "-vs-".join(band_label(r.record["band"]) for r in results)
    record = {"kind": "comparison", "content": first.get("content"), "text": first["text"], **extra,
              "panels": [{"band": r.record["band"], "image": str(r.image), "sidecar": str(r.sidecar)} for r in results]}
    out = Path(out)
    image = save_png(side_by_side(panels), out / f"{stem}.png", record)
    return JobOutput(image, write_json(record, out / f"{stem}.json"), record)


def save_stylenet(net: StyleNet, path: Path, record: dict[str, Any]) -> None:
    """Weights plus the settings that trained them (as JSON, so ``torch.load(weights_only=True)`` reads it)."""
    with atomic_path(path) as tmp:
        torch.save({"format": "spectralstyle-stylenet-1", "ngf": net.ngf, "state_dict": net.state_dict(),
                    "record_json": json.dumps({k: v for k, v in record.items() if k != "losses"}, default=str)}, tmp)
