"""Step time and peak memory of the reference computation pattern versus our pipeline, side by side.

Each pattern runs in a fresh interpreter (``python -m spectralstyle.bench.runner --pattern ...``) so that the
CPU peak memory (``ru_maxrss``, a process high-water mark) belongs to that pattern alone. A run does
``steps + 1`` optimisation steps and drops the first (warm-up: allocator, compilation, caches); the
step time reported is the median of the rest. With several rounds the processes alternate (ABBA) and
the timed steps of all rounds are pooled, so a shared machine's slow spells hit both patterns. On CUDA
the memory is ``torch.cuda.max_memory_allocated``.

Both patterns use the same seed, StyleNet initialisation and crop parameters, so their per-step
losses are comparable: in fp32 they agree to float noise, with bf16/fp16 the difference shows the
effect of reduced precision.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from spectralstyle.device import check_precision, resolve_device
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import LOSS_TERMS as TRANSFER_LOSS_TERMS
from spectralstyle.settings import TransferConfig

PATTERNS: dict[str, str] = {
    "reference": "per-crop loop, full DCT/IDCT, trainable CLIP, 2 CLIP passes, full VGG19, the original's dtypes",
    "optimized": "batched crops, CLS weighted sum, frozen CLIP, 1 CLIP pass, VGG to relu5_2",
}
"""Pattern name -> one-line description (the reference is run first)."""

REFERENCE_PRECISIONS = ("fp32", "fp16", "bf16")


def reference_precision(device: torch.device, choice: str | None = None) -> str:
    """The reference pattern's CLIP precision: ``choice``, or what the original code runs on that device
    (``clip.load`` keeps CLIP's fp16 weights on CUDA, converts them to fp32 elsewhere), so that a GPU
    speed-up is not measured against a slower fp32 reference the authors never ran."""
    if choice is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if choice not in REFERENCE_PRECISIONS:
        raise SpectralStyleError(f"--reference-precision must be one of {', '.join(REFERENCE_PRECISIONS)}, "
                                 f"got {choice!r}")
    if choice == "fp16" and device.type == "cpu":
        raise SpectralStyleError("--reference-precision fp16 is for GPUs (on CPU fp16 is emulated and many times "
                                 "slower); use fp32 (the original's on CPU) or bf16")
    check_precision(device, choice)
    return choice


CHILD_TIMEOUT_S = 3600
LOSS_TERMS = ("total", *TRANSFER_LOSS_TERMS)


@dataclass(frozen=True)
class Target:
    """A speed target of the project: at this device type, size and crop count, at least ``speedup``x
    faster than the reference pattern with a peak memory no higher than its."""

    device_type: str
    width: int
    height: int
    crops: int
    speedup: float

    def applies_to(self, device: str, config: dict[str, Any]) -> bool:
        return (torch.device(device).type == self.device_type
                and (config["width"], config["height"]) == (self.width, self.height)
                and config["crops"] == self.crops)

    def describe(self) -> str:
        return f"{self.device_type}, {self.width}x{self.height}, {self.crops} crops"


TARGETS = (Target("cpu", 256, 256, 16, 1.5), Target("cuda", 512, 512, 64, 3.0))


@dataclass
class PatternResult:
    """What one pattern measured in its own process."""

    pattern: str
    description: str
    device: str
    precision: str
    compile: bool
    step_seconds: list[float]
    step_cpu_seconds: list[float]
    setup_and_first_step_s: float
    peak_memory_mib: float
    memory_kind: str
    losses: list[dict[str, float]] = field(default_factory=list)

    @property
    def median_step_s(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def median_step_cpu_s(self) -> float:
        return statistics.median(self.step_cpu_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median_step_s": self.median_step_s, "median_step_cpu_s": self.median_step_cpu_s}


@dataclass
class BenchReport:
    config: dict[str, Any]
    steps: int
    environment: dict[str, Any]
    results: list[PatternResult]
    rounds: int = 1

    @property
    def reference(self) -> PatternResult:
        return self.results[0]

    @property
    def optimized(self) -> PatternResult:
        return self.results[1]

    @property
    def speedup(self) -> float:
        return self.reference.median_step_s / self.optimized.median_step_s

    @property
    def memory_ratio(self) -> float:
        return self.optimized.peak_memory_mib / self.reference.peak_memory_mib

    def loss_differences(self, term: str = "total") -> list[float]:
        """Relative difference of one loss term per step, optimized vs reference (same seed and crops)."""
        return [abs(o[term] - r[term]) / max(abs(r[term]), 1e-12)
                for r, o in zip(self.reference.losses, self.optimized.losses)]

    @property
    def compared_terms(self) -> tuple[str, ...]:
        """The loss terms both patterns record, in ``LOSS_TERMS`` order: the reference implements the four
        terms of the paper, so a term added to the pipeline (or one of weight 0, not computed) is left out."""
        if not self.reference.losses or not self.optimized.losses:
            return ()
        recorded = set(self.reference.losses[0]) & set(self.optimized.losses[0])
        return tuple(term for term in LOSS_TERMS if term in recorded)

    def max_loss_differences(self) -> dict[str, float]:
        """Largest relative difference per loss term: float noise in fp32, the cost of bf16/fp16 otherwise."""
        return {term: max(self.loss_differences(term)) for term in self.compared_terms}

    @property
    def target(self) -> Target | None:
        return next((t for t in TARGETS if t.applies_to(self.reference.device, self.config)), None)

    def target_met(self) -> bool | None:
        """Whether this run meets the project's target for its configuration (None: no target for it)."""
        if self.target is None:
            return None
        return self.speedup >= self.target.speedup and self.memory_ratio <= 1.0

    def target_line(self) -> str:
        target = self.target
        if target is None:
            return "no speed target for this configuration (targets: " + "; ".join(
                f"{t.describe()}: {t.speedup:g}x" for t in TARGETS) + ")"
        verdict = "met" if self.target_met() else "NOT met"
        return (f"target for {target.describe()}: at least {target.speedup:g}x with peak memory no higher than the "
                f"reference: {verdict} ({self.speedup:.2f}x, memory ratio {self.memory_ratio:.2f})")

    def to_dict(self) -> dict[str, Any]:
        diffs = self.loss_differences()
        return {
            "config": self.config,
            "steps_timed": self.steps,
            "rounds": self.rounds,
            "environment": self.environment,
            "patterns": {r.pattern: r.to_dict() for r in self.results},
            "speedup": self.speedup,
            "speedup_cpu_time": self.reference.median_step_cpu_s / self.optimized.median_step_cpu_s,
            "memory_ratio": self.memory_ratio,
            "max_total_loss_rel_diff": max(diffs) if diffs else None,
            "max_loss_rel_diff": self.max_loss_differences(),
            "target": None if self.target is None else {**asdict(self.target), "met": self.target_met()},
        }


def synthetic_content(width: int, height: int) -> torch.Tensor:
    """A deterministic photo-like image [1, 3, H, W] (gradients and a block): no file needed."""
    y = torch.linspace(0, 1, height).view(height, 1).expand(height, width)
    x = torch.linspace(0, 1, width).view(1, width).expand(height, width)
    img = torch.stack([x, 1 - y, 0.5 + 0.4 * torch.sin(6.0 * (x + y))]).clone()
    img[:, height // 4 : height // 2, width // 3 : 2 * width // 3] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    return img.clamp(0, 1).unsqueeze(0)


def bench_content(config: TransferConfig, content_path: str | None) -> torch.Tensor:
    if content_path is None:
        return synthetic_content(config.width, config.height)
    from spectralstyle.media.images import load_image

    return load_image(content_path, config.size)


def _peak_memory_mib(device: torch.device, mps_samples: list[int]) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated over the timed steps"
    if device.type == "mps":
        return max(mps_samples) / 2**20, "MPS driver-allocated memory, highest per-step sample"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 1024), "process peak RSS (ru_maxrss)"


def _load_text_cache(path: Path | None) -> dict[str, torch.Tensor]:
    """Text features computed by an earlier pattern of this run (they are set-up, not measured)."""
    if path is None or not path.is_file():
        return {}
    return torch.load(path, map_location="cpu", weights_only=True)


def run_pattern(
    pattern: str, config: TransferConfig, steps: int, text: str, content_path: str | None = None,
    text_cache_path: Path | None = None, reference_dtype: str = "fp32",
) -> PatternResult:
    """Run ``steps + 1`` steps of one pattern in this process and measure them (call in a fresh process);
    the reference runs CLIP in ``reference_dtype`` (its config's precision, read by ``ReferenceModels``)."""
    if pattern not in PATTERNS:
        raise SpectralStyleError(f"unknown pattern {pattern!r}; use one of {', '.join(PATTERNS)}")
    if pattern == "reference":
        config = config.replace(precision=reference_dtype, compile=False)
    config = config.replace(steps=steps + 1, save_every=0)
    device = resolve_device(config.device)
    content = bench_content(config, content_path)
    cache = {k: v.to(device) for k, v in _load_text_cache(text_cache_path).items()}
    stamps: list[float] = []
    cpu_stamps: list[float] = []  # process CPU time (all threads): less affected by other load on the machine
    mps_samples: list[int] = []

    def on_step(step: int, record: dict[str, float]) -> None:  # reading the losses already synchronised
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())
        if step == 1:  # the warm-up step (and compilation, with --compile) is not part of the peak
            _reset_peak(device)
        elif device.type == "mps":
            mps_samples.append(torch.mps.driver_allocated_memory())

    if pattern == "reference":
        from spectralstyle.bench.reference import ReferenceModels, optimize_reference

        ref_models = ReferenceModels.load(config)
        ref_models.text_cache.update(cache)
        start = time.perf_counter()
        history = optimize_reference(content, text, config, ref_models, on_step=on_step).history
        text_cache = ref_models.text_cache
    else:
        from spectralstyle.runs.models import Models
        from spectralstyle.runs.transfer import optimize

        models = Models.load(config)
        models.text_cache.update(cache)
        start = time.perf_counter()
        history = optimize(content, text, config, models, on_step=on_step).history
        text_cache = models.text_cache
    if text_cache_path is not None and not text_cache_path.is_file():
        torch.save({k: v.cpu() for k, v in text_cache.items()}, text_cache_path)
    if len(stamps) != steps + 1:
        raise SpectralStyleError(f"{pattern}: only {len(stamps)} of {steps + 1} steps ran (interrupted?)")
    peak, kind = _peak_memory_mib(device, mps_samples)
    return PatternResult(
        pattern, PATTERNS[pattern], str(device), config.precision, config.compile,
        step_seconds=[b - a for a, b in zip(stamps, stamps[1:])],
        step_cpu_seconds=[b - a for a, b in zip(cpu_stamps, cpu_stamps[1:])],
        setup_and_first_step_s=stamps[0] - start,  # prepare() (text, source features) and the warm-up step
        peak_memory_mib=peak, memory_kind=kind, losses=history,
    )


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def measure_in_subprocess(
    pattern: str, config: TransferConfig, steps: int, text: str, content_path: str | None, workdir: Path,
    reference_dtype: str = "fp32",
) -> PatternResult:
    """Run ``run_pattern`` in a fresh interpreter and read its result back."""
    config_file, result_file = workdir / "config.json", workdir / f"{pattern}.json"
    config_file.write_text(json.dumps(config.to_dict()))
    cmd = [sys.executable, "-m", "spectralstyle.bench.runner", "--pattern", pattern, "--config", str(config_file),
           "--steps", str(steps), "--text", text, "--out", str(result_file),
           "--text-cache", str(workdir / "text_features.pt"), "--reference-precision", reference_dtype]
    if content_path is not None:
        cmd += ["--content", str(content_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=os.environ.copy())
    if proc.returncode != 0 or not result_file.is_file():
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        last = lines[-1].removeprefix("error: ") if lines else f"exit code {proc.returncode}"
        raise SpectralStyleError(f"benchmark of the {pattern} pattern failed: {last}")
    data = json.loads(result_file.read_text())
    data.pop("median_step_s", None)
    data.pop("median_step_cpu_s", None)
    return PatternResult(**data)


def merge_rounds(rounds: list[PatternResult]) -> PatternResult:
    """One pattern measured in several processes: all timed steps pooled, the highest peak, the first
    round's losses (a seeded run repeats them on the same device)."""
    first = rounds[0]
    return replace(
        first,
        step_seconds=[t for r in rounds for t in r.step_seconds],
        step_cpu_seconds=[t for r in rounds for t in r.step_cpu_seconds],
        setup_and_first_step_s=statistics.median(r.setup_and_first_step_s for r in rounds),
        peak_memory_mib=max(r.peak_memory_mib for r in rounds),
    )


def round_order(round_index: int) -> list[str]:
    """Reference first in even rounds, last in odd ones (ABBA): a machine that slows down or speeds up
    during the run then weighs on both patterns alike."""
    names = list(PATTERNS)
    return names if round_index % 2 == 0 else names[::-1]


def run_benchmark(
    config: TransferConfig, steps: int, text: str = "pop art", content_path: str | None = None,
    on_pattern: Any = None, rounds: int = 1, reference_dtype: str | None = None,
) -> BenchReport:
    """Measure every pattern in its own process, ``rounds`` times, interleaved; ``on_pattern(name, round)``
    is called before each process starts. ``reference_dtype``: see ``reference_precision`` (None: the
    original's on this device)."""
    if steps < 1:
        raise SpectralStyleError(f"--steps must be at least 1, got {steps}")
    if rounds < 1:
        raise SpectralStyleError(f"--rounds must be at least 1, got {rounds}")
    from spectralstyle.method.clip_model import tokenize_templated
    from spectralstyle.runs.outputs import environment_info

    tokenize_templated(text)  # a bad text fails here, not in a child
    device = resolve_device(config.device)
    check_precision(device, config.precision)
    reference_dtype = reference_precision(device, reference_dtype)
    measured: dict[str, list[PatternResult]] = {name: [] for name in PATTERNS}
    with tempfile.TemporaryDirectory(prefix="spectralstyle-bench-") as tmp:
        for round_index in range(rounds):
            for pattern in round_order(round_index):
                if on_pattern:
                    on_pattern(pattern, round_index)
                measured[pattern].append(measure_in_subprocess(pattern, config, steps, text, content_path, Path(tmp),
                                                               reference_dtype))
    return BenchReport({**config.to_dict(), "text": text, "content": content_path or "synthetic"}, steps,
                       environment_info(device), [merge_rounds(measured[name]) for name in PATTERNS], rounds)


def _child_main(argv: list[str] | None = None) -> int:
    """Entry point of the per-pattern process: writes a PatternResult as JSON to --out."""
    parser = argparse.ArgumentParser(prog="python -m spectralstyle.bench.runner")
    parser.add_argument("--pattern", required=True, choices=list(PATTERNS))
    parser.add_argument("--config", required=True, help="JSON file of TransferConfig settings")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--text", default="pop art")
    parser.add_argument("--content", default=None)
    parser.add_argument("--text-cache", default=None)
    parser.add_argument("--reference-precision", default="fp32", choices=list(REFERENCE_PRECISIONS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        config = TransferConfig(**json.loads(Path(args.config).read_text()))
        result = run_pattern(args.pattern, config, args.steps, args.text, args.content,
                             Path(args.text_cache) if args.text_cache else None, args.reference_precision)
    except SpectralStyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from spectralstyle.media.files import write_json

    write_json(result.to_dict(), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
