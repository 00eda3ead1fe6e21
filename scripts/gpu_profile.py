"""One timed full transfer run and a torch.profiler table of steady steps, for scripts/gpu_check.sh.

    PYTHONPATH=src python scripts/gpu_profile.py --device cuda --size 512x512 --crops 64 --steps 200 \
        --precision bf16 --compile --out gpu-check

Writes ``full-run.json`` (model loading, the first step with compilation and warm-up, the median steady
step, the whole run) and ``profile.txt`` (the top 25 kernels by device time over ``--profile-steps``
steady steps, and the share of the step's time in StyleNet, crops, CLIP, VGG, backward and optimizer).

The profiled loop is ``runs.transfer.optimize``'s step written out with ``record_function`` ranges around
its parts (the library's loop carries no profiling code). Backward is one range: autograd runs the
backward kernels of every part in one pass, so the forward ranges are per part and the backward is not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from spectralstyle.bench.runner import synthetic_content
from spectralstyle.method.augment import PatchAugmenter
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.runs.models import Models
from spectralstyle.runs.outputs import autocast_context
from spectralstyle.runs.transfer import optimize
from spectralstyle.settings import TransferConfig

PARTS = ("StyleNet", "crops", "CLIP", "VGG", "loss", "backward", "optimizer")


class Ranged(nn.Module):
    """Runs ``inner`` inside a profiler range (attribute access passes through to it)."""

    def __init__(self, name: str, inner: nn.Module) -> None:
        super().__init__()
        self.name, self.inner = name, inner

    def forward(self, *args, **kwargs):
        with record_function(self.name):
            return self.inner(*args, **kwargs)

    def encode_image(self, *args, **kwargs):  # what the loss calls on the CLIP encoder
        with record_function(self.name):
            return self.inner.encode_image(*args, **kwargs)

    def __getattr__(self, attr: str):
        try:
            return super().__getattr__(attr)
        except AttributeError:
            return getattr(self.inner, attr)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def full_run(config: TransferConfig, content: torch.Tensor, text: str) -> dict:
    """The whole run through the library (as `transfer` runs it), each step's end time recorded."""
    device = torch.device(config.device)
    start = time.perf_counter()
    models = Models.load(config)
    loaded = time.perf_counter()
    stamps: list[float] = []
    result = optimize(content, text, config, models, on_step=lambda step, record: stamps.append(time.perf_counter()))
    sync(device)
    end = time.perf_counter()
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    median = statistics.median(steps) if steps else float("nan")
    first = stamps[0] - loaded  # prepare (text, content features), compilation, the first step
    return {"config": config.to_dict(), "load_models_s": loaded - start, "first_step_s": first,
            "compile_and_warmup_s": first - median, "median_step_s": median, "min_step_s": min(steps, default=0.0),
            "steady_steps_s": sum(steps), "run_s": end - loaded,
            "run_without_compile_s": end - loaded - (first - median),
            "steps": len(stamps), "last_total_loss": result.history[-1]["total"]}


def profiled_steps(config: TransferConfig, content: torch.Tensor, text: str, warmup: int, steps: int):
    """``optimize``'s step with ranges; ``warmup`` steps (compilation) first, then ``steps`` under the profiler."""
    device = torch.device(config.device)
    models = Models.load(config)
    content = content.to(device)
    loss_fn = models.loss_for(config)
    loss_fn.prepare(content, text)
    loss_fn.encoder = Ranged("CLIP", loss_fn.encoder)
    loss_fn.vgg = Ranged("VGG", loss_fn.vgg)
    torch.manual_seed(config.seed)
    net = StyleNet().to(device)
    forward = torch.compile(net) if config.compile else net
    augment = PatchAugmenter(config.crops, config.crop_size, config.distortion, seed=config.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")

    def step() -> None:
        with autocast_context(device, config.precision):
            with record_function("StyleNet"):
                output = forward(content)
            with record_function("crops"):
                crops = augment(output)
            with record_function("loss"):
                terms = loss_fn(output, crops)
        optimizer.zero_grad(set_to_none=True)
        with record_function("backward"):
            scaler.scale(terms.total).backward()
        with record_function("optimizer"):
            scaler.step(optimizer)
            scaler.update()
        terms.as_floats()  # the step log's one host sync

    for _ in range(warmup):
        step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            with record_function("step"):
                step()
        sync(device)
    return prof


def device_time(event, on_gpu: bool) -> float:
    """Microseconds of device (GPU) time under an event, CPU time on CPU (the attribute moved across versions)."""
    if not on_gpu:
        return float(event.cpu_time_total)
    for name in ("device_time_total", "cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def shares_table(prof, on_gpu: bool) -> tuple[str, dict[str, float]]:
    """Share of the profiled steps' time in each part. ``loss`` includes CLIP and VGG (nested ranges), so
    its own share is the loss minus those two."""
    totals = {e.key: device_time(e, on_gpu) for e in prof.key_averages() if e.key in (*PARTS, "step")}
    own = dict(totals)
    own["loss"] = totals.get("loss", 0.0) - totals.get("CLIP", 0.0) - totals.get("VGG", 0.0)
    step_total = totals.get("step", 0.0) or sum(own.get(p, 0.0) for p in PARTS)
    shares = {p: own.get(p, 0.0) / step_total if step_total else 0.0 for p in PARTS}
    rest = 1.0 - sum(shares.values())
    kind = "GPU time of the kernels launched in each range" if on_gpu else "CPU time of each range"
    lines = [f"share of the step ({kind}; 'loss' is the loss arithmetic outside CLIP and VGG; backward of all parts):"]
    lines += [f"  {p:<10} {100 * s:5.1f} %" for p, s in shares.items()]
    lines.append(f"  {'other':<10} {100 * rest:5.1f} %  (zero_grad, the log's host copy, gaps)")
    return "\n".join(lines), shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--crops", type=int, default=64)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200, help="steps of the full timed run (0: skip it)")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="steps before the profiled ones (compilation)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    config = TransferConfig(weights="random", device=args.device, width=width, height=height, crops=args.crops,
                            crop_size=args.crop_size, steps=max(1, args.steps), precision=args.precision,
                            compile=args.compile, save_every=0)
    args.out.mkdir(parents=True, exist_ok=True)
    content = synthetic_content(width, height)
    on_gpu = torch.device(args.device).type == "cuda"
    if args.steps > 0:
        run = full_run(config, content, "pop art")
        (args.out / "full-run.json").write_text(json.dumps(run, indent=2))
        print(f"full run: {run['steps']} steps at {width}x{height}, {args.crops} crops, {args.precision}"
              f"{' +compile' if args.compile else ''}: {run['run_s']:.1f} s in all, "
              f"{run['median_step_s'] * 1000:.1f} ms/step steady, first step {run['first_step_s']:.1f} s "
              f"(compile and warm-up "
              f"{run['compile_and_warmup_s']:.1f} s), models loaded in {run['load_models_s']:.1f} s")
    prof = profiled_steps(config, content, "pop art", args.warmup, args.profile_steps)
    sort = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    text, shares = shares_table(prof, on_gpu)
    table = prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)
    header = (f"torch.profiler over {args.profile_steps} steady steps after {args.warmup} warm-up steps: "
              f"{width}x{height}, {args.crops} crops of {args.crop_size}, {args.precision}"
              f"{' +compile' if args.compile else ''}, {args.device}, torch {torch.__version__}\n")
    (args.out / "profile.txt").write_text(f"{header}\n{text}\n\ntop 25 by {sort}:\n{table}\n")
    (args.out / "shares.json").write_text(json.dumps(shares, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
