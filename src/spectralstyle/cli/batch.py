"""``spectralstyle batch``: every (image, prompt, band) of a folder, resumable, split over GPUs and machines.

The plan, the split, the manifest and the runner are in :mod:`spectralstyle.batch` (plan, shards, manifest,
runner); this module parses options, shows progress and the final summary, and picks the exit code (0 all
done, 1 a job failed, 2 user error, 75 ``--no-wait`` left jobs to other processes, 130 interrupted).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

import typer
from rich.markup import escape
from rich.table import Table

from spectralstyle.cli.common import (
    JsonFlag,
    config_option,
    console,
    duration,
    flag,
    interrupted_exit,
    loading_models,
    log,
    make_console,
    print_note,
    print_results,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.cli.train import resolve_training
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import RunControl, TrainSettings, TransferConfig

if TYPE_CHECKING:
    from rich.console import Console

    from spectralstyle.batch.jobs import Job, JobResult
    from spectralstyle.batch.runner import BatchHooks
    from spectralstyle.batch.shards import DistEnv, Shard

JOB_FAILED_EXIT = 1
LEFT_TO_OTHERS_EXIT = 75
"""``--no-wait`` and jobs of the plan still running in another process: come back later (sysexits' EX_TEMPFAIL)."""

SETTINGS = (TransferConfig, TrainSettings, RunControl)
PromptsOpt = Annotated[Optional[Path], typer.Option(
    "--prompts", "-p", help="Text file: one prompt per line; blank lines and # comments ignored.")]
TextOpt = Annotated[Optional[list[str]], typer.Option(
    "--text", "-t", metavar="TEXT", help="A prompt (repeat for several); added to --prompts.")]
BandsOpt = Annotated[Optional[list[str]], typer.Option(
    "--bands", metavar="BANDS",
    help="Bands to run, comma separated: c2,none (index specs: '4-7,16-49'; separate two with ';').")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="I/N",
    help="Run only shard I/N of the plan (0-based), e.g. for a Slurm array; defaults to SLURM_ARRAY_TASK_ID/COUNT.")]
ModeOpt = Annotated[Literal["transfer", "train"], typer.Option(
    "--mode", help="transfer: one stylised image per (image, prompt, band); train: one style model per (prompt, "
    "band) over all images of the folder.")]
BatchOutOpt = Annotated[Path, typer.Option(
    "--out", "-o", help="Output folder; holds the results and the manifest (.jobs/, manifest.json).")]


DryRunFlag = flag("dry-run", "List the plan and what a run would do; load no model.")
SaveModelFlag = flag("save-model", "Also save each trained StyleNet (for `apply`).")
OverwriteFlag = flag("overwrite", "Replace results of other settings or content under the same name "
                                  "(default: write beside them, with a short config hash).")
NoWaitFlag = flag("no-wait", "Exit (code 75) instead of waiting when jobs of the plan run in another process "
                             "(default: wait for them, and take over any whose process dies).")


