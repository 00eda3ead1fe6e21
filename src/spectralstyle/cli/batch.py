"""``spectralstyle batch``: every (image, prompt, band) of a folder, resumable, split over GPUs and machines.

The plan, the split and the manifest are in :mod:`spectralstyle.batch.runner`; this module parses options,
shows progress and the final summary, and picks the exit code (0 all done, 1 a job failed, 2 user
error, 130 interrupted).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

import typer
from rich.markup import escape
from rich.table import Table

from spectralstyle.cli.common import (
    CheckpointEveryOpt, ConfigOpt, ResumeOpt, console, flag, interrupted_exit, log, make_console, progress_bar,
    resolve_from_flags, setup_log_file, user_errors, with_settings,
)
from spectralstyle.cli.train import BatchOpt, PreviewOpt, TrainSizeOpt
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import DEFAULT_CHECKPOINT_EVERY, RunControl, TransferConfig

if TYPE_CHECKING:
    from rich.console import Console

    from spectralstyle.batch.runner import BatchRunner, DistEnv, Job, JobResult, Shard

JOB_FAILED_EXIT = 1

PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", "-p", help="Text file: one prompt per line; blank lines and # comments ignored.")]
TextOpt = Annotated[Optional[list[str]], typer.Option("--text", "-t", metavar="TEXT", help="A prompt (repeat for several); added to --prompts.")]
BandsOpt = Annotated[Optional[list[str]], typer.Option("--bands", metavar="BANDS", help="Bands to run, comma separated: c2,none (index specs: '4-7,16-49'; separate two with ';').")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Run only shard I/N of the plan (0-based), e.g. for a Slurm array; defaults to SLURM_ARRAY_TASK_ID/COUNT.")]
ModeOpt = Annotated[Literal["transfer", "train"], typer.Option("--mode", help="transfer: one stylised image per (image, prompt, band); train: one style model per (prompt, band) over all images of the folder.")]
BatchOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder; holds the results and the manifest (.jobs/, manifest.json).")]


DryRunFlag = flag("dry-run", "List the plan and what a run would do; load no model.")
SaveModelFlag = flag("save-model", "Also save each trained StyleNet (for `apply`).")
OverwriteFlag = flag("overwrite", "Replace results of other settings or content under the same name "
                                  "(default: write beside them, with a short config hash).")


@user_errors
@stops_at_step_boundary
@with_settings(TransferConfig)
def batch(
    content_dir: Annotated[Path, typer.Argument(help="Folder of content images (jpg, png, ...).")],
    out: BatchOutOpt,
    prompts: PromptsOpt = None,
    text: TextOpt = None,
    bands: BandsOpt = None,
    shard: ShardOpt = None,
    dry_run: DryRunFlag = False,
    config_file: ConfigOpt = None,
    save_model: SaveModelFlag = False,
    overwrite: OverwriteFlag = False,
    mode: ModeOpt = "transfer",
    batch_size: BatchOpt = 4,
    train_size: TrainSizeOpt = None,
    preview: PreviewOpt = 4,
    checkpoint_every: CheckpointEveryOpt = DEFAULT_CHECKPOINT_EVERY,
    resume: ResumeOpt = True,
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise every image of CONTENT_DIR with every prompt and band; re-running skips finished jobs.

    Scale out with `torchrun --nproc-per-node K -m spectralstyle batch ...` (one GPU per rank) or a Slurm array with --shard; every job runs in exactly one process.
    """
    from spectralstyle.method.bands import split_band_list
    from spectralstyle.media.images import list_images
    from spectralstyle.runs.preflight import check_free_space, input_notes, needed_bytes
    from spectralstyle.runs.naming import content_tag, split_own_results
    from spectralstyle.batch.runner import (
        INTERRUPTED, BatchRunner, DistEnv, collect_prompts, crash_after_from_env, gather_results, job_action,
        make_plan, plan_digest, rank_device, read_state, resolve_shard, shard_jobs, write_manifest,
    )

    from spectralstyle.method.controls import ResultControls

    config = resolve_from_flags(TransferConfig, config_file, settings)
    ResultControls.of(config).check_mask(config.width, config.height)  # a missing or empty mask: before any job
    control = RunControl(checkpoint_every, resume)
    if settings.get("band") is not None and bands:
        raise SpectralStyleError("give --band or --bands, not both")
    try:
        band_list = [b.spec for b in split_band_list(bands)] if bands else [config.band]
    except ValueError as exc:
        raise SpectralStyleError(str(exc)) from None
    if not band_list:
        raise SpectralStyleError("--bands is empty; use for example --bands c2,none")
    prompt_list = collect_prompts(prompts, text)
    if mode == "train":
        from spectralstyle.batch.runner import make_train_plan
        from spectralstyle.cli.train import train_settings

        plan = make_train_plan(content_dir, prompt_list, band_list, config,
                               train_settings(batch_size, train_size, preview, config), out)
    elif mode == "transfer":
        plan = make_plan(content_dir, prompt_list, band_list, config, out, overwrite=overwrite)
    else:
        raise SpectralStyleError(f"unknown --mode {mode!r}; use transfer or train")
    own = split_own_results(list_images(content_dir))[1]
    if own:
        console.print(f"[yellow]note:[/] {len(own)} image(s) in {escape(str(content_dir))} were written by spectralstyle "
                      f"(like {escape(own[0].name)}) and are not used as content", highlight=False, soft_wrap=True)
    moved = [j for j in plan if j.stem.endswith(j.config_hash[:8]) or j.stem.endswith(content_tag(j.content))]
    if moved:
        console.print(f"[yellow]note:[/] {len(moved)} job(s) write beside results of other settings or content that "
                      f"have their names (like {escape(moved[0].stem)}.png); --overwrite replaces those instead",
                      highlight=False, soft_wrap=True)
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
    check_free_space(out, needed_bytes(config, todo, save_model), f"the {todo} result(s) to run")
    for note in input_notes(sorted({j.content for j in plan}), config.size):
        console.print(f"{prefix}[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    runner = BatchRunner(out, my_shard, dev, save_model=save_model, crash_after=crash_after_from_env(), control=control,
                         overwrite=overwrite)
    live = my_shard.count == 1 and console.is_terminal
    results = run_shard(runner, mine, todo, config.steps, prefix, live)

    interrupted = [r for r in results if r.status == INTERRUPTED]
    if interrupted:
        write_manifest(out, plan, config)
        shard_label = f"[shard {my_shard}] " if my_shard.count > 1 else ""  # plain text: interrupted_exit escapes
        raise interrupted_exit(f"{shard_label}{interrupted[0].describe}: {interrupted[0].error}")
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
    from spectralstyle.batch.runner import Shard

    task = Shard(my_shard.index // dist.world_size, my_shard.count // dist.world_size)  # all ranks of this launch
    return print_summary(merged, escape(f"[shard {task}] ") if task.count > 1 else "", manifest)


def run_shard(runner: BatchRunner, jobs: list[Job], todo: int, steps: int, prefix: str, live: bool) -> list[JobResult]:
    """Run with a live progress display on a terminal (one process), else one line per job."""
    from spectralstyle.batch.runner import BatchHooks

    if not live:
        runner.hooks = BatchHooks(
            on_models_loading=lambda dev: console.print(f"{prefix}loading CLIP and VGG on {dev}", highlight=False),
            on_job_end=lambda job, r: print_job_end(console, r, prefix),
            on_note=lambda message: console.print(f"{prefix}{escape(message)}", highlight=False, soft_wrap=True),
        )
        return runner.run(jobs)
    with progress_bar() as progress:
        overall = progress.add_task("jobs", total=todo, losses="")
        current = progress.add_task("", total=steps, losses="", visible=False)

        def start(job: Job, position: int, total: int) -> None:
            progress.reset(current, total=job.config.steps, description=escape(job.describe()), losses="", visible=True)

        def step(job: Job, n: int, losses: dict[str, float]) -> None:
            progress.update(current, completed=n, losses=f"total {losses['total']:.1f}")

        def end(job: Job, result: JobResult) -> None:
            progress.advance(overall)
            print_job_end(progress.console, result)

        runner.hooks = BatchHooks(start, step, end, lambda dev: progress.console.print(f"loading CLIP and VGG on {dev}"),
                                  lambda message: progress.console.print(escape(message), highlight=False, soft_wrap=True))
        results = runner.run(jobs)
        progress.update(current, visible=False)
    return results


def print_job_end(out: Console, result: JobResult, prefix: str = "") -> None:
    """One line per job; none for an interrupted one, whose line ends the command."""
    from spectralstyle.batch.runner import INTERRUPTED

    if result.status != INTERRUPTED:
        out.print(f"{prefix}{result_line(result)}", highlight=False, soft_wrap=True)


def result_line(result: JobResult) -> str:
    from spectralstyle.batch.runner import ELSEWHERE, FINISHED

    if result.status == ELSEWHERE:
        return f"[yellow]elsewhere[/] {escape(result.describe)}: {escape(result.error)}"
    if result.status == FINISHED:
        return f"[green]done[/] {escape(result.describe)} in {result.wall_time_s:.1f}s  [dim]{escape(result.image)}[/]"
    return f"[red]{result.status}[/] {escape(result.describe)}: {escape(result.error)}"


def print_summary(results: list[JobResult], prefix: str, manifest: Path) -> int:
    """Counts, then one line per failed job; returns the number of failures."""
    from spectralstyle.batch.runner import ELSEWHERE, FAILED, FINISHED, SKIPPED

    counts = {s: sum(r.status == s for r in results) for s in (FINISHED, SKIPPED, ELSEWHERE, FAILED)}
    failed = [r for r in results if r.status == FAILED]
    colour = "red" if failed else "green"
    elsewhere = f"{counts[ELSEWHERE]} running elsewhere (another process owns them), " if counts[ELSEWHERE] else ""
    console.print(f"{prefix}[bold {colour}]batch: {len(results)} jobs[/]: {counts[FINISHED]} finished, "
                  f"{counts[SKIPPED]} skipped (finished before), {elsewhere}{counts[FAILED]} failed  "
                  f"[dim]{escape(str(manifest))}[/]", highlight=False, soft_wrap=True)
    for r in failed:
        console.print(f"{prefix}  [red]failed[/] {escape(r.describe)} [dim]({r.job_id})[/]: {escape(r.error)}", highlight=False, soft_wrap=True)
    return len(failed)


def print_plan(plan: list[Job], out: Path, shards: int, n_prompts: int, n_bands: int) -> None:
    """The dry run: a table of every job, its shard and what a run would do with it (on stdout)."""
    from spectralstyle.batch.runner import STATE_DIR, job_action, read_state
    from spectralstyle.batch.claims import holder

    table = Table(title=f"{len(plan)} jobs = {len({j.name for j in plan})} images x {n_prompts} prompts x {n_bands} bands",
                  title_justify="left")
    for column in ("#", "job", "content", "prompt", "band", *(["shard"] if shards > 1 else []), "action", "output"):
        table.add_column(column, overflow="fold", no_wrap=column in ("#", "job", "band", "shard"))
    actions: dict[str, int] = {}
    for k, job in enumerate(plan):
        action, why = job_action(job, out, read_state(out, job.job_id))
        owner = holder(out / STATE_DIR, job.job_id) if action == "run" else None
        if owner:
            why = f"running elsewhere: {owner.get('host')} pid {owner.get('pid')}"
        actions[why] = actions.get(why, 0) + 1
        style = "dim" if action == "skip" else ""
        table.add_row(str(k), job.job_id, escape(job.name), escape(job.text), job.config.band_value.label,
                      *([str(k % shards)] if shards > 1 else []), f"{action} ({why})", escape(job.image_path(out).name),
                      style=style)
    stdout = make_console()
    stdout.print(table)
    stdout.print(", ".join(f"{n} {why}" for why, n in actions.items()), highlight=False)
