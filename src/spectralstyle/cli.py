"""The ``spectralstyle`` command line: transfer and apply here; other commands register themselves."""

from __future__ import annotations

import hashlib
import importlib
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape

from . import __version__
from .cli_common import (
    BandOpt, ClipWeightsOpt, CompileOpt, ConfigOpt, ContrastOpt, CropSizeOpt, CropsOpt, DeviceOpt, LambdaContentOpt,
    LambdaGlobalOpt, LambdaPatchOpt, LambdaTvOpt, LrOpt, OutOpt, PrecisionOpt, SaveEveryOpt, SeedOpt, SizeOpt,
    SourceEncoderOpt, StepsOpt, ThresholdOpt, VggWeightsOpt, WeightsOpt, config_from_flags, console, fail, log,
    setup_log_file, user_errors,
)
from .config import TransferConfig
from .device import resolve_device
from .errors import SpectralStyleError
from .image_io import ensure_writable_dir, load_image, slugify
from .spectral import band_label
from .transfer import JobOutput, Models, run_job, write_comparison

app = typer.Typer(
    name="spectralstyle",
    help="Text-guided style transfer with SpectralCLIP: the style of the text, without its written words.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Commands defined in their own modules; each has register(app).
COMMAND_MODULES = ("cli_batch", "cli_evaluate", "cli_generate", "cli_bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectralstyle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False) -> None:
    """Text-guided style transfer with SpectralCLIP."""


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=console, transient=False,
    )


def run_with_progress(content: Path, text: str, config: TransferConfig, models: Models, out: Path,
                      progress: Progress, save_model: bool = False, label: str | None = None) -> JobOutput:
    """One transfer job with a progress bar row showing the current losses."""
    task = progress.add_task(escape(label or f"{content.name} · {band_label(config.band)}"), total=config.steps, losses="")

    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=(
            f"total {losses['total']:.1f} patch {losses['patch']:.3f} global {losses['global']:.3f} "
            f"content {losses['content']:.3f} tv {losses['tv']:.1f}"))

    log.info("start %s %r band=%s steps=%d size=%dx%d device=%s", content, text, config.band, config.steps,
             config.width, config.height, models.device)
    result = run_job(content, text, config, models, out, on_step=on_step, save_model=save_model)
    log.info("%s %s in %.1fs", "interrupted" if result.interrupted else "wrote", result.image, result.record["wall_time_s"])
    return result


