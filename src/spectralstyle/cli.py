"""The ``spectralstyle`` command line: the app, every command registered here explicitly, and the
``transfer`` and ``apply`` commands.

Start-up stays instant: this module and the command modules import no torch; each command imports
the model code when it runs.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

try:  # Typer >= 0.20 ships its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on plain click
    from click.exceptions import NoArgsIsHelpError, UsageError

from . import __version__, cli_batch, cli_bench, cli_evaluate, cli_generate, cli_train, cli_video, cli_weights
from .cli_common import (
    CheckpointEveryOpt, ConfigOpt, DeviceOpt, OutOpt, ResumeOpt, compared_configs, console, fail, flag,
    interrupted_exit, log, progress_bar, resolve_from_flags, setup_log_file, user_errors, with_settings,
)
from .errors import SpectralStyleError
from .interrupts import stops_at_step_boundary
from .settings import DEFAULT_CHECKPOINT_EVERY, RunControl, TransferConfig

class OneLineUsageErrors(TyperGroup):
    """Bad flags and values (``--precision fp17``, an unknown option) are one line and exit code 2,
    like every other user mistake, instead of a usage box."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            raise self._one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise self._one_line(exc) from None

    @staticmethod
    def _one_line(exc: UsageError) -> BaseException:
        if isinstance(exc, NoArgsIsHelpError):  # the help was printed: not an error
            return exc
        where = exc.ctx.command_path if exc.ctx is not None else "spectralstyle"
        message = exc.format_message().replace("Value error, ", "")
        return fail(f"{message} (see: {where} --help)", exc.exit_code)


