"""``spectralstyle transfer``: one image, one text, one optimisation (with ``--compare`` against plain CLIP)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import DEFAULT_CHECKPOINT_EVERY, RunControl, TransferConfig
from spectralstyle.cli.common import (
    loss_line,
    CheckpointEveryOpt, ConfigOpt, OutOpt, ResumeOpt, compared_configs, console, flag, interrupted_exit, log,
    progress_bar, resolve_from_flags, setup_log_file, user_errors, with_settings,
)


def run_with_progress(content: Path, text: str, config: TransferConfig, models: Any, out: Path, progress: Any,
                      save_model: bool = False, label: str | None = None, control: RunControl | None = None,
                      stem: str | None = None) -> Any:
    """One transfer job with a progress bar row showing the current losses (and a note when it resumes)."""
    from spectralstyle.runs.transfer import run_job

    task = progress.add_task(escape(label or f"{content.name} · {config.band_value.label}"), total=config.steps, losses="")

    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=loss_line(losses))

    log.info("start %s %r band=%s steps=%d size=%dx%d device=%s", content, text, config.band, config.steps,
             config.width, config.height, models.device)

    def on_note(message: str) -> None:
        progress.console.print(escape(message), highlight=False, soft_wrap=True)

    result = run_job(content, text, config, models, out, on_step=on_step, save_model=save_model, control=control,
                     on_note=on_note, stem=stem)
    log.info("%s %s in %.1fs", "interrupted" if result.interrupted else "wrote", result.image, result.record["wall_time_s"])
    return result


SaveModelFlag = flag("save-model", "Also save the trained StyleNet (for `apply`).")
CompareFlag = flag("compare", "Also run plain CLIP (band none) with the same seed; write both side by side.")
OverwriteFlag = flag("overwrite", "Replace a result of other settings or content under the same name "
                                  "(default: write beside it, with a short hash).")


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
    config = resolve_from_flags(TransferConfig, config_file, settings)
    control = RunControl(checkpoint_every, resume)
    from spectralstyle.method.controls import ResultControls
    from spectralstyle.method.prompts import style_prompts
    from spectralstyle.media.images import load_image
    from spectralstyle.runs.preflight import check_free_space, input_notes, needed_bytes
    from spectralstyle.runs.models import Models

    load_image(content)  # fail on a bad image before loading any model
    style_prompts(text)  # and on empty, too long or badly weighted prompts
    ResultControls.of(config).check_mask(config.width, config.height)  # and on a missing or empty mask
    setup_log_file(out)
    configs = compared_configs(config, compare)
    check_free_space(out, needed_bytes(config, len(configs) + (len(configs) > 1), save_model))
    for note in input_notes([content], config.size):
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    models = Models.load(config)
    stems = [result_stem(content, text, cfg, out, overwrite) for cfg in configs]
    results = []
    with progress_bar() as progress:
        for cfg, stem in zip(configs, stems):
            result = run_with_progress(content, text, cfg, models, out, progress, save_model=save_model, control=control,
                                       stem=stem)
            if result.interrupted:
                from spectralstyle.runs.checkpoints import interruption_message

                raise interrupted_exit(f"{interruption_message(result.record)} (last state: {result.image})")
            results.append(result)
    if len(results) == 2:
        results.append(write_transfer_comparison(results, out))
    for r in results:
        console.print(f"[green]wrote[/] {escape(str(r.image))}  [dim]{escape(str(r.sidecar))}[/]", highlight=False)


def result_stem(content: Path, text: str, config: TransferConfig, out: Path, overwrite: bool) -> str:
    """The result's name: the plain one unless another run's result is there (then a note; see results.py)."""
    from spectralstyle.runs.naming import free_stem
    from spectralstyle.runs.transfer import output_stem

    plain = output_stem(content, text, config.band)
    stem = free_stem(out, plain, content, text, config.digest(), overwrite)
    if stem != plain:
        console.print(f"[yellow]note:[/] {escape(str(out / plain))}.png holds the result of other settings or another "
                      f"image; writing {escape(stem)}.png beside it (--overwrite replaces it)", highlight=False,
                      soft_wrap=True)
    return stem


def write_transfer_comparison(results: list[Any], out: Path) -> Any:
    """Side-by-side image of transfers that differ only in band."""
    from spectralstyle.media.images import slugify
    from spectralstyle.runs.outputs import write_comparison

    first = results[0].record
    return write_comparison(results, out, f"{Path(first['content']).stem}_{slugify(first['text'])}")