@stops_at_step_boundary
@with_settings(*SETTINGS, helps={"batch": "mode train: content images per step (CLIPstyler's fast mode uses 4)."})
def batch(
    content_dir: Annotated[Path, typer.Argument(help="Folder of content images (jpg, png, ...).")],
    out: BatchOutOpt,
    prompts: PromptsOpt = None,
    text: TextOpt = None,
    bands: BandsOpt = None,
    shard: ShardOpt = None,
    dry_run: DryRunFlag = False,
    config_file: config_option(*SETTINGS) = None,
    save_model: SaveModelFlag = False,
    overwrite: OverwriteFlag = False,
    mode: ModeOpt = "transfer",
    no_wait: NoWaitFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise every image of CONTENT_DIR with every prompt and band; re-running skips finished jobs.

    Scale out with `torchrun --nproc-per-node K -m spectralstyle batch ...` (one GPU per rank) or a Slurm array
    with --shard; every job runs in exactly one process. Prints every file written on stdout (--json: a summary).
    """
    from spectralstyle.media.files import check_exists

    check_exists(content_dir, "content folder", "folder")  # within a second, before torch
    if prompts is not None:
        check_exists(prompts, "prompts file", "file")
    from spectralstyle.batch.plan import band_specs, build_plan, collect_prompts
    from spectralstyle.batch.runner import run_batch
    from spectralstyle.batch.shards import DistEnv, resolve_shard
    from spectralstyle.media.images import list_images
    from spectralstyle.method.controls import ResultControls
    from spectralstyle.runs.naming import content_tag, split_own_results
    from spectralstyle.runs.preflight import check_free_space, input_notes, needed_bytes, output_pixels

    config, train = resolve_training(config_file, settings)
    ResultControls.of(config).check_mask(config.width, config.height)  # a missing or empty mask: before any job
    control = resolve_from_flags(RunControl, config_file, settings)
    band_list = band_specs(bands, config, band_given=settings.get("band") is not None)
    prompt_list = collect_prompts(prompts, text)
    plan = build_plan(content_dir, prompt_list, band_list, config, out, mode=mode,
                      train=train if mode == "train" else None, overwrite=overwrite)
    if mode == "transfer":
        print_note(capped_outputs_note(sorted({j.content for j in plan}), config))
    own = split_own_results(list_images(content_dir))[1]
    if own:
        console.print(f"[yellow]note:[/] {len(own)} image(s) in {escape(str(content_dir))} were written by "
                      "spectralstyle "
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
    dev, mine, prefix, todo = start_shard(plan, out, config.device, dist, my_shard, "batch", "plan")
    log.info("batch %s: plan %d jobs, shard %s, %d to run, device %s, config %s", content_dir, len(plan), my_shard,
             todo, dev, config.digest())
    largest = max((j.config for j in mine), key=lambda c: c.width * c.height + output_pixels(c), default=config)
    check_free_space(out, needed_bytes(largest, todo, save_model), f"the {todo} result(s) to run")
    for line in input_notes(sorted({j.content for j in plan}), config.size):
        console.print(f"{prefix}[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)
    live = my_shard.count == 1 and console.is_terminal
    with batch_display(todo, config.steps, prefix, live) as hooks:
        outcome = run_batch(plan, out, device=dev, shard=my_shard, dist=dist, config=config, save_model=save_model,
                            overwrite=overwrite, control=control, hooks=hooks, wait=not no_wait)
    if outcome.interrupted:
        shard_label = f"[shard {my_shard}] " if my_shard.count > 1 else ""  # plain text: interrupted_exit escapes
        raise interrupted_exit(f"{shard_label}{outcome.interrupted[0].describe}: {outcome.interrupted[0].error}")
    failed = report(outcome.merged, outcome.results, dist, my_shard, prefix, outcome.manifest)
    counts = {status: sum(r.status == status for r in outcome.results) for status in
              {r.status for r in outcome.results}}
    print_results([*written_files(outcome.results), outcome.manifest],
                  {"command": "batch", "jobs": len(plan), "counts": counts, "manifest": str(outcome.manifest)},
                  json_summary)
    if failed:
        raise typer.Exit(JOB_FAILED_EXIT)
    if outcome.left_to_others:
        console.print(f"{prefix}[yellow]{len(outcome.left_to_others)} job(s) are left to the processes running them "
                      f"(--no-wait); run the same command later to check them[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(LEFT_TO_OTHERS_EXIT)


def capped_outputs_note(images: list[Path], config: TransferConfig) -> str | None:
    """One note for all images whose result ``--output-size auto`` scales below their own size."""
    from spectralstyle.media.images import oriented_size

    capped = [(p, note) for p in images if (size := oriented_size(p)) and (note := config.output_note(size))]
    if not capped:
        return None
    others = f" ({len(capped) - 1} more image(s) likewise)" if len(capped) > 1 else ""
    return f"{capped[0][0].name}: {capped[0][1]}{others}"


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
    from spectralstyle.batch.shards import Shard

    task = Shard(my_shard.index // dist.world_size, my_shard.count // dist.world_size)  # all ranks of this launch
    return print_summary(merged, escape(f"[shard {task}] ") if task.count > 1 else "", manifest)


@contextmanager
def batch_display(todo: int, steps: int, prefix: str, live: bool) -> Iterator[BatchHooks]:
    """The runner's callbacks: a live progress display on a terminal (one process), else one line per job."""
    from spectralstyle.batch.jobs import ELSEWHERE
    from spectralstyle.batch.runner import BatchHooks

    overall = JobsProgress(todo)
    if not live:
        yield BatchHooks(
            on_models_loading=lambda dev: loading_models(f"{prefix}CLIP and VGG19", str(dev)),
            on_job_end=lambda job, r: print_job_end(console, r, prefix, overall.end(r)),
            on_note=lambda message: console.print(f"{prefix}{escape(message)}", highlight=False, soft_wrap=True),
        )
        return
    with progress_bar() as progress:
        overall_task = progress.add_task("jobs", total=todo, losses="")
        current = progress.add_task("", total=steps, losses="", visible=False)

        def start(job: Job, position: int, total: int) -> None:
            progress.reset(current, total=job.config.steps, description=escape(job.describe()), losses="", visible=True)

        def step(job: Job, n: int, losses: dict[str, float]) -> None:
            progress.update(current, completed=n, losses=f"total {losses['total']:.1f}")

        def end(job: Job, result: JobResult) -> None:
            if result.status != ELSEWHERE:  # a job running elsewhere ends later (here, or by its owner)
                progress.advance(overall_task)
            print_job_end(progress.console, result, "", overall.end(result))

        yield BatchHooks(start, step, end,
                         lambda dev: progress.console.print(f"[dim]loading CLIP and VGG19 on {dev}…[/]",
                                                            highlight=False),
                         lambda message: progress.console.print(escape(message), highlight=False, soft_wrap=True))
        progress.update(current, visible=False)


def start_shard(plan: list[Any], out: Path, device: str, dist: Any, my_shard: Any, command: str,
                noun: str) -> tuple[Any, list[Any], str, int]:
    """This process's share of a plan (batch, study): its log file, device and jobs, and the one line saying
    how many of them run. Returns (device, jobs, line prefix of this shard, jobs to run)."""
    from spectralstyle.batch.manifest import job_action, read_state
    from spectralstyle.batch.shards import rank_device, shard_jobs

    setup_log_file(out if my_shard.count == 1 else out / "logs" / f"shard{my_shard.index}-of-{my_shard.count}")
    dev = rank_device(device, dist)
    mine = shard_jobs(plan, my_shard)
    prefix = escape(f"[shard {my_shard}] ") if my_shard.count > 1 else ""
    todo = sum(job_action(j, out, read_state(out, j.job_id))[0] == "run" for j in mine)
    console.print(f"{prefix}{command}: {len(plan)} jobs in the {noun}; this process (device {dev}) has {len(mine)}: "
                  f"{todo} to run, {len(mine) - todo} already finished", highlight=False, soft_wrap=True)
    return dev, mine, prefix, todo


class JobsProgress:
    """Overall progress of this process's jobs: 'jobs 3/10, about 4 min left' after each job that ended here
    (ran, failed, or was finished by the process that owned it while this one waited)."""

    def __init__(self, todo: int) -> None:
        import time

        self.todo, self.done, self.clock = todo, 0, time.perf_counter
        self.started = self.clock()

    def end(self, result: JobResult) -> str:
        from spectralstyle.batch.jobs import FAILED, FINISHED, SKIPPED

        if result.status not in (FINISHED, FAILED, SKIPPED) or not self.todo:
            return ""
        self.done += 1
        left = (self.clock() - self.started) / self.done * (self.todo - self.done)
        eta = f", about {duration(left)} left" if self.done < self.todo else ""
        return f"jobs {min(self.done, self.todo)}/{self.todo}{eta}"


def print_job_end(out: Console, result: JobResult, prefix: str = "", overall: str = "") -> None:
    """One line per job (with the overall progress); none for an interrupted one, whose line ends the command."""
    from spectralstyle.batch.jobs import INTERRUPTED, SKIPPED

    shown = f"  [dim]({overall})[/]" if overall else ""
    if result.status == SKIPPED:  # finished by the process that owned it while this one waited
        out.print(f"{prefix}[green]done elsewhere[/] {escape(result.describe)}  [dim]{escape(result.image)}[/]{shown}",
                  highlight=False, soft_wrap=True)
    elif result.status != INTERRUPTED:
        out.print(f"{prefix}{result_line(result)}{shown}", highlight=False, soft_wrap=True)


def written_files(results: list[JobResult]) -> list[Path]:
    """The files of the jobs finished in this run: result (or model), sidecar and preview, as they exist."""
    from spectralstyle.batch.jobs import FINISHED
    from spectralstyle.runs.train import MODEL_SUFFIX

    files: list[Path] = []
    for r in results:
        if r.status != FINISHED or not r.image:
            continue
        image = Path(r.image)
        stem = image.name.removesuffix(MODEL_SUFFIX).removesuffix(image.suffix)
        files += [p for p in (image, image.with_name(f"{stem}.json"), image.with_name(f"{stem}_preview.png"))
                  if p.exists()]
    return files


def result_line(result: JobResult) -> str:
    from spectralstyle.batch.jobs import ELSEWHERE, FINISHED

    if result.status == ELSEWHERE:
        return f"[yellow]elsewhere[/] {escape(result.describe)}: {escape(result.error)}"
    if result.status == FINISHED:
        return f"[green]done[/] {escape(result.describe)} in {result.wall_time_s:.1f}s  [dim]{escape(result.image)}[/]"
    return f"[red]{result.status}[/] {escape(result.describe)}: {escape(result.error)}"


def print_summary(results: list[JobResult], prefix: str, manifest: Path) -> int:
    """Counts, then one line per failed job; returns the number of failures."""
    from spectralstyle.batch.jobs import ELSEWHERE, FAILED, FINISHED, SKIPPED

    counts = {s: sum(r.status == s for r in results) for s in (FINISHED, SKIPPED, ELSEWHERE, FAILED)}
    failed = [r for r in results if r.status == FAILED]
    colour = "red" if failed else "green"
    elsewhere = f"{counts[ELSEWHERE]} running elsewhere (another process owns them), " if counts[ELSEWHERE] else ""
    console.print(f"{prefix}[bold {colour}]batch: {len(results)} jobs[/]: {counts[FINISHED]} finished, "
                  f"{counts[SKIPPED]} skipped (finished before or by another process), {elsewhere}"
                  f"{counts[FAILED]} failed  "
                  f"[dim]{escape(str(manifest))}[/]", highlight=False, soft_wrap=True)
    for r in failed:
        console.print(f"{prefix}  [red]failed[/] {escape(r.describe)} [dim]({r.job_id})[/]: {escape(r.error)}",
                      highlight=False, soft_wrap=True)
    return len(failed)


def print_plan(plan: list[Job], out: Path, shards: int, n_prompts: int, n_bands: int) -> None:
    """The dry run: a table of every job, its shard and what a run would do with it (on stdout)."""
    from spectralstyle.batch.manifest import STATE_DIR, job_action, read_state
    from spectralstyle.media.claims import holder

    images = len({j.name for j in plan})
    table = Table(title=f"{len(plan)} jobs = {images} images x {n_prompts} prompts x {n_bands} bands",
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
