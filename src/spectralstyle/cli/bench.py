"""``spectralstyle bench``: the reference computation pattern versus our pipeline, timed side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from spectralstyle.cli.common import console, flag, make_console, resolve_from_flags, with_settings
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import BenchSettings, TransferConfig

BENCH_SETTINGS = ("band", "size", "crops", "crop_size", "device", "weights", "precision", "compile")
"""The transfer settings a benchmark varies; every other setting is the reference default."""


def report_table(report) -> Table:  # report: bench.BenchReport
    """One row per pattern: median step time, warm-up, peak memory, first and last total loss."""
    table = Table(title=f"spectralstyle bench · {report.config['width']}x{report.config['height']}, "
                        f"{report.config['crops']} crops of {report.config['crop_size']}, "
                        f"band {report.config['band']}, "
                        f"{report.reference.device}, {report.steps} timed steps"
                        + (f" x {report.rounds} rounds" if report.rounds > 1 else ""))
    for name, justify in (("pattern", "left"), ("precision", "left"), ("s/step", "right"), ("min s/step", "right"),
                          ("setup+warm-up s", "right"),
                          ("peak MiB", "right"), ("loss step 1", "right"), ("loss last", "right")):
        table.add_column(name, justify=justify)
    for r in report.results:
        table.add_row(r.pattern, r.precision + (" +compile" if r.compile else ""), f"{r.median_step_s:.3f}",
                      f"{min(r.step_seconds):.3f}", f"{r.setup_and_first_step_s:.1f}", f"{r.peak_memory_mib:.0f}",
                      f"{r.losses[0]['total']:.2f}",
                      f"{r.losses[-1]['total']:.2f}")
    table.caption = "\n".join(f"{r.pattern}: {r.description}" for r in report.results) + (
        f"\nreference precision: CLIP in {report.reference.precision} (StyleNet and VGG fp32); the original code "
        "runs CLIP in fp16 on CUDA and fp32 on CPU (--reference-precision)") + (
        f"\ns/step: median wall time over the timed steps (min: the fastest one, a hint when the machine is "
        f"shared); peak: {report.reference.memory_kind}")
    return table


CheckTargetFlag = flag("check-target",
                       "Exit with code 1 when this configuration has a speed target and the run misses it.")


@with_settings(BenchSettings, TransferConfig, include=BENCH_SETTINGS + ("steps", "rounds"),
               defaults={"weights": "random", "size": "512x512"})
def bench(
    text: Annotated[str, typer.Option("--text", help="Style text.")] = "pop art",
    content: Annotated[Optional[Path], typer.Option(
        "--content", help="Content image (default: a synthetic one).")] = None,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the full results as JSON here.")] = None,
    check_target: CheckTargetFlag = False,
    reference_precision: Annotated[Optional[str], typer.Option(
        "--reference-precision", help="CLIP precision of the reference pattern: fp32, fp16 or bf16 (default: what "
        "the original code uses on the device, fp16 on CUDA, fp32 on CPU).")] = None,
    *,
    settings: dict[str, Any],
) -> None:
    """Seconds per step and peak memory of the reference pattern and of our pipeline, and the speedup."""
    from spectralstyle.bench.runner import run_benchmark
    from spectralstyle.media.files import ensure_writable_dir, write_json
    from spectralstyle.media.images import check_image

    timing = resolve_from_flags(BenchSettings, None, settings)
    steps, rounds = timing.steps, timing.rounds
    config = resolve_from_flags(TransferConfig, None, {k: v for k, v in settings.items() if k in BENCH_SETTINGS})
    if content is not None:
        check_image(content)  # a bad image fails before any model is loaded (its header only)
    if json_out is not None:  # before the benchmark, not after its minutes of work
        if json_out.is_dir():
            raise SpectralStyleError(f"--json {json_out} is a folder; give a file name")
        ensure_writable_dir(json_out.parent, "folder of --json")
    report = run_benchmark(config, steps, text, str(content) if content else None,
                           on_pattern=lambda name, k: console.print(
                               f"[dim]running the {name} pattern"
                               + (f" (round {k + 1} of {rounds})" if rounds > 1 else "")
                               + "…[/]"), rounds=rounds, reference_dtype=reference_precision)
    out = make_console()
    out.print(report_table(report))
    diffs = ", ".join(f"{term} {diff:.1e}" for term, diff in report.max_loss_differences().items())
    out.print(f"peak memory ratio (optimized / reference): {report.memory_ratio:.2f}", highlight=False)
    out.print(f"largest relative loss difference per step, optimized ({report.optimized.precision}) vs reference "
              f"({report.reference.precision}): {diffs}", highlight=False)
    out.print(report.target_line(), highlight=False)
    if json_out is not None:
        write_json(report.to_dict(), json_out)
        out.print(f"wrote {json_out}", highlight=False)
    typer.echo(f"speedup: {report.speedup:.2f}x")
    if check_target and report.target_met() is False:
        raise typer.Exit(1)
