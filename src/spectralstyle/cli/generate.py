"""``spectralstyle generate``: an image from a text prompt with SpectralCLIP guidance."""

from __future__ import annotations

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
    note_new_name,
    print_result_paths,
    progress_bar,
    resolve_from_flags,
    setup_log_file,
    user_errors,
    with_settings,
)
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import DEFAULT_CHECKPOINT_EVERY, GenerateConfig, RunControl

CompareFlag = flag("compare", "Also run plain CLIP (band none) with the same seed; write both side by side.")


@user_errors
@stops_at_step_boundary
@with_settings(GenerateConfig)
def generate(
    prompt: Annotated[str, typer.Argument(help="Prompt; several as 'a|b:0.5|c:-1' (weight after ':', negative pushes away).")],
    config_file: ConfigOpt = None,
    out: OutOpt = Path("outputs"),
    compare: CompareFlag = False,
    overwrite: OverwriteFlag = False,
    checkpoint_every: CheckpointEveryOpt = DEFAULT_CHECKPOINT_EVERY,
    resume: ResumeOpt = True,
    *,
    settings: dict[str, Any],
) -> None:
    """Generate an image of PROMPT, guided by SpectralCLIP so that it shows the prompt, not its written words.

    Ctrl-C or SIGTERM stops after the current step, keeps a checkpoint and a snapshot and exits with 130;
    the same command then resumes.
    """
    from spectralstyle.weights.formats import check_given_files

    check_given_files(resolve_from_flags(GenerateConfig, config_file, settings))  # before torch loads
    from spectralstyle.device import resolve_device
    from spectralstyle.media.images import check_image
    from spectralstyle.method.prompts import parse_prompts
    from spectralstyle.runs.generate import GenerateModels, generation_stem, run_generation, write_generation_comparison
    from spectralstyle.runs.naming import free_stem
    from spectralstyle.weights.resolve import require_generate_files

    config = resolve_from_flags(GenerateConfig, config_file, settings)
    control = RunControl(checkpoint_every, resume)
    parse_prompts(prompt)  # empty, too long or badly weighted prompts fail before any model loads
    if config.init_image:
        check_image(config.init_image)  # its header: no pixels decoded
    resolve_device(config.device)
    require_generate_files(config.clip_weights or config.clip_model, "pretrained" if config.clip_weights else config.weights,
                           config.clip_model, config.vqgan_checkpoint,
                           config.weights if config.generator == "vqgan" else None,
                           check_only=True)  # every missing model named, in seconds without network
    models = GenerateModels.load(config)
    setup_log_file(out)
    from spectralstyle.runs.preflight import check_free_space, generate_needed_bytes

    check_free_space(out, generate_needed_bytes(config, 1 + compare), "the image(s)")
    results = []
    with progress_bar() as progress:
        for cfg in compared_configs(config, compare):
            task = progress.add_task(f"{cfg.generator} · {cfg.band_value.label}", total=cfg.steps, losses="")

            def on_step(step: int, losses: dict[str, float], task: int = task) -> None:
                progress.update(task, completed=step, losses=f"total {losses['total']:.4f} prompt {losses['prompt']:.4f}")

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
    for r in results:
        console.print(f"[green]wrote[/] {escape(str(r.image))}  [dim]{escape(str(r.sidecar))}[/]", highlight=False)
        print_result_paths(r.image, r.sidecar)
