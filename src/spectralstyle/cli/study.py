"""``spectralstyle study``: the paper's study (or any content x prompt x band grid) as a batch, judged by an
independent CLIP and summarised with bootstrap intervals. The work is in :mod:`spectralstyle.study`; the
grid runs through ``batch``'s runner and display, so it resumes, shards and never overwrites like a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from rich.markup import escape

from spectralstyle.cli.batch import BandsOpt, OverwriteFlag, PromptsOpt, ShardOpt, TextOpt
from spectralstyle.cli.common import (
    config_option,
    console,
    interrupted_exit,
    log,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import RunControl, TransferConfig
from spectralstyle.study.protocol import DEFAULT_JUDGE, PAPER_SETTINGS

JOB_FAILED_EXIT = 1

ContentArg = Annotated[list[Path], typer.Argument(metavar="CONTENT...", help="Content images, or folders of them.")]
StudyOutOpt = Annotated[Path, typer.Option(
    "--out", "-o", help="Study folder: results, .jobs/, table.csv, table.md, report.html.")]
ProtocolOpt = Annotated[Optional[Literal["paper", "custom"]], typer.Option(
    "--protocol", help="paper: the authors' 12 styles x none/c1/c2/c3 at 512x512, 200 steps, 64 crops, seed 1234 "
                       "(default without --text/--prompts); custom: your --text/--prompts and --bands.")]
JudgeOpt = Annotated[Literal["ViT-B/16", "ViT-L/14"], typer.Option(
    "--judge", help="CLIP that scores the results (not the guide, which would grade its own work).")]
JudgeWeightsOpt = Annotated[Optional[str], typer.Option(
    "--judge-weights", metavar="FILE", help="The judge's CLIP weights from a file or folder of your own.")]
PhaseOpt = Annotated[Literal["all", "run", "summary"], typer.Option(
    "--phase", help="run: only this shard's jobs; summary: only judge and summarise (every job finished); "
                    "all: both (the summary once every job is done).")]
MinConfidenceOpt = Annotated[float, typer.Option(
    "--min-confidence", help="Ignore OCR boxes read with lower confidence (0-1).")]
RoundsOpt = Annotated[int, typer.Option("--rounds", min=100, help="Bootstrap rounds of the intervals.")]


def protocol_inputs(protocol: str | None, prompts: Path | None, text: list[str] | None, bands: list[str] | None,
                    settings: dict[str, Any]) -> tuple[list[str] | None, list[str] | None, dict[str, Any]]:
    """(prompts or None = read from --prompts/--text, bands or None = --bands, flags with the protocol's values)."""
    from spectralstyle.study.pipeline import paper_protocol

    own_prompts = bool(text) or prompts is not None
    if protocol is None:
        protocol = "custom" if own_prompts else "paper"
    if protocol == "custom":
        if not own_prompts:
            raise SpectralStyleError("--protocol custom needs --text TEXT or --prompts FILE")
        return None, bands, settings
    if own_prompts:
        raise SpectralStyleError("--protocol paper runs the paper's 12 styles; give --text/--prompts without it")
    paper = paper_protocol()
    flags = dict(settings)
    if flags.get("size") is None:
        flags["size"] = f"{PAPER_SETTINGS['width']}x{PAPER_SETTINGS['height']}"
    for name in ("steps", "crops", "seed"):
        if flags.get(name) is None:
            flags[name] = PAPER_SETTINGS[name]
    return paper.prompts, bands or paper.bands, flags


@stops_at_step_boundary
@with_settings(TransferConfig, RunControl)
def study(
    content: ContentArg,
    out: StudyOutOpt,
    protocol: ProtocolOpt = None,
    text: TextOpt = None,
    prompts: PromptsOpt = None,
    bands: BandsOpt = None,
    judge: JudgeOpt = DEFAULT_JUDGE,
    judge_weights: JudgeWeightsOpt = None,
    phase: PhaseOpt = "all",
    shard: ShardOpt = None,
    min_confidence: MinConfidenceOpt = 0.6,
    rounds: RoundsOpt = 2000,
    config_file: config_option(TransferConfig, RunControl) = None,
    overwrite: OverwriteFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Run a content x prompt x band grid, judge it with an independent CLIP, write table.csv/.md and report.html.

    Without --text/--prompts it is the paper's study (--protocol paper). Shard it like a batch (--shard I/N,
    Slurm arrays: scripts/study_slurm.sh), then `--phase summary` once every shard is done.
    """
    from spectralstyle.media.files import check_exists

    for path in content:
        check_exists(path, "content")  # within a second, before torch
    from spectralstyle.bands import split_band_list
    from spectralstyle.batch.plan import collect_prompts
    from spectralstyle.study.grid import grid_progress, study_plan
    from spectralstyle.study.pipeline import check_judge, find_judge

    if settings.get("band") is not None:
        raise SpectralStyleError("a study runs several bands: give --bands (for example --bands none,c2), not --band")
    if not 0 <= min_confidence <= 1:
        raise SpectralStyleError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    check_judge(judge)
    prompt_list, band_specs, flags = protocol_inputs(protocol, prompts, text, bands, settings)
    config = resolve_from_flags(TransferConfig, config_file, flags)
    prompt_list = prompt_list or collect_prompts(prompts, text)
    try:
        band_list = [b.spec for b in split_band_list(band_specs)] if band_specs else ["none", config.band]
    except ValueError as exc:
        raise SpectralStyleError(str(exc)) from None
    plan = study_plan(content, prompt_list, band_list, config, out, overwrite=overwrite)
    if phase != "run":
        find_judge(config, judge, judge_weights)
    models = None
    if phase in ("all", "run"):
        summarises, models = run_grid(plan, out, config, shard,
                                       resolve_from_flags(RunControl, config_file, settings), overwrite)
        if not summarises or phase == "run":
            return
    progress = grid_progress(plan, out)
    if phase == "all" and not progress.complete:
        console.print(f"study: {progress.finished} of {progress.total} jobs finished; the others belong to other "
                      "shards: when all are done, run the same command with --phase summary", highlight=False)
        return
    summarize(plan, out, config, judge, judge_weights, band_list, min_confidence, rounds, models)


def run_grid(plan: list[Any], out: Path, config: TransferConfig, shard: str | None, control: RunControl,
             overwrite: bool) -> tuple[bool, Any]:
    """This process's jobs of the grid with batch's ``run_batch`` and display: (whether this process may
    summarise, the guide's models, loaded once for the runs and the summary); rank 0 summarises."""
    from spectralstyle.batch.jobs import INTERRUPTED
    from spectralstyle.batch.runner import run_batch
    from spectralstyle.batch.shards import DistEnv, resolve_shard
    from spectralstyle.cli.batch import batch_display, report, start_shard
    from spectralstyle.runs.models import Models

    dist = DistEnv.from_env()
    my_shard = resolve_shard(shard, dist)
    dev, _, prefix, todo = start_shard(plan, out, config.device, dist, my_shard, "study", "grid")
    log.info("study: grid of %d jobs, shard %s, %d to run, config %s", len(plan), my_shard, todo, config.digest())
    models = Models.load(config.replace(device=str(dev))) if todo else None
    with batch_display(todo, config.steps, prefix, my_shard.count == 1 and console.is_terminal) as hooks:
        outcome = run_batch(plan, out, device=dev, shard=my_shard, dist=dist, config=config, overwrite=overwrite,
                            control=control, hooks=hooks, models=models)
    interrupted = [r for r in outcome.results if r.status == INTERRUPTED]
    if interrupted:
        raise interrupted_exit(f"{interrupted[0].describe}: {interrupted[0].error}")
    if report(outcome.merged, outcome.results, dist, my_shard, prefix, outcome.manifest):
        raise typer.Exit(JOB_FAILED_EXIT)
    return dist.rank == 0, models


def summarize(plan: list[Any], out: Path, config: TransferConfig, judge: str, judge_weights: str | None,
              bands: list[str], min_confidence: float, rounds: int, models: Any = None) -> None:
    from spectralstyle.study.pipeline import summarize_study

    setup_log_file(out)
    with console.status("judging") as status:
        def loading() -> None:
            status.update(f"loading the judge {judge} and the guide {config.clip_model}")

        def start(n: int, job: Any) -> None:
            status.update(f"judging {escape(job.describe())} ({n}/{len(plan)})")

        files = summarize_study(plan, out, config, judge, bands=bands, judge_weights=judge_weights,
                                min_confidence=min_confidence, rounds=rounds, models=models, on_loading=loading,
                                on_start=start)
    table = (out / "table.md").read_text(encoding="utf-8").split("\n## ")[0]
    console.print(escape(table), highlight=False, soft_wrap=True)
    log.info("study summary of %d results in %s", len(plan), out)
    written = ", ".join(str(f) for f in files[:3])
    console.print(f"[green]wrote[/] {escape(written)} and {escape(str(out / 'report.html'))}", highlight=False,
                  soft_wrap=True)
