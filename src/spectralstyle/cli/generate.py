"""``spectralstyle generate``: an image from a text prompt with SpectralCLIP guidance."""

from __future__ import annotations

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
    note,
    note_new_name,
    print_results,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import GenerateConfig, RunControl

CompareFlag = flag("compare", "Also run plain CLIP (band none) with the same seed; write both side by side.")


@stops_at_step_boundary
@with_settings(GenerateConfig, RunControl)
def generate(
    prompt: Annotated[str, typer.Argument(
        help="Prompt; several as 'a|b:0.5|c:-1' (weight after ':', negative pushes away).")],
    config_file: config_option(GenerateConfig, RunControl) = None,
    out: OutOpt = Path("outputs"),
    compare: CompareFlag = False,
    overwrite: OverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Generate an image of PROMPT, guided by SpectralCLIP so that it shows the prompt, not its written words.

    Prints every file written on stdout (--json: one JSON object). Ctrl-C or SIGTERM stops after the current
    step, keeps a checkpoint and a snapshot and exits with 130; the same command then resumes.
    """
    from spectralstyle.runs.early import check_image_file, check_out_dir, check_prompt
    from spectralstyle.weights.formats import check_given_files
    from spectralstyle.weights.resolve import require_generate_files

    config = resolve_from_flags(GenerateConfig, config_file, settings)
    control = resolve_from_flags(RunControl, config_file, settings)
    check_prompt(prompt)  # several weighted prompts may each take 77 tokens
    if config.init_image:
        check_image_file(Path(config.init_image))
    check_out_dir(out)
    check_given_files(config)  # a cut or zero-filled weights file: one line, before torch loads
    require_generate_files(config.clip_weights or config.clip_model,
                           "pretrained" if config.clip_weights else config.weights,
                           config.clip_model, config.vqgan_checkpoint,
                           config.weights if config.generator == "vqgan" else None,
                           check_only=True)  # every missing model named, in seconds without network, before torch

    from spectralstyle.device import resolve_device
    from spectralstyle.media.images import check_image
    from spectralstyle.method.prompts import parse_prompts
    from spectralstyle.runs.generate import GenerateModels, generation_stem, run_generation, write_generation_comparison
    from spectralstyle.runs.naming import free_stem
    from spectralstyle.runs.stylize import compared_configs

    parse_prompts(prompt)  # empty, too long or badly weighted prompts fail before any model loads
    if config.init_image:
        check_image(config.init_image)  # its header: no pixels decoded
    resolve_device(config.device)
    loading_models(f"CLIP{' and the VQGAN decoder' if config.generator == 'vqgan' else ''}", config.device)
    models = GenerateModels.load(config)
    setup_log_file(out)
    from spectralstyle.runs.preflight import check_free_space, generate_needed_bytes

    check_free_space(out, generate_needed_bytes(config, 1 + compare), "the image(s)")
    results = []
    configs = compared_configs(config, compare, note)
    estimate = RunEstimate(sum(c.steps for c in configs), models.device.type, quick_hint=False)
    with progress_bar() as progress:
        estimate.out = progress.console
        for cfg in configs:
            task = progress.add_task(f"{cfg.generator} · {cfg.band_value.label}", total=cfg.steps, losses="")

            def on_step(step: int, losses: dict[str, float], task: int = task) -> None:
                progress.update(task, completed=step,
                                losses=f"total {losses['total']:.4f} prompt {losses['prompt']:.4f}")
                estimate.step(step)

            log.info("generate %r generator=%s band=%s steps=%d size=%dx%d device=%s", prompt, cfg.generator,
                     cfg.band, cfg.steps, cfg.width, cfg.height, models.device)
            plain = generation_stem(prompt, cfg)  # another run's image there is kept: this one goes beside it
            stem = free_stem(out, plain, None, prompt, cfg.digest(), overwrite, kind="generation")
            note_new_name(out, plain, stem)
            result = run_generation(prompt, cfg, models, out, on_step=on_step, control=control, stem=stem,
                                    on_note=lambda message: progress.console.print(escape(message), highlight=False))
            if result.interrupted:
                from spectralstyle.runs.checkpoints import interruption_message

                raise interrupted_exit(f"{interruption_message(result.record)} (last state: {result.image})")
            log.info("wrote %s in %.1fs", result.image, result.record["wall_time_s"])
            results.append(result)
    if len(results) == 2:
        results.append(write_generation_comparison(results, out))
    print_results([f for r in results for f in files_of(r)],
                  {"command": "generate", "results": [str(r.image) for r in results]}, json_summary)