@app.command()
@user_errors
def transfer(
    content: Annotated[Path, typer.Argument(help="Content image (jpg, png, ...).")],
    text: Annotated[str, typer.Argument(help="Style text, for example 'pop art'.")],
    config_file: ConfigOpt = None,
    band: BandOpt = None,
    steps: StepsOpt = None,
    size: SizeOpt = None,
    crops: CropsOpt = None,
    crop_size: CropSizeOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = Path("outputs"),
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
    save_model: Annotated[bool, typer.Option("--save-model", help="Also save the trained StyleNet (for `apply`).")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Also run plain CLIP (band none) with the same seed; write both side by side.")] = False,
) -> None:
    """Stylise CONTENT to match TEXT, without painting the text's words into it."""
    config = config_from_flags(config_file, size, locals())
    load_image(content)  # fail on a bad image before loading any model
    from .clip_model import tokenize_templated

    tokenize_templated(text)  # and on empty or too long text
    setup_log_file(out)
    models = Models.load(config)
    configs = [config.replace(band="none"), config] if compare and band_label(config.band) != "none" else [config]
    if compare and len(configs) == 1:
        console.print("[yellow]note:[/] --compare compares a band with none; the band is none, so there is "
                      "nothing to compare", highlight=False)
    results = []
    with progress_bar() as progress:
        for cfg in configs:
            result = run_with_progress(content, text, cfg, models, out, progress, save_model=save_model)
            if result.interrupted:
                raise fail(f"interrupted after {result.record['steps_done']} steps; last state kept in {result.image}", 130)
            results.append(result)
    if len(results) == 2:
        results.append(write_transfer_comparison(results, out))
    for r in results:
        console.print(f"[green]wrote[/] {escape(str(r.image))}  [dim]{escape(str(r.sidecar))}[/]", highlight=False)


def write_transfer_comparison(results: list[JobOutput], out: Path) -> JobOutput:
    """Side-by-side image of transfers that differ only in band."""
    first = results[0].record
    return write_comparison(results, out, f"{Path(first['content']).stem}_{slugify(first['text'])}")


def output_names(images: list[Path], model_stem: str) -> dict[Path, str]:
    """``<image stem>_<model>.png``; images sharing a stem (boat.jpg, boat.webp, a/boat.jpg) get a short
    hash of their path, so no result overwrites another."""
    stems = [path.stem for path in images]
    names = {}
    for path, stem in zip(images, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        names[path] = f"{stem}_{model_stem}.png"
    return names


@app.command()
@user_errors
def apply(
    model: Annotated[Path, typer.Argument(help="A StyleNet saved by `transfer --save-model` or `train`.")],
    images: Annotated[list[Path], typer.Argument(help="Images, folders (their images and videos) and videos (-> mp4).")],
    out: OutOpt = Path("outputs"),
    contrast: ContrastOpt = None,
    device: DeviceOpt = "auto",
    max_side: Annotated[Optional[int], typer.Option("--max-side", help="Downscale images and videos whose longer side exceeds this.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Tile side in pixels for large images (multiple of 8; default: 768 on CPU, from free memory on CUDA).")] = None,
    norm_stats: Annotated[str, typer.Option("--norm-stats", help="Whole-image norm statistics of tiled images: exact (streamed, about 10 passes), sampled (a quarter of the tiles) or downscaled (one small pass; approximate).")] = "exact",
) -> None:
    """Apply a trained StyleNet to images, folders and videos, at any resolution, in bounded memory."""
    from .applying import ApplySettings, apply_image, apply_video, expand_inputs, load_stylenet
    from .video import is_video

    dev = resolve_device(device or "auto")
    if contrast is not None and not (math.isfinite(contrast) and contrast >= 0):
        raise SpectralStyleError(f"--contrast must be a non-negative number, got {contrast}")
    ApplySettings(1.0, dev, max_side, tile, norm_stats).check()
    net, record = load_stylenet(model)
    net = net.to(dev)
    factor = contrast if contrast is not None else record.get("config", {}).get("contrast", 1.5)
    settings = ApplySettings(factor, dev, max_side, tile, norm_stats)
    inputs = expand_inputs(images)
    ensure_writable_dir(out)
    names = output_names(inputs, model.name.removesuffix(".stylenet.pt"))
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        for path in inputs:
            metadata = {"applied_model": str(model), "source_image": str(path), "contrast": factor, "trained_with": record}
            if is_video(path):
                target = out / Path(names[path]).with_suffix(".mp4")
                task = progress.add_task(escape(f"{path.name} frames"), total=None)
                result = apply_video(net, path, target, settings, metadata,
                                     on_frame=lambda done, total, t=task: progress.update(t, completed=done, total=total))
                progress.remove_task(task)
                stability = result["temporal_stability"]
                note = f"temporal stability {stability:.3f}" if stability is not None else "still input"
                console.print(f"[green]wrote[/] {escape(str(target))}  [dim]{result['video']['frames']} frames, "
                              f"{note}[/]", highlight=False)
                continue
            target = out / names[path]
            task = progress.add_task(escape(f"{path.name} tiles"), total=None)
            apply_image(net, path, target, settings, metadata,
                        on_tile=lambda done, total, t=task: progress.update(t, completed=done, total=total))
            progress.remove_task(task)
            console.print(f"[green]wrote[/] {escape(str(target))}", highlight=False)


def _register_command_modules() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue
            raise
        module.register(app)


_register_command_modules()


def main() -> None:
    app()
