"""``spectralstyle batch``: every (image, prompt, band) of a folder, resumable, split over GPUs and machines.

The plan, the split and the manifest are in :mod:`spectralstyle.batch`; this module parses options,
shows progress and the final summary, and picks the exit code (0 all done, 1 a job failed, 2 user
error, 130 interrupted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .batch import (
    FAILED, FINISHED, INTERRUPTED, SKIPPED, BatchHooks, BatchRunner, DistEnv, Job, JobResult, Shard,
    collect_prompts, crash_after_from_env, gather_results, job_action, make_plan, make_train_plan, plan_digest, rank_device, read_state,
    resolve_shard, shard_jobs, split_bands, write_manifest,
)
from .cli_common import (
    INTERRUPTED_EXIT, BandOpt, ClipWeightsOpt, CompileOpt, ConfigOpt, ContrastOpt, CropSizeOpt, CropsOpt, DeviceOpt,
    LambdaContentOpt, LambdaGlobalOpt, LambdaPatchOpt, LambdaTvOpt, LrOpt, PrecisionOpt, SaveEveryOpt,
    SeedOpt, SizeOpt, SourceEncoderOpt, StepsOpt, ThresholdOpt, VggWeightsOpt, WeightsOpt, config_from_flags, console,
    fail, log, make_console, setup_log_file, user_errors,
)
from .cli_train import PreviewOpt, TrainSizeOpt, train_settings
from .errors import SpectralStyleError
from .spectral import band_label

JOB_FAILED_EXIT = 1

PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", "-p", help="Text file: one prompt per line; blank lines and # comments ignored.")]
TextOpt = Annotated[Optional[list[str]], typer.Option("--text", "-t", metavar="TEXT", help="A prompt (repeat for several); added to --prompts.")]
BandsOpt = Annotated[Optional[list[str]], typer.Option("--bands", metavar="BANDS", help="Bands to run, comma separated: c2,none (index specs: '4-7,16-49'; separate two with ';').")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Run only shard I/N of the plan (0-based), e.g. for a Slurm array; defaults to SLURM_ARRAY_TASK_ID/COUNT.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="List the plan and what a run would do; load no model.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="transfer: one stylised image per (image, prompt, band); train: one style model per (prompt, band) over all images of the folder.")]
BatchOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder; holds the results and the manifest (.jobs/, manifest.json).")]


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


@user_errors
def batch(
    content_dir: Annotated[Path, typer.Argument(help="Folder of content images (jpg, png, ...).")],
    out: BatchOutOpt,
    prompts: PromptsOpt = None,
    text: TextOpt = None,
    bands: BandsOpt = None,
    shard: ShardOpt = None,
    dry_run: DryRunOpt = False,
    config_file: ConfigOpt = None,
    band: BandOpt = None,
    steps: StepsOpt = None,
    size: SizeOpt = None,
    crops: CropsOpt = None,
    crop_size: CropSizeOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    weights: WeightsOpt = None,
    clip_weights: ClipWeightsOpt = None,
    vgg_weights: VggWeightsOpt = None,
    save_every: SaveEveryOpt = None,
    contrast: ContrastOpt = None,
    lambda_patch: LambdaPatchOpt = None,
    lambda_global: LambdaGlobalOpt = None,
    lambda_content: LambdaContentOpt = None,
    lambda_tv: LambdaTvOpt = None,
    threshold: ThresholdOpt = None,
    source_encoder: SourceEncoderOpt = None,
    precision: PrecisionOpt = None,
    compile: CompileOpt = None,
    save_model: Annotated[bool, typer.Option("--save-model", help="Also save each trained StyleNet (for `apply`).")] = False,
    mode: ModeOpt = "transfer",
    batch_size: Annotated[int, typer.Option("--batch", help="--mode train: content images per step.")] = 4,
    train_size: TrainSizeOpt = None,
    preview: PreviewOpt = 4,
) -> None:
    """Stylise every image of CONTENT_DIR with every prompt and band; re-running skips finished jobs.

    Scale out with `torchrun --nproc-per-node K -m spectralstyle batch ...` (one GPU per rank) or a Slurm array with --shard; every job runs in exactly one process.
    """
    config = config_from_flags(config_file, size, locals())
    if band is not None and bands:
        raise SpectralStyleError("give --band or --bands, not both")
    band_list = split_bands(bands) if bands else [config.band]
    prompt_list = collect_prompts(prompts, text)
    if mode == "train":
        plan = make_train_plan(content_dir, prompt_list, band_list, config,
                               train_settings(batch_size, train_size, preview, config), out)
    elif mode == "transfer":
        plan = make_plan(content_dir, prompt_list, band_list, config, out)
    else:
        raise SpectralStyleError(f"unknown --mode {mode!r}; use transfer or train")
    subfolders = [p for p in Path(content_dir).iterdir() if p.is_dir() and not p.name.startswith(".")]
    if subfolders:
        console.print(f"[yellow]note:[/] {len(subfolders)} subfolder(s) of {escape(str(content_dir))} are not searched "
                      "(only images directly in it are used)", highlight=False)
    dist = DistEnv.from_env()
    my_shard = resolve_shard(shard, dist)
    if dry_run:
        if dist.rank == 0:
            print_plan(plan, out, my_shard.count, len(prompt_list), len(band_list))
        return
    setup_log_file(out if my_shard.count == 1 else out / "logs" / f"shard{my_shard.index}-of-{my_shard.count}")
    dev = rank_device(config.device, dist)
    mine = shard_jobs(plan, my_shard)
    prefix = escape(f"[shard {my_shard}] ") if my_shard.count > 1 else ""
    todo = sum(job_action(j, out, read_state(out, j.job_id))[0] == "run" for j in mine)
    console.print(f"{prefix}batch: {len(plan)} jobs in the plan; this process (device {dev}) has {len(mine)}: "
                  f"{todo} to run, {len(mine) - todo} already finished", highlight=False, soft_wrap=True)
    log.info("batch %s: plan %d jobs, shard %s, %d to run, device %s, config %s", content_dir, len(plan), my_shard,
             todo, dev, config.digest())
    runner = BatchRunner(out, my_shard, dev, save_model=save_model, crash_after=crash_after_from_env())
    live = my_shard.count == 1 and console.is_terminal
    results = run_shard(runner, mine, todo, config.steps, prefix, live)

    interrupted = [r for r in results if r.status == INTERRUPTED]
    if interrupted:
        write_manifest(out, plan, config)
        raise fail(f"{prefix}interrupted: {escape(interrupted[0].error)}; run the same command again to resume",
                   INTERRUPTED_EXIT)
    failed = report(gather_results(results, dist, plan_digest(plan)), results, dist, my_shard, prefix,
                    write_manifest(out, plan, config))
    if failed:
        raise typer.Exit(JOB_FAILED_EXIT)


def report(merged: list[JobResult] | None, results: list[JobResult], dist: DistEnv, my_shard: Shard, prefix: str,
           manifest: Path) -> int:
    """The end-of-run summary: rank 0 for all ranks when they could be merged, else each process for itself."""
    if merged is not None and dist.rank != 0:
        return 0  # rank 0 prints the summary of all ranks and sets the exit code
    if merged is None and dist.world_size > 1:
        console.print(f"{prefix}[yellow]could not merge the results of the ranks (see the log); this rank's jobs:[/]",
                      highlight=False)
    if merged is None:  # this process's jobs only
        return print_summary(results, prefix, manifest)
    task = Shard(my_shard.index // dist.world_size, my_shard.count // dist.world_size)  # all ranks of this launch
    return print_summary(merged, escape(f"[shard {task}] ") if task.count > 1 else "", manifest)


def run_shard(runner: BatchRunner, jobs: list[Job], todo: int, steps: int, prefix: str, live: bool) -> list[JobResult]:
    """Run with a live progress display on a terminal (one process), else one line per job."""
    if not live:
        runner.hooks = BatchHooks(
            on_models_loading=lambda dev: console.print(f"{prefix}loading CLIP and VGG on {dev}", highlight=False),
            on_job_end=lambda job, r: console.print(f"{prefix}{result_line(r)}", highlight=False, soft_wrap=True),
        )
        return runner.run(jobs)
    from .cli import progress_bar

    with progress_bar() as progress:
        overall = progress.add_task("jobs", total=todo, losses="")
        current = progress.add_task("", total=steps, losses="", visible=False)

        def start(job: Job, position: int, total: int) -> None:
            progress.reset(current, total=job.config.steps, description=escape(job.describe()), losses="", visible=True)

        def step(job: Job, n: int, losses: dict[str, float]) -> None:
            progress.update(current, completed=n, losses=f"total {losses['total']:.1f}")

        def end(job: Job, result: JobResult) -> None:
            progress.advance(overall)
            progress.console.print(result_line(result), highlight=False, soft_wrap=True)

        runner.hooks = BatchHooks(start, step, end, lambda dev: progress.console.print(f"loading CLIP and VGG on {dev}"))
        results = runner.run(jobs)
        progress.update(current, visible=False)
    return results


def result_line(result: JobResult) -> str:
    if result.status == FINISHED:
        return f"[green]done[/] {escape(result.describe)} in {result.wall_time_s:.1f}s  [dim]{escape(result.image)}[/]"
    return f"[red]{result.status}[/] {escape(result.describe)}: {escape(result.error)}"


def print_summary(results: list[JobResult], prefix: str, manifest: Path) -> int:
    """Counts, then one line per failed job; returns the number of failures."""
    counts = {s: sum(r.status == s for r in results) for s in (FINISHED, SKIPPED, FAILED)}
    failed = [r for r in results if r.status == FAILED]
    colour = "red" if failed else "green"
    console.print(f"{prefix}[bold {colour}]batch: {len(results)} jobs[/]: {counts[FINISHED]} finished, "
                  f"{counts[SKIPPED]} skipped (finished before), {counts[FAILED]} failed  [dim]{escape(str(manifest))}[/]",
                  highlight=False, soft_wrap=True)
    for r in failed:
        console.print(f"{prefix}  [red]failed[/] {escape(r.describe)} [dim]({r.job_id})[/]: {escape(r.error)}", highlight=False, soft_wrap=True)
    return len(failed)


def print_plan(plan: list[Job], out: Path, shards: int, n_prompts: int, n_bands: int) -> None:
    """The dry run: a table of every job, its shard and what a run would do with it (on stdout)."""
    table = Table(title=f"{len(plan)} jobs = {len({j.name for j in plan})} images x {n_prompts} prompts x {n_bands} bands",
                  title_justify="left")
    for column in ("#", "job", "content", "prompt", "band", *(["shard"] if shards > 1 else []), "action", "output"):
        table.add_column(column, overflow="fold", no_wrap=column in ("#", "job", "band", "shard"))
    actions: dict[str, int] = {}
    for k, job in enumerate(plan):
        action, why = job_action(job, out, read_state(out, job.job_id))
        actions[why] = actions.get(why, 0) + 1
        style = "dim" if action == "skip" else ""
        table.add_row(str(k), job.job_id, escape(job.name), escape(job.text), band_label(job.band),
                      *([str(k % shards)] if shards > 1 else []), f"{action} ({why})", escape(job.image_path(out).name),
                      style=style)
    stdout = make_console()
    stdout.print(table)
    stdout.print(", ".join(f"{n} {why}" for why, n in actions.items()), highlight=False)