app = typer.Typer(
    cls=OneLineUsageErrors,
    name="spectralstyle",
    help="Text-guided style transfer with SpectralCLIP: the style of the text, without its written words.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectralstyle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                               help="Print the version and exit.")] = False) -> None:
    """Text-guided style transfer with SpectralCLIP."""


def run_with_progress(content: Path, text: str, config: TransferConfig, models: Any, out: Path, progress: Any,
                      save_model: bool = False, label: str | None = None, control: RunControl | None = None,
                      stem: str | None = None) -> Any:
    """One transfer job with a progress bar row showing the current losses (and a note when it resumes)."""
    from .transfer import run_job

    task = progress.add_task(escape(label or f"{content.name} · {config.band_value.label}"), total=config.steps, losses="")

    def on_step(step: int, losses: dict[str, float]) -> None:
        progress.update(task, completed=step, losses=(
            f"total {losses['total']:.1f} patch {losses['patch']:.3f} global {losses['global']:.3f} "
            f"content {losses['content']:.3f} tv {losses['tv']:.1f}"))

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
    from .clip_model import tokenize_templated
    from .image_io import load_image
    from .preflight import check_free_space, input_notes, needed_bytes
    from .transfer import Models

    load_image(content)  # fail on a bad image before loading any model
    tokenize_templated(text)  # and on empty or too long text
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
                from .resume import interruption_message

                raise interrupted_exit(f"{interruption_message(result.record)} (last state: {result.image})")
            results.append(result)
    if len(results) == 2:
        results.append(write_transfer_comparison(results, out))
    for r in results:
        console.print(f"[green]wrote[/] {escape(str(r.image))}  [dim]{escape(str(r.sidecar))}[/]", highlight=False)


def result_stem(content: Path, text: str, config: TransferConfig, out: Path, overwrite: bool) -> str:
    """The result's name: the plain one unless another run's result is there (then a note; see results.py)."""
    from .results import free_stem
    from .transfer import output_stem

    plain = output_stem(content, text, config.band)
    stem = free_stem(out, plain, content, text, config.digest(), overwrite)
    if stem != plain:
        console.print(f"[yellow]note:[/] {escape(str(out / plain))}.png holds the result of other settings or another "
                      f"image; writing {escape(stem)}.png beside it (--overwrite replaces it)", highlight=False,
                      soft_wrap=True)
    return stem


def write_transfer_comparison(results: list[Any], out: Path) -> Any:
    """Side-by-side image of transfers that differ only in band."""
    from .image_io import slugify
    from .transfer import write_comparison

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


@user_errors
@stops_at_step_boundary
def apply(
    model: Annotated[Path, typer.Argument(help="A StyleNet saved by `transfer --save-model` or `train`.")],
    images: Annotated[list[Path], typer.Argument(help="Images, folders (their images and videos) and videos (-> mp4).")],
    out: OutOpt = Path("outputs"),
    contrast: Annotated[Optional[float], typer.Option(
        "--contrast", help="Contrast factor of the saved image (default: the model's, 1 = unchanged).")] = None,
    device: DeviceOpt = "auto",
    max_side: Annotated[Optional[int], typer.Option("--max-side", help="Downscale images and videos whose longer side exceeds this.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Tile side in pixels for large images (multiple of 8; default: 768 on CPU, from free memory on CUDA).")] = None,
    norm_stats: Annotated[Literal["exact", "sampled", "downscaled"], typer.Option("--norm-stats", help="Whole-image norm statistics of tiled images: exact (streamed, about 10 passes), sampled (a quarter of the tiles) or downscaled (one small pass; approximate).")] = "exact",
) -> None:
    """Apply a trained StyleNet to images, folders and videos, at any resolution, in bounded memory.

    Ctrl-C or SIGTERM stops between tiles or frames; nothing half-written is left under a final name.
    """
    from .applying import ApplySettings, apply_image, apply_video, expand_inputs, load_stylenet
    from .device import resolve_device
    from .files import ensure_writable_dir
    from .interrupts import raise_if_stop_requested
    from .video import is_video

    dev = resolve_device(device or "auto")
    if contrast is not None and not (math.isfinite(contrast) and contrast > 0):
        raise SpectralStyleError(f"--contrast must be a positive number (0 gives a flat grey picture; 1 = unchanged), "
                                 f"got {contrast}")
    ApplySettings(1.0, dev, max_side, tile, norm_stats).check()
    net, record = load_stylenet(model)
    net = net.to(dev)
    factor = contrast if contrast is not None else record.get("config", {}).get("contrast", 1.5)
    settings = ApplySettings(factor, dev, max_side, tile, norm_stats)
    inputs = expand_inputs(images)
    ensure_writable_dir(out)
    names = output_names(inputs, model.name.removesuffix(".stylenet.pt"))

    def progress_of(task: Any) -> Any:
        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)
            raise_if_stop_requested()
        return update

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        for path in inputs:
            raise_if_stop_requested()
            metadata = {"applied_model": str(model), "source_image": str(path), "contrast": factor, "trained_with": record}
            if is_video(path):
                target = out / Path(names[path]).with_suffix(".mp4")
                task = progress.add_task(escape(f"{path.name} frames"), total=None)
                result = apply_video(net, path, target, settings, metadata, on_frame=progress_of(task))
                progress.remove_task(task)
                stability = result["temporal_stability"]
                note = f"temporal stability {stability:.3f}" if stability is not None else "still input"
                console.print(f"[green]wrote[/] {escape(str(target))}  [dim]{result['video']['frames']} frames, "
                              f"{note}[/]", highlight=False)
                continue
            target = out / names[path]
            task = progress.add_task(escape(f"{path.name} tiles"), total=None)
            apply_image(net, path, target, settings, metadata, on_tile=progress_of(task))
            progress.remove_task(task)
            console.print(f"[green]wrote[/] {escape(str(target))}", highlight=False)


# --- every command, registered explicitly (an import error in a command is an error, not a missing command)
app.command()(transfer)
app.command()(apply)
app.command("batch")(cli_batch.batch)
app.command("evaluate")(cli_evaluate.evaluate)
app.command("analyze")(cli_evaluate.analyze)
app.command("generate")(cli_generate.generate)
app.command("train")(cli_train.train)
app.command("video")(cli_video.video)
app.command("bench")(cli_bench.bench)
app.add_typer(cli_weights.weights_app, name="weights")


def main() -> None:
    app(prog_name="spectralstyle")  # also under `python -m spectralstyle` and torchrun (usage, completion)
