"""The evaluation report: a self-contained HTML page, a CSV of every number, and PNG plots.

The HTML embeds its images as base64, so it opens from disk in any browser with no server and can be
mailed around as one file. Every file is written atomically.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from spectralstyle.evaluation.ocr import TextSummary
from spectralstyle.evaluation.outputs import (
    PLOT_KIND,
    OutputNames,
    choose_outputs,
    write_evaluation_record,
)
from spectralstyle.evaluation.scores import ImageMetrics
from spectralstyle.media.files import atomic_path
from spectralstyle.media.images import METADATA_KEY, open_rgb

THUMB_SIDE = 256
"""Images are shown (and their OCR boxes drawn) at least this large; small outputs are upscaled."""
THUMB_MAX_SIDE = 4096
"""...but never upscaled beyond this long side (a 4000x20 strip stays 4000x20, not 51200x256)."""


@dataclass
class BandStats:
    """Aggregates of the images of one band."""

    band: str
    images: int
    with_text: int
    mean_area: float
    mean_clip: float
    mean_directional: float
    mean_ssim: float
    mean_vgg: float

    @property
    def text_rate(self) -> float:
        return self.with_text / self.images if self.images else 0.0


@dataclass
class ReportFiles:
    html: Path
    csv: Path
    plots: list[Path]
    record: Path | None = None
    """``report.json``: what this evaluation read and how (its key keeps other evaluations' files apart)."""
    note: str | None = None
    """Set when the plain names held another evaluation and these files got a suffixed name."""

    @property
    def all(self) -> list[Path]:
        return [self.html, self.csv, *self.plots, *([self.record] if self.record else [])]


def _mean(values: Iterable[float | None]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def band_stats(results: list[ImageMetrics]) -> list[BandStats]:
    """One row per band, in the order bands first appear."""
    bands: dict[str, list[ImageMetrics]] = {}
    for r in results:
        bands.setdefault(r.item.band, []).append(r)
    return [
        BandStats(
            band, len(rs), sum(r.text.has_text for r in rs), _mean(r.text.area_fraction for r in rs),
            _mean(r.clip_score for r in rs), _mean(r.directional for r in rs), _mean(r.ssim for r in rs),
            _mean(r.vgg_distance for r in rs),
        )
        for band, rs in bands.items()
    ]


def text_count_line(results: list[ImageMetrics]) -> str:
    """'1 of 2 images with text' (the headline number of the product)."""
    n = sum(r.text.has_text for r in results)
    return f"{n} of {len(results)} image{'s' if len(results) != 1 else ''} with text"


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


# --- images -----------------------------------------------------------------------------------------
def annotated_image(path: Path, summary: TextSummary, min_side: int = THUMB_SIDE) -> Image.Image:
    """The image, upscaled (nearest) to at least ``min_side``, with its OCR boxes and strings drawn in red."""
    img = open_rgb(path)
    scale = max(1.0, min(min_side / min(img.size), THUMB_MAX_SIDE / max(img.size)))
    if scale > 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(12, img.height // 24))
    for box in summary.boxes:
        points = [(x * scale, y * scale) for x, y in box.box]
        draw.polygon(points, outline=(255, 0, 0), width=max(2, img.height // 200))
        x, y = min(p[0] for p in points), min(p[1] for p in points)
        label = f"{box.text} ({box.confidence:.2f})"
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        ty = max(0, y - (bottom - top) - 4)
        draw.rectangle((x, ty, x + right - left + 4, ty + bottom - top + 4), fill=(255, 0, 0))
        draw.text((x + 2, ty), label, fill="white", font=font)
    return img


def card_image(result: ImageMetrics) -> Image.Image:
    """The annotated image, or for a video a strip of evenly spread frames."""
    from spectralstyle.media.video import is_video

    if is_video(result.item.image):
        from spectralstyle.evaluation.video import frame_strip_image

        return frame_strip_image(result.item.image)
    return annotated_image(result.item.image, result.text)


def png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- files ------------------------------------------------------------------------------------------
def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows (dicts with the same keys) as CSV, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Save a plot as PNG, marked in its settings chunk as a plot (so evaluate never takes it as a result)."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight",
                    metadata={METADATA_KEY: json.dumps({"kind": PLOT_KIND})})
    plt.close(fig)
    return path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bands(stats: list[BandStats], path: Path) -> Path:
    """Bar charts per band: text-box rate, mean text area, mean CLIP score, mean SSIM."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    labels = [s.band for s in stats]
    panels = [("images with text", [s.text_rate for s in stats], "tab:red"),
              ("mean text area fraction", [s.mean_area for s in stats], "tab:orange"),
              ("mean CLIP score", [s.mean_clip for s in stats], "tab:blue"),
              ("mean SSIM to content", [s.mean_ssim for s in stats], "tab:green")]
    for ax, (title, values, color) in zip(axes, panels):
        ax.bar(labels, [0 if math.isnan(v) else v for v in values], color=color)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_scatter(results: list[ImageMetrics], path: Path) -> Path:
    """Per image: text area against CLIP score, coloured by band (stylisation vs written words)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for band in dict.fromkeys(r.item.band for r in results):
        rs = [r for r in results if r.item.band == band]
        ax.scatter([r.clip_score for r in rs], [r.text.area_fraction for r in rs], label=f"band {band}", alpha=0.8)
    ax.set_xlabel("CLIP score with the text")
    ax.set_ylabel("text area fraction (OCR)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px} .sub{color:#666;margin-bottom:18px}
table{border-collapse:collapse;margin:8px 0 20px;background:#fff}
td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:14px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.card.text{border:2px solid #d33} .card img{width:100%;height:auto;image-rendering:pixelated;display:block}
.name{font-weight:600;word-break:break-all;margin:6px 0 2px;font-size:13px} .meta{font-size:12px;color:#444}
.settings{font-size:12px;color:#333;font-family:ui-monospace,monospace}
.random{display:inline-block;background:#b60;color:#fff;border-radius:3px;padding:0 5px;font-size:11px;font-weight:600}
.banner{background:#fff4e0;border:1px solid #e0a040;padding:6px 10px;margin-bottom:14px}
.ocr{color:#c00;font-size:12px} .ocr.none{color:#777} .note{color:#888;font-size:11px}
.plots img{max-width:100%;margin:6px 0}
"""


SCORE_NOTE = (
    "CLIP: cosine similarity of the plain CLIP image embedding and the text (averaged over 79 templates); "
    "directional: how far the edit content -> image points along 'a Photo' -> text. An image made by generate "
    "with a weighted multi-prompt ('a lighthouse|dark clouds:0.5|written text:-1') is scored against its "
    "prompts with a positive weight, weight-averaged ((1 x a lighthouse + 0.5 x dark clouds) / 1.5); prompts "
    "with weight <= 0 are not scored. The metrics.csv column scored_text says what each image was scored against."
)
"""How the CLIP columns are computed (shown under the per-band table of the report)."""


RANDOM_NOTE = ("made with random weights (a test or demo run): the picture and its scores say nothing about "
               "the method")


def settings_line(result: ImageMetrics) -> str:
    """'steps 2 · size 64x48 · band c2 · seed 1234 · precision fp32' from the result's record ('' without one)."""
    shown = {k: v for k, v in result.item.key_settings.items() if k != "weights"}
    return " · ".join(f"{name} {value}" for name, value in shown.items())


def render_html(results: list[ImageMetrics], stats: list[BandStats], plots: list[Path],
                scored_with: str | None = None) -> str:
    """The whole report as one HTML string (images and plots inline). Each card shows the result's key
    settings, so two runs of one image can be told apart, and a mark on results made with random weights."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(s.band)}</td><td>{s.images}</td><td>{s.with_text}</td><td>{fmt(s.text_rate, 2)}</td>"
        f"<td>{fmt(s.mean_area, 4)}</td><td>{fmt(s.mean_clip)}</td><td>{fmt(s.mean_directional)}</td>"
        f"<td>{fmt(s.mean_ssim)}</td><td>{fmt(s.mean_vgg)}</td></tr>" for s in stats)
    cards = []
    for r in results:
        strings = ", ".join(f"“{e(b.text)}” ({b.confidence:.2f})" for b in r.text.boxes) or "no text found"
        settings = settings_line(r)
        cards.append(
            f'<div class="card{" text" if r.text.has_text else ""}"><img alt="{e(r.item.image.name)}" '
            f'src="{png_data_uri(card_image(r))}">'
            f'<div class="name">{e(r.item.image.name)}</div>'
            + (f'<div><span class="random" title="{e(RANDOM_NOTE)}">random weights</span></div>'
               if r.item.random_weights else "")
            + (f'<div class="settings">{e(settings)}</div>' if settings else "")
            + f'<div class="meta">band <b>{e(r.item.band)}</b> · text “{e(r.item.text)}”'
            + (f' · scored against “{e(r.item.scored_text)}”' if r.item.weighted else "") + "</div>"
            f'<div class="ocr{"" if r.text.has_text else " none"}">'
            f'{r.text.count} text box{"es" if r.text.count != 1 else ""} · area '
            f'{fmt(r.text.area_fraction, 4)} · {strings}</div>'
            f'<div class="meta">CLIP {fmt(r.clip_score)} · directional {fmt(r.directional)} · SSIM {fmt(r.ssim)} '
            f'· VGG dist {fmt(r.vgg_distance)}'
            + (f' · temporal stability {fmt(r.temporal_stability)}' if r.temporal_stability is not None else "")
            + '</div>'
            + (f'<div class="note">{e(r.note)}</div>' if r.note else "") + "</div>")
    plot_tags = "".join(f'<img alt="{e(p.name)}" src="{png_data_uri(Image.open(p))}">' for p in plots)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    random_count = sum(r.item.random_weights for r in results)
    banner = (f'<div class="banner"><span class="random">random weights</span> {random_count} of {len(results)} '
              f'result{"s" if len(results) != 1 else ""} {e(RANDOM_NOTE)}</div>' if random_count else "")
    scored = f" · scored with {e(scored_with)}" if scored_with else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>spectralstyle evaluation</title><style>{CSS}</style></head>
<body><h1>spectralstyle evaluation</h1>
<div class="sub">{e(text_count_line(results))} · {stamp} · written words found by OCR (rapidocr, PP-OCR){scored}</div>
{banner}
<h2>Per band</h2>
<table><tr><th>band</th><th>images</th><th>with text</th><th>text-box rate</th><th>mean text area</th>
<th>mean CLIP</th><th>mean directional</th><th>mean SSIM</th><th>mean VGG dist</th></tr>{rows}</table>
<p class="note">{e(SCORE_NOTE)}</p>
<h2>Images</h2><div class="grid">{"".join(cards)}</div>
<h2>Plots</h2><div class="plots">{plot_tags}</div>
</body></html>
"""


def write_report(results: list[ImageMetrics], out_dir: Path, settings: Mapping[str, object] | None = None,
                 overwrite: bool = False, inputs: list[Path] | None = None,
                 on_note: Callable[[str], None] | None = None, scored_with: str | None = None) -> ReportFiles:
    """``report.html``, ``metrics.csv``, plots and ``report.json`` in ``out_dir``.

    Another evaluation's files there are never replaced: this one then writes ``report_<hash>.html`` and
    so on (``outputs.choose_outputs``; ``inputs`` and ``settings`` make its key, ``inputs`` defaulting to the
    results' images) and says so once through ``on_note``; ``overwrite`` replaces the plain names.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = inputs if inputs is not None else [r.item.image for r in results]
    settings = dict(settings or {})
    names, note = choose_outputs(out_dir, "evaluate", inputs, settings, overwrite)
    if note and on_note:
        on_note(note)
    return write_report_files(results, names, inputs, settings, note, scored_with)


def write_report_files(results: list[ImageMetrics], names: OutputNames, inputs: list[Path],
                       settings: Mapping[str, object], note: str | None = None,
                       scored_with: str | None = None) -> ReportFiles:
    """The files of ``write_report`` under names already chosen (the record first: it claims them)."""
    record = write_evaluation_record(names, inputs, settings)
    stats = band_stats(results)
    csv_path = write_csv([r.row() for r in results], names.path("csv"))
    plots = [plot_bands(stats, names.path("bands")), plot_scatter(results, names.path("scatter"))]
    html_path = names.path("html")
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(results, stats, plots, scored_with), encoding="utf-8")
    return ReportFiles(html_path, csv_path, plots, record, note)
