"""``spectralstyle generate``: an image from a text prompt with SpectralCLIP guidance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .cli_common import (
    BandOpt, ClipWeightsOpt, ConfigOpt, DeviceOpt, OutOpt, SaveEveryOpt, SeedOpt, WeightsOpt, console, log,
    setup_log_file, user_errors,
)
from .cli_common import CheckpointEveryOpt, ResumeOpt, interrupted_exit
from .device import resolve_device
from .generate import GenerateModels, resolve_generate_config, run_generation, write_generation_comparison
from .generators import resolve_vqgan_file
from .image_io import load_image
from .interrupts import stops_at_step_boundary
from .prompts import parse_prompts
from .resume import DEFAULT_CHECKPOINT_EVERY, RunControl, interruption_message
from .spectral import band_label

GenSizeOpt = Annotated[Optional[str], typer.Option("--size", help="Image size WIDTHxHEIGHT: multiples of 16 for vqgan, 8 for fourier (default 256x256).")]
GenStepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Optimisation steps (default 300).")]
CutoutsOpt = Annotated[Optional[int], typer.Option("--cutouts", help="Random cutouts per step (default 32).")]
GeneratorOpt = Annotated[Optional[str], typer.Option("--generator", "-g", help="fourier (no weights needed, default) or vqgan (taming VQGAN decoder).")]
VqganCheckpointOpt = Annotated[Optional[str], typer.Option("--vqgan-checkpoint", help="Local taming VQGAN checkpoint (.ckpt) instead of the download of vqgan_imagenet_f16_16384.")]
GenLrOpt = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (default 0.05 fourier, 0.1 vqgan).")]
InitImageOpt = Annotated[Optional[Path], typer.Option("--init-image", help="Start image (fourier: initial spectrum; both: target of --init-weight).")]
InitWeightOpt = Annotated[Optional[float], typer.Option("--init-weight", help="Weight of the MSE to --init-image (default 0).")]
DistanceOpt = Annotated[Optional[str], typer.Option("--distance", help="spherical (VQGAN+CLIP, default) or cosine (1 - cos).")]


def generate(
    prompt: Annotated[str, typer.Argument(help="Prompt; several as 'a|b:0.5|c:-1' (weight after ':', negative pushes away).")],
    config_file: ConfigOpt = None,
    band: BandOpt = None,
    size: GenSizeOpt = None,
    steps: GenStepsOpt = None,
    cutouts: CutoutsOpt = None,
    generator: GeneratorOpt = None,
    vqgan_checkpoint: VqganCheckpointOpt = None,
    init_image: InitImageOpt = None,
    init_weight: InitWeightOpt = None,
    distance: DistanceOpt = None,
    lr: GenLrOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    weights: WeightsOpt = None,
    clip_weights: ClipWeightsOpt = None,
    save_every: SaveEveryOpt = None,
    out: OutOpt = Path("outputs"),
    compare: Annotated[bool, typer.Option("--compare", help="Also run plain CLIP (band none) with the same seed; write both side by side.")] = False,
    checkpoint_every: CheckpointEveryOpt = DEFAULT_CHECKPOINT_EVERY,
    resume: ResumeOpt = True,
) -> None:
    """Generate an image of PROMPT, guided by SpectralCLIP so that it shows the prompt, not its written words.

    Ctrl-C or SIGTERM stops after the current step, keeps a checkpoint and a snapshot and exits with 130;
    the same command then resumes.
    """
    from .cli import progress_bar  # here: cli imports this module while it is being set up

    config = resolve_generate_config(
        config_file, size=size, band=band, steps=steps, cutouts=cutouts, generator=generator,
        vqgan_checkpoint=vqgan_checkpoint, init_image=str(init_image) if init_image else None,
        init_weight=init_weight, distance=distance, lr=lr, seed=seed, device=device, weights=weights,
        clip_weights=clip_weights, save_every=save_every,
    )
    control = RunControl(checkpoint_every, resume)
    parse_prompts(prompt)  # empty, too long or badly weighted prompts fail before any model loads
    if config.init_image:
        load_image(config.init_image)
    resolve_device(config.device)
    if config.generator == "vqgan":
        resolve_vqgan_file(config.vqgan_checkpoint, config.weights)
    models = GenerateModels.load(config)
    setup_log_file(out)
    configs = [config.replace(band="none"), config] if compare and band_label(config.band) != "none" else [config]
    results = []
    with progress_bar() as progress:
        for cfg in configs:
            task = progress.add_task(f"{cfg.generator} · {band_label(cfg.band)}", total=cfg.steps, losses="")

            def on_step(step: int, losses: dict[str, float], task: int = task) -> None:
                progress.update(task, completed=step, losses=f"total {losses['total']:.4f} prompt {losses['prompt']:.4f}")

            log.info("generate %r generator=%s band=%s steps=%d size=%dx%d device=%s", prompt, cfg.generator,
                     cfg.band, cfg.steps, cfg.width, cfg.height, models.device)
            result = run_generation(prompt, cfg, models, out, on_step=on_step, control=control,
                                    on_note=lambda message: progress.console.print(escape(message), highlight=False))
            if result.interrupted:
                raise interrupted_exit(f"{interruption_message(result.record)} (last state: {result.image})")
            log.info("wrote %s in %.1fs", result.image, result.record["wall_time_s"])
            results.append(result)
    if len(results) == 2:
        results.append(write_generation_comparison(results, out))
    for r in results:
        console.print(f"[green]wrote[/] {escape(str(r.image))}  [dim]{escape(str(r.sidecar))}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("generate")(user_errors(stops_at_step_boundary(generate)))
