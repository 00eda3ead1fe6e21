"""The study's files: ``table.csv`` and ``table.md`` (one row per band), ``styles.csv`` (per style),
``results.csv`` (per result), plots with intervals and ``report.html``; every file written atomically.

The HTML reuses the evaluation report's pieces (its style sheet, OCR-annotated thumbnails and inline PNGs),
and the full evaluation report of every result is written beside it (``evaluation/report.html``).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from spectralstyle.evaluation.report import CSS, card_image, png_data_uri, pyplot, save_figure, write_csv, write_report
from spectralstyle.media.files import atomic_path
from spectralstyle.study.judging import Judged
from spectralstyle.study.protocol import recommended_band
from spectralstyle.study.summary import (
    BASELINE,
    METRICS,
    STYLE_METRICS,
    BandRow,
    Estimate,
    StyleRow,
    best_band,
)

TABLE_CSV, TABLE_MD, STYLES_CSV, RESULTS_CSV, REPORT_HTML = "table.csv", "table.md", "styles.csv", "results.csv", \
    "report.html"
PLOTS_DIR, EVALUATION_DIR = "plots", "evaluation"
MD_METRICS = ("text_rate", "ocr_chars", "judge_clip_score", "judge_directional", "ssim", "vgg_content_distance")


@dataclass(frozen=True)
class StudyInfo:
    """What the tables say about how the numbers were made."""

    judge: str
    guide: str
    settings: str
    images: int
    prompts: int
    rounds: int


def _r(value: float) -> float | str:
    return "" if math.isnan(value) else round(value, 6)


def _columns(prefix: str, est: Estimate | None) -> dict[str, Any]:
    if est is None:
        return {prefix: "", f"{prefix}_lo": "", f"{prefix}_hi": ""}
    return {prefix: _r(est.value), f"{prefix}_lo": _r(est.lo), f"{prefix}_hi": _r(est.hi)}


def band_table(rows: list[BandRow], info: StudyInfo) -> list[dict[str, Any]]:
    """table.csv: band, results, then per metric its mean, interval, and paired difference to none."""
    table = []
    for row in rows:
        record: dict[str, Any] = {"band": row.band, "results": row.results}
        for metric in METRICS:
            record.update(_columns(metric, row.estimates[metric]))
            record.update(_columns(f"{metric}_diff_vs_none", row.differences[metric]))
        record.update({"judge": info.judge, "guide": info.guide})
        table.append(record)
    return table


def style_table(rows: list[StyleRow]) -> list[dict[str, Any]]:
    table = []
    for style in dict.fromkeys(r.style for r in rows):
        best = best_band(rows, style)
        for row in (r for r in rows if r.style == style):
            record: dict[str, Any] = {"style": style, "band": row.band}
            for metric in STYLE_METRICS:
                record.update(_columns(metric, row.estimates[metric]))
                record.update(_columns(f"{metric}_diff_vs_none", row.differences[metric]))
            record.update({"paper_band": recommended_band(style), "best_band_here": best})
            table.append(record)
    return table


def recommendations(rows: list[StyleRow]) -> list[tuple[str, str, str]]:
    """(style, band the paper recommends or '', band that scored best here or '') per style."""
    return [(s, recommended_band(s), best_band(rows, s)) for s in dict.fromkeys(r.style for r in rows)]


def markdown(rows: list[BandRow], styles: list[StyleRow], info: StudyInfo) -> str:
    head = ["band", "results", *MD_METRICS]
    lines = [
        "# Study", "",
        f"Judge: **{info.judge}** (CLIP and directional scores; unfiltered). Guide: {info.guide}. {info.settings}.",
        f"{info.images} content image(s) x {info.prompts} prompt(s) per band. Each cell: mean [95% bootstrap "
        f"interval over images and prompts, {info.rounds} rounds]; second line of each band: the paired difference "
        "to `none` (same image, prompt and seed).", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = " | ".join(row.estimates[m].text() for m in MD_METRICS)
        lines.append(f"| {row.band} | {row.results} | {cells} |")
        if row.band != BASELINE and all(row.differences[m] is not None for m in MD_METRICS):
            lines.append(f"| {row.band} - none | | " + " | ".join(
                row.differences[m].text(signed=True) for m in MD_METRICS) + " |")  # type: ignore[union-attr]
    lines += ["", "## Per style", "", "| style | band | " + " | ".join(STYLE_METRICS) + " | text_rate - none |",
              "|" + "---|" * (3 + len(STYLE_METRICS))]
    for r in styles:
        diff = r.differences["text_rate"]
        lines.append(f"| {r.style} | {r.band} | " + " | ".join(r.estimates[m].text() for m in STYLE_METRICS)
                     + f" | {diff.text(signed=True) if diff is not None else ''} |")
    lines += ["", "## Band per style: the paper's recommendation and the best here", "",
              "Best here: the filtered band with the lowest text rate; ties go to the higher judge CLIP score.", "",
              "| style | paper | best here | agree |", "|---|---|---|---|"]
    for style, paper, best in recommendations(styles):
        agree = "" if not paper or not best else ("yes" if paper == best else "no")
        lines.append(f"| {style} | {paper or '-'} | {best or '-'} | {agree} |")
    return "\n".join(lines) + "\n"


def plot_intervals(rows: list[BandRow], path: Path) -> Path:
    """Text rate and judge CLIP score per band, with their 95% intervals as error bars."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    bands = [r.band for r in rows]
    for ax, metric, title, color in ((axes[0], "text_rate", "share of results with OCR text", "tab:red"),
                                     (axes[1], "judge_clip_score", "judge CLIP score", "tab:blue")):
        est = [r.estimates[metric] for r in rows]
        values = [0.0 if math.isnan(e.value) else e.value for e in est]
        errors = [[0.0 if math.isnan(e.value) else e.value - e.lo for e in est],
                  [0.0 if math.isnan(e.value) else e.hi - e.value for e in est]]
        ax.bar(bands, values, yerr=errors, capsize=4, color=color)
        ax.set_title(f"{title} (95% interval)")
        if metric == "text_rate":
            ax.set_ylim(0, 1)
    fig.tight_layout()
    return save_figure(fig, path)


