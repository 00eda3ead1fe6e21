"""One StyleNet for one text over many content images: CLIPstyler's fast mode with the SpectralCLIP band.

``transfer`` trains a network for one image; here every step draws a batch of content images (or
random crops of them, ``train_size``) and applies transfer's loss to each with that image's own
source CLIP features and VGG content features (``CLIPStyleLoss.batch_terms``: the mean over images
of the single-image loss). The trained network then stylises any photo of the set, or a video's
frames, with ``apply`` in one forward pass each.

The loop keeps all of its state in ``TrainState`` (network, optimiser, schedule, scaler, both random
generators, step, history) with ``state_dict``/``load_state_dict``, so a checkpoint can be written
after any step and a run resumed bit for bit; ``run_train_job`` adds the files.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from spectralstyle.bands import band_label, canonical_band
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import raise_if_stop_requested
from spectralstyle.media.files import all_or_none, check_exists
from spectralstyle.media.images import (
    finish_image,
    list_images,
    load_image,
    oriented_size,
    save_png,
    slugify,
    to_pil,
)
from spectralstyle.method.augment import PatchAugmenter, to_device
from spectralstyle.method.colors import keep_photo_chroma
from spectralstyle.method.controls import ResultControls, apply_controls
from spectralstyle.method.prompts import prompts_record, style_prompts
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.record import RunRecord
from spectralstyle.runs.models import Models
from spectralstyle.runs.outputs import (
    JobOutput,
    RunHistory,
    StepCallback,
    StepLog,
    autocast_context,
    environment_info,
    is_compile_error,
    save_stylenet,
    write_record,
)
from spectralstyle.settings import TrainSettings, TransferConfig

MODEL_SUFFIX = ".stylenet.pt"


def train_digest(config: TransferConfig, train: TrainSettings) -> str:
    """Short stable hash of everything that shapes a trained model (the batch skip rule compares it)."""
    # one hash per set of kept frequencies; neutral controls at their default leave it as it was
    settings = {**config.identity(), "band": canonical_band(config.band)}
    key = json.dumps({"config": settings, "train": train.to_dict()}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def model_stem(text: str, band: str) -> str:
    """``<text>_<band>``: the name of a style model trained over a set of images."""
    return f"{slugify(text)}_{band_label(band)}"


# --- inputs ---------------------------------------------------------------------------------------
def collect_images(inputs: list[Path]) -> list[Path]:
    """Image files given directly or found directly in given folders, in the order given, each once."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        check_exists(path)
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise SpectralStyleError(f"no images (jpg, png, ...) in folder {path}")
            found.extend(images)
        else:
            found.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise SpectralStyleError("no training images: give --images with image files or folders")
    return unique


def config_for_images(config: TransferConfig, images: list[Path]) -> TransferConfig:
    """The settings for training on ``images``, which share one working size: with ``--size N`` the long side
    N at the images' mean aspect ratio (geometric mean of width/height; each image is resized to it)."""
    if not config.keep_aspect:
        return config
    sizes = [size for size in (oriented_size(p) for p in images) if size is not None]
    if not sizes:
        return config
    aspect = math.exp(sum(math.log(w / h) for w, h in sizes) / len(sizes))
    typical = (1000, max(1, round(1000 / aspect))) if aspect >= 1 else (max(1, round(1000 * aspect)), 1000)
    return config.for_content(typical)


