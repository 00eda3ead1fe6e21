"""``spectralstyle transfer``: one image, one text, one optimisation (with ``--compare`` against plain CLIP)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from spectralstyle.cli.common import (
    CheckpointEveryOpt,
    ConfigOpt,
    OutOpt,
    OverwriteFlag,
    ResumeOpt,
    compared_configs,
    console,
    flag,
    interrupted_exit,
    log,
    loss_line,
    print_note,
    print_result_paths,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    user_errors,
    with_settings,
)
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import DEFAULT_CHECKPOINT_EVERY, RunControl, TransferConfig


def run_with_progress(content: Path, text: str, config: TransferConfig, models: Any, out: Path, progress: Any,
                      save_model: bool = False, label: str | None = None, control: RunControl | None = None,
                      stem: str | None = None, name: Any = None) -> Any:
    """One transfer job with a progress bar row showing the current losses (and a note when it resumes)."""
    from spectralstyle.runs.transfer import run_job

    label = label or f"{content.name} · {config.band_value.label}"
    task = progress.add_task(escape(label), total=config.steps, losses="")

    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=loss_line(losses))

    log.info("start %s %r band=%s steps=%d size=%dx%d output=%s device=%s", content, text, config.band, config.steps,
             config.width, config.height, config.output_size, models.device)

    def on_note(message: str) -> None:
        progress.console.print(escape(message), highlight=False, soft_wrap=True)

    if name is not None:
        name.on_note = on_note  # the name moves at the write if another writer took it meanwhile
    result = run_job(content, text, config, models, out, on_step=on_step, save_model=save_model, control=control,
                     on_note=on_note, stem=stem, name=name)
    log.info("%s %s in %.1fs", "interrupted" if result.interrupted else "wrote", result.image,
             result.record["wall_time_s"])
    return result


SaveModelFlag = flag("save-model", "Also save the trained StyleNet (for `apply`).")
CompareFlag = flag("compare", "Also run plain CLIP (band none) with the same seed; write both side by side.")


@user_errors
@stops_at_step_boundary
@with_settings(TransferConfig)
def transfer(
    content: Annotated[Path, typer.Argument(help="Content image (jpg, png, ...).")],
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    config_file: ConfigOpt = None,
    out: OutOpt = Path("outputs"),
    save_model: SaveModelFlag = False,
    compare: CompareFlag = False,
    overwrite: OverwriteFlag = False,
    checkpoint_every: CheckpointEveryOpt = DEFAULT_CHECKPOINT_EVERY,
    resume: ResumeOpt = True,
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise CONTENT to match TEXT, without painting the text's words into it.

    Ctrl-C or SIGTERM stops after the current step, keeps a checkpoint and a snapshot and exits with 130;
    the same command then resumes.
    """
    run_transfer(content, text, config_file, out, save_model, compare, overwrite, checkpoint_every, resume, settings)


def run_transfer(content: Path, text: str, config_file: Path | None, out: Path, save_model: bool, compare: bool,
                 overwrite: bool, checkpoint_every: int, resume: bool, settings: dict[str, Any]) -> None:
    """What ``transfer`` (and ``demo``, on the shipped sample photo) does with its parsed options."""
    config = resolve_from_flags(TransferConfig, config_file, settings)
    control = RunControl(checkpoint_every, resume)
    from spectralstyle.weights.formats import check_given_files
    from spectralstyle.weights.resolve import require_run_files

    check_given_files(config)  # a cut or zero-filled weights file: one line, before torch loads
    require_run_files(config)  # missing weights: one message in seconds, before torch loads
    from spectralstyle.media.images import check_image, oriented_size
    from spectralstyle.method.clip_model import tokenize_templated
    from spectralstyle.runs.models import Models
    from spectralstyle.runs.preflight import check_free_space, input_notes, needed_bytes

    header_size, _ = check_image(content)  # a bad image fails before any model loads (header only, no pixels)
    photo_size = oriented_size(content) or header_size  # as open_rgb turns it (EXIF orientation)
    tokenize_templated(text)  # and on empty or too long text
    print_note(config.output_note(photo_size))
    config = config.for_content(photo_size)  # the working size of --size N and the exact output size
    setup_log_file(out)
    configs = compared_configs(config, compare)
    check_free_space(out, needed_bytes(config, len(configs) + (len(configs) > 1), save_model))
    for note in input_notes([content], config.size):
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    with contextlib.ExitStack() as names:  # each result's name is reserved until it is written (runs/naming.py)
        reserved = [names.enter_context(result_stem(content, text, cfg, out, overwrite)) for cfg in configs]
        models = Models.load(config)
        results = run_all(content, text, configs, reserved, models, out, save_model, control)
    if len(results) == 2:
        results.append(write_transfer_comparison(results, out))
    for r in results:
        console.print(f"[green]wrote[/] {escape(str(r.image))}  [dim]{escape(str(r.sidecar))}[/]", highlight=False)
        print_result_paths(r.image, r.sidecar, r.model)


def run_all(content: Path, text: str, configs: list[TransferConfig], names: list[Any], models: Any, out: Path,
            save_model: bool, control: RunControl) -> list[Any]:
    """Each compared config in turn, under its reserved name; Ctrl-C ends the command (exit 130)."""
    results = []
    with progress_bar() as progress:
        for cfg, name in zip(configs, names):
            result = run_with_progress(content, text, cfg, models, out, progress, save_model=save_model,
                                       control=control, name=name)
            if result.interrupted:
                from spectralstyle.runs.checkpoints import interruption_message

                raise interrupted_exit(f"{interruption_message(result.record)} (last state: {result.image})")
            results.append(result)
    return results


def result_stem(content: Path, text: str, config: TransferConfig, out: Path, overwrite: bool) -> Any:
    """The result's reserved name: the plain one unless another run's result is there or another run is
    writing it right now (then a note; see runs/naming.py)."""
    from spectralstyle.runs.naming import existing_record, reserve_stem
    from spectralstyle.runs.transfer import output_stem

    plain = output_stem(content, text, config.band)
    name = reserve_stem(out, plain, content, text, config.digest(), overwrite)
    if name.moved:
        what = ("holds the result of other settings or another image" if existing_record(out, plain) is not None
                else "is being written by another run of other settings or another image")
        console.print(f"[yellow]note:[/] {escape(str(out / plain))}.png {what}; writing {escape(name.stem)}.png "
                      "beside it (--overwrite replaces a finished one)", highlight=False, soft_wrap=True)
    return name


def write_transfer_comparison(results: list[Any], out: Path) -> Any:
    """Side-by-side image of transfers that differ only in band."""
    from spectralstyle.media.images import slugify
    from spectralstyle.runs.outputs import write_comparison

    first = results[0].record
    return write_comparison(results, out, f"{Path(first['content']).stem}_{slugify(first['text'])}")
