"""``spectralstyle transfer``: one image, one text, one optimisation (with ``--compare`` against plain CLIP).

The work is in :mod:`spectralstyle.runs.stylize`; here the options are parsed, progress printed and the
written files listed on stdout.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from spectralstyle.cli.common import (
    JsonFlag,
    OutOpt,
    OverwriteFlag,
    RunEstimate,
    config_option,
    files_of,
    flag,
    interrupted_exit,
    loading_models,
    log,
    loss_line,
    note,
    print_results,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import RunControl, TransferConfig

SaveModelFlag = flag("save-model", "Also save the trained StyleNet (for `apply`).")
CompareFlag = flag("compare", "Also run plain CLIP (band none) with the same seed; write both side by side.")


@stops_at_step_boundary
@with_settings(TransferConfig, RunControl)
def transfer(
    content: Annotated[Path, typer.Argument(help="Content image (jpg, png, ...).")],
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    config_file: config_option(TransferConfig, RunControl) = None,
    out: OutOpt = Path("outputs"),
    save_model: SaveModelFlag = False,
    compare: CompareFlag = False,
    overwrite: OverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise CONTENT to match TEXT, without painting the text's words into it.

    Prints every file written on stdout (one per line; --json: one JSON object). Ctrl-C or SIGTERM stops
    after the current step, keeps a checkpoint and a snapshot and exits with 130; the same command then resumes.
    """
    run_transfer(content, text, config_file, out, save_model, compare, overwrite, settings=settings,
                 json_summary=json_summary)


def run_transfer(content: Path, text: str, config_file: Path | None, out: Path, save_model: bool, compare: bool,
                 overwrite: bool, checkpoint_every: int | None = None, resume: bool | None = None,
                 settings: dict[str, Any] | None = None, json_summary: bool = False) -> None:
    """What ``transfer`` (and ``demo``, on the shipped sample photo) does with its parsed options.

    ``checkpoint_every`` and ``resume``, when not None, override the run control of ``settings`` and the file.
    """
    from spectralstyle.runs.early import check_image_file, check_out_dir, check_text

    settings = settings if settings is not None else {}
    # what needs no model and no torch first: a mistake is one line within a second
    config = resolve_from_flags(TransferConfig, config_file, settings)
    control = resolve_from_flags(RunControl, config_file, settings, checkpoint_every=checkpoint_every, resume=resume)
    check_image_file(content, f"; to stylise every image in it: spectralstyle batch {content} --text TEXT --out OUT")
    check_text(text)
    check_text(config.source_text, "--source-text")
    check_out_dir(out)
    from spectralstyle.weights.formats import check_given_files
    from spectralstyle.weights.resolve import require_run_files

    check_given_files(config)  # a cut or zero-filled weights file: one line, before torch loads
    require_run_files(config)  # missing weights: one message in seconds, before torch loads

    from spectralstyle.device import precision_notes
    from spectralstyle.media.images import check_image, oriented_size
    from spectralstyle.method.clip_model import tokenize_templated
    from spectralstyle.method.controls import ResultControls
    from spectralstyle.method.prompts import style_prompts
    from spectralstyle.runs.models import Models
    from spectralstyle.runs.preflight import check_free_space, input_notes, needed_bytes
    from spectralstyle.runs.stylize import compared_configs, result_stem, run_transfers

    header_size, _ = check_image(content)  # a bad image fails before any model loads (header only, no pixels)
    photo_size = oriented_size(content) or header_size  # as open_rgb turns it (EXIF orientation)
    style_prompts(text, config.avoid_text)  # and on empty, too long or badly weighted prompts
    tokenize_templated(config.source_text, "--source-text")
    resolved = config.for_content(photo_size)  # the working size of --size N and the exact output size
    for size_note in (config.output_note(photo_size), config.crop_note(resolved)):
        if size_note:
            note(size_note)
    config = resolved
    ResultControls.of(config).check_mask(config.width, config.height)  # and on a missing or empty mask
    setup_log_file(out)
    configs = compared_configs(config, compare, note)
    check_free_space(out, needed_bytes(config, len(configs) + (len(configs) > 1), save_model))
    for line in input_notes([content], config.size):
        note(line)
    with contextlib.ExitStack() as held:  # each result's name is reserved until it is written (runs/naming.py)
        names = [held.enter_context(result_stem(content, text, cfg, out, overwrite, note)) for cfg in configs]
        models = Models.load(config, on_loading=lambda device: loading_models("CLIP and VGG19", str(device)))
        for line in precision_notes(models.device, config.precision):
            note(line)
        estimate = RunEstimate(sum(c.steps for c in configs), models.device.type)
        with progress_bar() as progress:
            estimate.out = progress.console

            def on_start(cfg: TransferConfig) -> Any:
                task = progress.add_task(escape(f"{content.name} · {cfg.band_value.label}"), total=cfg.steps,
                                         losses="")
                log.info("start %s %r band=%s steps=%d size=%dx%d output=%s device=%s", content, text, cfg.band,
                         cfg.steps, cfg.width, cfg.height, cfg.output_size, models.device)

                def on_step(step: int, losses: dict[str, float]) -> None:
                    progress.update(task, completed=step, losses=loss_line(losses))
                    estimate.step(step)
                return on_step

            results = run_transfers(content, text, configs, models, out, names=names, save_model=save_model,
                                    control=control, on_start=on_start,
                                    on_note=lambda m: progress.console.print(escape(m), highlight=False,
                                                                             soft_wrap=True))
    for r in results:
        log.info("%s %s", "interrupted" if r.interrupted else "wrote", r.image)
    if results[-1].interrupted:
        from spectralstyle.runs.checkpoints import interruption_message

        raise interrupted_exit(f"{interruption_message(results[-1].record)} (last state: {results[-1].image})")
    files = [f for r in results for f in files_of(r)]
    print_results(files, {"command": "transfer", "results": [str(r.image) for r in results],
                          "config_hash": config.digest()}, json_summary)