def resize_tensor(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[1, 3, H, W] in [0, 1] resized bicubically to ``size`` = (width, height), as ``load_image`` does."""
    if tuple(image.shape[-2:]) == (size[1], size[0]):
        return image
    return F.interpolate(image, size=(size[1], size[0]), mode="bicubic", align_corners=False,
                         antialias=True).clamp(0, 1)


# --- the loop -------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Everything a training run changes as it goes; ``state_dict`` after step k + the same inputs
    resume at step k+1 exactly as an uninterrupted run would continue."""

    net: StyleNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: torch.Generator
    augment: PatchAugmenter
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def new(cls, config: TransferConfig, device: torch.device) -> "TrainState":
        torch.manual_seed(config.seed)  # the network's initial weights
        net = StyleNet().to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
        scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
        sampler = torch.Generator().manual_seed(config.seed + 1)  # which images and crops; apart from the patches'
        augment = PatchAugmenter(config.crops, config.crop_size, config.distortion, seed=config.seed)
        return cls(net, optimizer, scheduler, scaler, sampler, augment)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only, so ``torch.load(weights_only=True)`` reads a checkpoint."""
        return {"step": self.step, "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "sampler": self.sampler.get_state(), "augment": self.augment.generator.get_state(),
                "history_json": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.set_state(state["sampler"])
        self.augment.generator.set_state(state["augment"])
        self.history = json.loads(state["history_json"])


@dataclass
class TrainResult(RunHistory):
    net: StyleNet | None = None
    state: TrainState | None = None


def draw_batch(pool: torch.Tensor, train: TrainSettings, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """A step's content images: ``batch`` distinct images at random (and a random crop of each)."""
    count = min(train.batch, pool.shape[0])
    indices = torch.randperm(pool.shape[0], generator=generator)[:count].tolist()
    images = pool[indices]
    crop = train.crop
    if crop is None:
        return images, indices
    width, height = crop
    h, w = images.shape[-2:]
    tops = torch.randint(0, h - height + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, w - width + 1, (count,), generator=generator).tolist()
    return torch.stack([img[:, t:t + height, left:left + width] for img, t, left in zip(images, tops, lefts)]), indices


def train_stylenet(
    contents: list[torch.Tensor],
    text: str,
    config: TransferConfig,
    models: Models,
    train: TrainSettings,
    on_step: StepCallback | None = None,
    state: TrainState | None = None,
    after_step: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    """Train one StyleNet for ``text`` over ``contents`` (each [1, 3, H, W] in [0, 1], all at ``config.size``).

    ``state`` continues a run (see ``TrainState``); ``after_step(state)`` is called after every step
    (the place for a checkpoint). Ctrl-C stops early and returns the state with ``interrupted=True``.
    """
    train.check_with(config)
    if not contents:
        raise SpectralStyleError("no training images")
    size = (config.height, config.width)
    if any(tuple(c.shape[-2:]) != size for c in contents):
        raise ValueError(f"all training images must be {config.width}x{config.height} (use resize_tensor)")
    device = models.device
    pool = torch.cat([c.float().cpu() for c in contents])  # on the host: a large set need not fit the device
    loss_fn = models.loss_for(config)
    loss_fn.prepare_text(style_prompts(text, config.avoid_text))
    keep_chroma = config.preserve_color == "luminance"  # as in transfer, the loss sees the colours that are written
    state = state or TrainState.new(config, device)
    forward = torch.compile(state.net) if config.compile else state.net
    step_log = StepLog(config.steps, 0, config.precision, on_step, history=state.history)
    start = time.perf_counter()
    interrupted = False
    try:
        for step in range(state.step + 1, config.steps + 1):
            batch, _ = draw_batch(pool, train, state.sampler)
            batch = to_device(batch, device)  # pinned, non-blocking on CUDA: the host does not wait for the GPU
            sources, targets = loss_fn.content_targets(batch)
            with autocast_context(device, config.precision):
                outputs = forward(batch)
                if keep_chroma:
                    outputs = keep_photo_chroma(outputs, batch)
                crops = torch.cat([state.augment(outputs[i:i + 1]) for i in range(outputs.shape[0])])
                terms = loss_fn.batch_terms(outputs, crops, sources, targets)
            state.optimizer.zero_grad(set_to_none=True)
            state.scaler.scale(terms.total).backward()
            state.scaler.step(state.optimizer)
            state.scaler.update()
            record = {"step": step, "lr": state.optimizer.param_groups[0]["lr"], **terms.as_floats()}
            with warnings.catch_warnings():  # as in transfer: fp16 skipped steps still count
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                state.scheduler.step()
            step_log.add(record, outputs)
            state.step = step
            if after_step is not None:
                after_step(state)
            raise_if_stop_requested()  # Ctrl-C / SIGTERM: stop here, between two steps
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:
        if config.compile and is_compile_error(exc):
            raise SpectralStyleError(
                f"--compile failed on {device.type} ({type(exc).__name__}); run without --compile"
            ) from None
        raise
    return TrainResult(state.history, time.perf_counter() - start, interrupted, net=state.net, state=state)


# --- files ----------------------------------------------------------------------------------------
def preview_grid(net: StyleNet, contents: list[torch.Tensor], count: int, contrast: float,
                 device: torch.device, controls: ResultControls | None = None) -> Image.Image:
    """``count`` training images spread over the set: before (top row) and after (bottom row, with the
    result ``controls`` as ``apply`` would use them)."""
    controls = controls or ResultControls()
    count = min(count, len(contents))
    picks = sorted({round(k * (len(contents) - 1) / max(count - 1, 1)) for k in range(count)})
    before = [to_pil(contents[k]) for k in picks]
    with torch.no_grad():
        after = [to_pil(apply_controls(finish_image(net.eval().stylize(contents[k].to(device)), contrast), contents[k],
                                       controls)) for k in picks]
    net.train()
    label = 16
    w, h = before[0].size
    grid = Image.new("RGB", (w * len(picks), 2 * (h + label)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=11)
    for row, (name, images) in enumerate((("before", before), ("after", after))):
        y = row * (h + label)
        draw.text((4, y + 2), name, fill="black", font=font)
        for col, img in enumerate(images):
            grid.paste(img, (col * w, y + label))
    return grid


def train_record(text: str, config: TransferConfig, train: TrainSettings, images: list[str],
                 device: torch.device, **extra: Any) -> RunRecord:
    """The sidecar of a trained model: everything needed to repeat it."""
    return RunRecord(
        kind="stylenet", text=text, band=config.band, config=config.to_dict(), config_hash=train_digest(config, train),
        environment=environment_info(device), started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"prompts": prompts_record(style_prompts(text, config.avoid_text)), "images": images,
               "train": train.to_dict(), **extra},
    )


def save_interrupted_model(result: TrainResult, record: RunRecord, out: Path, stem: str) -> JobOutput:
    """After Ctrl-C/SIGTERM: the model so far as ``snapshots/<stem>_stepNNNN.stylenet.pt`` with its sidecar,
    never under the final name."""
    assert result.net is not None
    record.status = "interrupted"
    path = out / "snapshots" / f"{stem}_step{result.steps_done:04d}{MODEL_SUFFIX}"
    save_stylenet(result.net, path, record)
    sidecar = write_record(record, out / "snapshots" / f"{stem}_step{result.steps_done:04d}.json")
    return JobOutput(path, sidecar, record.to_dict(), model=path, interrupted=True)


def write_trained(result: TrainResult, contents: list[torch.Tensor], record: RunRecord, config: TransferConfig,
                  train: TrainSettings, device: torch.device, out: Path, stem: str) -> JobOutput:
    """``<stem>.stylenet.pt``, ``<stem>_preview.png`` and ``<stem>.json`` (written last: it marks a finished
    model); after Ctrl-C the model so far goes to ``snapshots/<stem>_stepNNNN.stylenet.pt`` instead."""
    record.losses, record.steps_done, record.wall_time_s = result.history, result.steps_done, round(result.seconds, 3)
    assert result.net is not None
    if result.interrupted:
        return save_interrupted_model(result, record, out, stem)
    model_path, preview_path, sidecar = out / f"{stem}{MODEL_SUFFIX}", out / f"{stem}_preview.png", out / f"{stem}.json"
    record.status, record.model = "finished", str(model_path)
    with all_or_none(preview_path, model_path, sidecar):  # a full disk at the model: no stray preview
        if train.preview:
            record.extra["preview"] = str(preview_path)
            save_png(preview_grid(result.net, contents, train.preview, config.contrast, device,
                                  ResultControls(config.preserve_color)), preview_path,
                     {k: v for k, v in record.to_dict().items() if k != "losses"})
        save_stylenet(result.net, model_path, record)
        write_record(record, sidecar)
    return JobOutput(model_path, sidecar, record.to_dict(), model=model_path)


def run_train_job(images: list[Path], text: str, config: TransferConfig, train: TrainSettings, models: Models,
                  out: str | Path, on_step: StepCallback | None = None, stem: str | None = None) -> JobOutput:
    """Train a style model over ``images`` (loaded at ``config.size``) and write it with its sidecar and preview.

    ``--preserve-color`` trains the model for it (and ``apply`` uses it by default); a mask and a strength
    belong to one result, so they go to ``apply``.
    """
    if config.mask is not None or config.strength != 1.0:
        raise SpectralStyleError("train makes a model for many photos: give --mask and --strength to `apply`, "
                                 "which uses them on each result")
    if not images:
        raise SpectralStyleError("no training images")
    config = config_for_images(config, images)
    train.check_with(config)
    contents = [load_image(path, config.size) for path in images]
    out = Path(out)
    stem = stem or model_stem(text, config.band)
    record = train_record(text, config, train, [str(Path(p).resolve()) for p in images], models.device)
    result = train_stylenet(contents, text, config, models, train, on_step=on_step)
    return write_trained(result, contents, record, config, train, models.device, out, stem)