def _html_table(records: list[dict[str, Any]], columns: list[str]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(str(rec.get(c, '')))}</td>" for c in columns) + "</tr>" for rec in records)
    return f"<table><tr>{head}</tr>{body}</table>"


def image_grid(judged: list[Judged], bands: list[str]) -> str:
    """Rows (content image, prompt) x columns (bands) of OCR-annotated results, the evaluation's thumbnails."""
    e = html.escape
    cells = {(j.job.name, j.job.text, j.metrics.item.band): j for j in judged}
    keys = list(dict.fromkeys((j.job.name, j.job.text) for j in judged))
    head = "<th>image · prompt</th>" + "".join(f"<th>{e(b)}</th>" for b in bands)
    rows = []
    for name, text in keys:
        tds = []
        for band in bands:
            j = cells.get((name, text, band))
            if j is None:
                tds.append("<td></td>")
                continue
            m = j.metrics
            thumb = png_data_uri(card_image(m))
            tds.append(f'<td><img style="max-width:220px" alt="{e(m.item.image.name)}" src="{thumb}">'
                       f'<div class="meta">{m.text.count} text box(es) · judge {m.clip_score:.3f}</div></td>')
        rows.append(f"<tr><td>{e(name)}<br>{e(text)}</td>{''.join(tds)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_study_report(judged: list[Judged], rows: list[BandRow], styles: list[StyleRow], info: StudyInfo,
                       out: Path, seed: int) -> list[Path]:
    """Every study file in ``out``; returns their paths (table.csv first)."""
    table = band_table(rows, info)
    files = [write_csv(table, out / TABLE_CSV)]
    with atomic_path(out / TABLE_MD) as tmp:
        tmp.write_text(markdown(rows, styles, info), encoding="utf-8")
    files.append(out / TABLE_MD)
    files.append(write_csv(style_table(styles), out / STYLES_CSV))
    files.append(write_csv([j.row(seed) for j in judged], out / RESULTS_CSV))
    (out / PLOTS_DIR).mkdir(exist_ok=True)
    plot = plot_intervals(rows, out / PLOTS_DIR / "bands_with_intervals.png")
    evaluation = write_report([j.metrics for j in judged], out / EVALUATION_DIR)
    shown = []  # the markdown table's cells: "mean [lo, hi]", and a row of paired differences per band
    for row in rows:
        shown.append({"band": row.band, "results": row.results, **{m: row.estimates[m].text() for m in MD_METRICS}})
        if row.band != BASELINE:
            shown.append({"band": f"{row.band} - none", "results": "", **{
                m: d.text(signed=True) if (d := row.differences[m]) is not None else "" for m in MD_METRICS}})
    columns = ["band", "results", *MD_METRICS]
    e = html.escape
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>spectralstyle study</title><style>{CSS}</style></head>
<body><h1>spectralstyle study</h1>
<div class="sub">judge {e(info.judge)} · guide {e(info.guide)} · {e(info.settings)} · {info.images} image(s) x
{info.prompts} prompt(s) · {stamp}</div>
<h2>Per band</h2><p class="note">Means with 95% bootstrap intervals over images and prompts ({info.rounds} rounds);
"band - none": the paired difference to plain CLIP (same image, prompt, seed). All columns: {TABLE_CSV}.</p>
{_html_table(shown, columns)}
<h2>Plots</h2><div class="plots"><img alt="bands" src="{png_data_uri(Image.open(plot))}"></div>
<h2>Per style</h2>{_html_table(style_table(styles), ["style", "band", *STYLE_METRICS, "paper_band", "best_band_here"])}
<h2>Images</h2>{image_grid(judged, [r.band for r in rows])}
<p class="note">Every result with its OCR strings and scores: <a href="{EVALUATION_DIR}/report.html">the evaluation
report</a>.</p>
</body></html>
"""
    with atomic_path(out / REPORT_HTML) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return [*files, plot, out / REPORT_HTML, evaluation.html]
