"""The per-image CLIPstyler optimisation with SpectralCLIP (``optimize``) and one transfer job with its
files (``run_job``): names, checkpoints, sidecar, snapshots. Models come from ``models.py``, the shared
step and output machinery from ``runs.py``."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from spectralstyle.bands import band_label
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import raise_if_stop_requested
from spectralstyle.media.images import load_image, oriented_size, slugify
from spectralstyle.method.augment import PatchAugmenter
from spectralstyle.method.controls import ResultControls, loss_view, photo_controls
from spectralstyle.method.prompts import prompts_record, style_prompts
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.record import RunRecord
from spectralstyle.runs.checkpoints import (
    Checkpointer,
    NoteCallback,
    RunControl,
    TrainingState,
    end_step,
    resume_into,
    run_key,
    save_on_stop,
)
from spectralstyle.runs.models import Models
from spectralstyle.runs.naming import ReservedName, reserve_stem
from spectralstyle.runs.output_size import output_size_of, result_at_output_size
from spectralstyle.runs.outputs import (
    JobOutput,
    RunHistory,
    RunWriter,
    SnapshotCallback,
    StepCallback,
    StepLog,
    autocast_context,
    environment_info,
    is_compile_error,
    save_stylenet,
)
from spectralstyle.settings import TransferConfig


@dataclass
class OptimizationResult(RunHistory):
    net: StyleNet | None = None
    output: torch.Tensor | None = None


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
    loss_fn.prepare(content, style_prompts(text, config.avoid_text))
    controls = ResultControls.of(config)
    controls.check_mask(config.width, config.height)
    mask = controls.mask_for(content)
    net = StyleNet().to(device)
    forward = torch.compile(net) if config.compile else net  # ``net`` stays the plain module (state_dict keys)
    augment = PatchAugmenter(config.crops, config.crop_size, config.distortion, seed=config.seed, mask=mask)
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
                seen = loss_view(output, content, controls, mask)  # the output itself without colour or mask
                terms = loss_fn(seen, augment(seen))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimizer)
            scaler.update()
            record = {"step": step, "lr": optimizer.param_groups[0]["lr"], **terms.as_floats()}
            # fp16: the scaler skips steps with inf gradients; the schedule still counts them
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                scheduler.step()
            stepped = step
            step_log.add(record, output)
            end_step(checkpoints, step, config.steps, state, step_log.history, start)
    except KeyboardInterrupt:
        interrupted = True
        save_on_stop(checkpoints, state, step_log.history, stepped, start)
    except Exception as exc:
        if config.compile and is_compile_error(exc):
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
    name: ReservedName | None = None,
    overwrite: bool = False,
) -> JobOutput:
    """Stylise one image and write ``<stem>.png`` and ``<stem>.json`` (and snapshots, model) in ``out_dir``.

    The name: ``name`` (a reservation the caller holds, runs/naming.py), else ``stem`` as given, else
    this call reserves the transfer name (or a hashed one beside another run's result, unless
    ``overwrite``) for its duration. On Ctrl-C the current state goes to ``snapshots/<stem>_stepNNNN.png``
    and the finished names are not written, so nothing half-done is presented as a result; the
    checkpoint in ``.checkpoints/<run key>.pt`` (settings and inputs, see ``checkpoints``) lets the same
    call continue, and is removed once the result is written. ``on_note`` receives the lines about resuming.
    """
    content_path = Path(content_path)
    photo_size = oriented_size(content_path)
    if photo_size is not None:  # an unreadable file: load_image says so
        config = config.for_content(photo_size)  # --size N: the photo's aspect ratio (idempotent)
    if name is None and stem is None:
        plain = output_stem(content_path, text, config.band)
        with reserve_stem(out_dir, plain, content_path, text, config.digest(), overwrite) as reserved:
            reserved.on_note = on_note
            return run_job(content_path, text, config, models, out_dir, on_step=on_step, save_model=save_model,
                           control=control, on_note=on_note, name=reserved)
    out = Path(out_dir)
    content = load_image(content_path, config.size)
    photo_size = photo_size or (content.shape[-1], content.shape[-2])
    if name is not None:
        stem = name.stem
    assert stem is not None
    control = control or RunControl()
    checkpoints = Checkpointer(out, stem, config.digest(), run_key(config.digest(), content, text), control, on_note)
    record = RunRecord(
        content=str(Path(content_path).resolve()),  # absolute: evaluate finds it from any folder
        text=text, band=config.band, config=config.to_dict(), config_hash=config.digest(),
        environment=environment_info(models.device),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"content_size": list(photo_size), "working_size": [config.width, config.height],
               "output_size": list(output_size_of(config, photo_size)),
               "prompts": prompts_record(style_prompts(text, config.avoid_text)),
               "run_control": control.to_dict()},  # run control is not in the config (hash): same result
    )

    # the controls (colour, mask, strength) come after the output size: against the photo at that size
    controls = photo_controls(ResultControls.of(config), content_path, content)
    writer = RunWriter(out, stem, record, config.contrast, name, controls)
    result = optimize(content, text, config, models, on_step=on_step, on_snapshot=writer.snapshot,
                      checkpoints=checkpoints)
    model_paths: list[Path] = []

    def save_model_file(finished: RunRecord) -> None:
        if save_model:  # under the name confirmed just before the write
            model_paths.append(out / f"{writer.stem}.stylenet.pt")
            save_stylenet(result.net, model_paths[0], finished)
            finished.model = str(model_paths[0])

    final = result.output if result.interrupted else result_at_output_size(
        result.net, result.output, str(content_path), config, models.device)
    output = writer.finish(result, final, before_write=save_model_file, checkpoints=checkpoints)
    if not output.interrupted and model_paths:
        output.model = model_paths[0]
    return output
