"""``spectralstyle evaluate`` (OCR, CLIP and content metrics with an HTML report) and ``analyze``
(the paper's spectral analysis). The work is done in metrics, report and analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from spectralstyle.cli.common import (
    JsonFlag,
    console,
    flag,
    log,
    print_results,
    resolve_from_flags,
    setup_log_file,
    with_settings,
)
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import AnalyzeSettings, EvaluateSettings

PathsArg = Annotated[list[Path], typer.Argument(metavar="IMAGES_OR_DIRS", help=(
    "Result images, or folders of them (their sidecar JSON gives text, band, content)."))]
ReportOverwriteFlag = flag("overwrite", "Replace another evaluation's files in --out (default: this one gets names "
                                       "with a short hash).")


def _load_clip(weights: str, clip_weights: Optional[str], device: Optional[str], clip_model: str = "ViT-B/32") -> Any:
    from spectralstyle.device import resolve_device
    from spectralstyle.method.clip_model import load_clip

    return load_clip(clip_weights or clip_model, device=resolve_device(device or "auto"),
                     weights="pretrained" if clip_weights else weights)


def _print_note(note: Optional[str]) -> None:
    if note:
        console.print(f"[cyan]{escape(note)}[/]", highlight=False, soft_wrap=True)


def _print_skip(reason: str) -> None:
    console.print(f"[yellow]skipped:[/] {escape(reason)}", highlight=False, soft_wrap=True)


def _text_note(items: list[Any], text: str) -> str | None:
    """Which text is used when --text is given and some images also have a sidecar text (the sidecar's)."""
    own = [i for i in items if i.text_from == "sidecar" and i.text != text]
    if not own:
        return None
    shown = ", ".join(f"{i.image.name} ({i.text!r})" for i in own[:3]) + (" ..." if len(own) > 3 else "")
    rest = len(items) - len(own)
    return (f"note: {len(own)} image{'s' if len(own) != 1 else ''} scored against the text in "
            f"{'their' if len(own) != 1 else 'its'} "
            f"sidecar, not --text {text!r}: {shown}; --text is used for {rest} image{'s' if rest != 1 else ''} "
            "without a sidecar text")


@with_settings(EvaluateSettings)
def evaluate(
    paths: PathsArg,
    text: Annotated[Optional[str], typer.Option("--text", "-t", help=(
        "Style text for images without a sidecar JSON (a sidecar's text wins)."))] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Report folder (report.html, metrics.csv, plots).")] = Path("evaluation"),
    overwrite: ReportOverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Measure written words (OCR), CLIP score and content preservation of results; write an HTML report.

    Prints the files written (report, CSV, plots, report.json) on stdout, one per line (--json: one JSON object).
    """
    chosen = resolve_from_flags(EvaluateSettings, None, settings)  # bad options fail before any file or model
    from spectralstyle.media.files import check_exists

    for path in paths:
        check_exists(path)  # within a second, before torch
    from spectralstyle.evaluation.metrics import ClipScorer, collect_inputs, evaluate_images, scoring_models
    from spectralstyle.evaluation.report import band_stats, fmt, text_count_line, write_report
    from spectralstyle.method.vgg import load_vgg_content

    skipped: list[str] = []
    items = collect_inputs(paths, text, skipped, out_dir=out)  # also checks --text
    for reason in skipped:
        _print_skip(reason)
    if text is not None:
        note = _text_note(items, text)
        if note:
            console.print(f"[cyan]{escape(note)}[/]", highlight=False, soft_wrap=True)
    # the sidecars' weights unless given
    models = scoring_models([i.record for i in items], chosen.weights, chosen.clip_weights)
    _print_note(models.note)
    setup_log_file(out)
    clip_model = _load_clip(models.weights, models.clip_weights, chosen.device, models.clip_model)
    device_ = next(clip_model.parameters()).device
    needs_vgg = any(i.content is not None and i.content.is_file() for i in items)
    vgg_mode = models.weights if not chosen.vgg_weights else "pretrained"
    vgg = load_vgg_content(vgg_mode, chosen.vgg_weights, device_) if needs_vgg else None
    scorer = ClipScorer(clip_model)
    with console.status("measuring") as status:
        def on_start(n: int, item: Any) -> None:
            status.update(f"measuring {escape(item.image.name)} ({n}/{len(items)})")

        def on_skip(reason: str) -> None:
            log.warning("skipped %s", reason)
            _print_skip(reason)

        results = evaluate_images(items, scorer, vgg, chosen.min_confidence, on_skip=on_skip, on_start=on_start)
    if not results:
        raise SpectralStyleError(f"none of the {len(items)} image(s) could be measured; no report written")
    settings = {"text": text, "weights": models.weights, "clip_model": models.clip_model,
                "clip_weights": models.clip_weights, "vgg_weights": chosen.vgg_weights,
                "min_confidence": chosen.min_confidence}
    files = write_report(results, out, settings, overwrite, inputs=[i.image for i in items], on_note=_print_note,
                         scored_with=f"CLIP {models.clip_model}, {models.weights} weights")
    log.info("evaluated %d images: %s", len(results), text_count_line(results))

    table = Table(title="per band", title_justify="left")
    for col in ("band", "images", "with text", "mean area", "mean CLIP", "mean SSIM"):
        table.add_column(col, justify="left" if col == "band" else "right")
    for s in band_stats(results):
        table.add_row(escape(s.band), str(s.images), str(s.with_text), fmt(s.mean_area, 4), fmt(s.mean_clip),
                      fmt(s.mean_ssim))
    console.print(table)
    console.print(f"[bold]{text_count_line(results)}[/]", highlight=False)
    if any(i.random_weights for i in items):
        console.print("[yellow]note:[/] results made with random weights are marked in the report", highlight=False)
    print_results(files.all, {"command": "evaluate", "images": len(results), "summary": text_count_line(results),
                              "report": str(files.html)}, json_summary)


@with_settings(AnalyzeSettings)
def analyze(
    paths: PathsArg,
    text: Annotated[str, typer.Option("--text", "-t", help="Text to score every image against.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (CSV files and plots).")] = Path("analysis"),
    overwrite: ReportOverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Token-frequency energy and per-band CLIP scores of images; which bands separate images with text.

    Prints the files written (CSV files, plots, analysis.json) on stdout, one per line (--json: one JSON object).
    """
    chosen = resolve_from_flags(AnalyzeSettings, None, settings)  # bad options fail before any file or model
    from spectralstyle.evaluation.analysis import analyze as run_analysis
    from spectralstyle.evaluation.analysis import one_group_line, small_group_line, write_analysis
    from spectralstyle.evaluation.metrics import ClipScorer, collect_images, scoring_models
    from spectralstyle.method.clip_model import tokenize_templated
    from spectralstyle.record import read_record

    tokenize_templated(text)
    skipped: list[str] = []
    images = collect_images(paths, skipped, out_dir=out)
    for reason in skipped:
        _print_skip(reason)
    # the sidecars' weights unless given
    models = scoring_models([read_record(p) for p in images], chosen.weights, chosen.clip_weights)
    _print_note(models.note)
    setup_log_file(out)
    clip_model = _load_clip(models.weights, models.clip_weights, chosen.device, models.clip_model)

    def on_skip(reason: str) -> None:
        log.warning("skipped %s", reason)
        _print_skip(reason)

    with console.status(f"analysing {len(images)} image(s)"):
        results, separation = run_analysis(ClipScorer(clip_model), images, text,
                                           min_confidence=chosen.min_confidence, on_skip=on_skip)
    settings = {"text": text, "weights": models.weights, "clip_model": models.clip_model,
                "clip_weights": models.clip_weights, "min_confidence": chosen.min_confidence}
    files = write_analysis(results, separation, out, settings=settings, overwrite=overwrite, inputs=images,
                           on_note=_print_note)

    with_text = sum(r.text.has_text for r in results)
    console.print(f"{with_text} of {len(results)} image{'s' if len(results) != 1 else ''} with text", highlight=False)
    if separation is None:
        console.print(one_group_line(results), highlight=False)
    else:
        table = Table(title="band separation (text vs no text)", title_justify="left")
        for col in ("removed band", "AUC energy", "r energy", "AUC score drop", "r score drop", "separates"):
            table.add_column(col, justify="left" if col == "removed band" else "right")
        for s in separation:
            table.add_row(s.band, *(f"{v:.3f}" for v in (s.auc_energy, s.r_energy, s.auc_drop, s.r_drop)),
                          "yes" if s.separates else "no")
        console.print(table)
        caution = small_group_line(results)
        if caution:
            console.print(f"[yellow]{caution}[/]", highlight=False)
    log.info("analysed %d images into %s", len(results), out)
    print_results(files, {"command": "analyze", "images": len(results), "with_text": with_text}, json_summary)
