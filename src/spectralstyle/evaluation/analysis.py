"""The paper's spectral analysis: which token frequencies carry written words?

For each image, the last block's token sequence is transformed with the orthonormal DCT along the
token axis; its per-frequency energy (mean squared coefficient over channels) is one curve of 50
values. Then each dyadic band is removed in turn (SpectralCLIP keeping the complement) and the CLIP
score with the text is measured again. With images labelled by OCR (text present or not), a band
"separates" the groups when its energy, or the score lost by removing it, ranks text images above
(or below) the others: AUC far from 0.5, and a large point-biserial correlation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.ocr import (
    DEFAULT_MIN_CONFIDENCE,
    TextSummary,
    text_summary,
)
from spectralstyle.evaluation.outputs import choose_outputs, write_evaluation_record
from spectralstyle.evaluation.report import pyplot, save_figure, write_csv
from spectralstyle.evaluation.scores import ClipScorer
from spectralstyle.media.images import open_rgb
from spectralstyle.method.clip_model import SpectralCLIP, clip_input
from spectralstyle.method.losses import normalize
from spectralstyle.method.spectral import dct_matrix, parse_bands

DYADIC_BANDS = ("0-1", "2-3", "4-7", "8-15", "16-49")
"""Frequency bands removed one at a time, on the 50-index reference scale."""

SEPARATING_AUC = 0.75
"""A band separates the groups when AUC >= this or <= 1 - this."""


def mask_to_spec(keep: torch.Tensor) -> str:
    """Bool mask over reference indices -> band spec, e.g. [F,F,T,...,T] -> '2-49'."""
    parts, start = [], None
    for i, kept in enumerate([*keep.tolist(), False]):
        if kept and start is None:
            start = i
        elif not kept and start is not None:
            parts.append(f"{start}-{i - 1}" if i - 1 > start else str(start))
            start = None
    if not parts:
        raise ValueError("a band spec must keep at least one frequency")
    return ",".join(parts)


def complement_spec(band: str) -> str:
    """The kept spec that removes exactly ``band``: '4-7' -> '0-3,8-49'."""
    return mask_to_spec(~parse_bands(band))


@dataclass
class ImageSpectrum:
    """Spectral measurements of one image."""

    image: Path
    text: TextSummary
    energy: list[float]
    """Mean squared DCT coefficient per token frequency (N values; 50 for ViT-B/32)."""
    band_energy: dict[str, float]
    full_score: float
    score_without: dict[str, float]
    """CLIP score with the text when the band is removed."""

    def drop(self, band: str) -> float:
        """CLIP score lost by removing ``band`` (positive: the band carried text agreement)."""
        return self.full_score - self.score_without[band]

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"image": str(self.image), "has_text": int(self.text.has_text),
                               "text_boxes": self.text.count,
                               "ocr_strings": " | ".join(self.text.strings), "clip_full": round(self.full_score, 6)}
        for band in self.score_without:
            row[f"clip_without_{band}"] = round(self.score_without[band], 6)
            row[f"energy_{band}"] = round(self.band_energy[band], 6)
        return row


@dataclass
class BandSeparation:
    """How well one band tells text images from the others."""

    band: str
    auc_energy: float
    r_energy: float
    auc_drop: float
    r_drop: float

    @property
    def separates(self) -> bool:
        return any(not math.isnan(a) and abs(a - 0.5) >= SEPARATING_AUC - 0.5 for a in (self.auc_energy, self.auc_drop))

    def row(self) -> dict[str, Any]:
        return {"band": self.band, "auc_energy": _r(self.auc_energy), "pointbiserial_energy": _r(self.r_energy),
                "auc_score_drop": _r(self.auc_drop), "pointbiserial_score_drop": _r(self.r_drop),
                "separates": int(self.separates)}


def _r(x: float) -> float | str:
    return "" if math.isnan(x) else round(x, 4)


def auc(values: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``values`` as a score for ``labels`` (ties count 1/2; Mann-Whitney U)."""
    values, labels = np.asarray(values, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = values[labels], values[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def point_biserial(values: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation of ``values`` with the 0/1 labels (NaN when either is constant)."""
    values, labels = np.asarray(values, dtype=float), np.asarray(labels, dtype=float)
    if len(values) < 2 or values.std() == 0 or labels.std() == 0:
        return float("nan")
    return float(np.corrcoef(values, labels)[0, 1])


@torch.no_grad()
def token_energy(encoder: SpectralCLIP, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [B, N, D], per-frequency energy [B, N]) of CLIP-normalised images."""
    tokens = encoder.tokens(pixels).float()
    c = dct_matrix(tokens.shape[1], torch.float32).to(tokens.device)
    coeffs = torch.einsum("kn,bnd->bkd", c, tokens)
    return tokens, coeffs.pow(2).mean(dim=-1)


@torch.no_grad()
def analyze_image(scorer: ClipScorer, path: Path, text: str, bands: tuple[str, ...] = DYADIC_BANDS,
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> ImageSpectrum:
    """Energy spectrum, per-band energy and CLIP score without each band, for one image."""
    pil = open_rgb(path)
    found = text_summary(pil, min_confidence)  # first: an OCR failure (OcrError) costs no CLIP pass
    clip_model, device, text_features = scorer.clip, scorer.device, scorer.text(text)
    plain = SpectralCLIP(clip_model, "none").to(device)
    tokens, energy = token_energy(plain, clip_input(TF.to_tensor(pil).unsqueeze(0).to(device)))
    n = tokens.shape[1]

    def score(encoder: SpectralCLIP) -> float:
        return float(normalize(encoder.project(encoder.pool(tokens)).float()) @ text_features.T)

    return ImageSpectrum(
        path, found, energy[0].cpu().tolist(),
        {b: float(energy[0, parse_bands(b, n).to(device)].sum()) for b in bands},
        score(plain),
        {b: score(SpectralCLIP(clip_model, complement_spec(b)).to(device)) for b in bands},
    )


def band_separation(results: list[ImageSpectrum], bands: tuple[str, ...] = DYADIC_BANDS) -> list[BandSeparation]:
    labels = np.array([r.text.has_text for r in results])
    out = []
    for b in bands:
        energy = np.array([r.band_energy[b] for r in results])
        drop = np.array([r.drop(b) for r in results])
        out.append(BandSeparation(b, auc(energy, labels), point_biserial(energy, labels), auc(drop, labels),
                                  point_biserial(drop, labels)))
    return out


def analyze(scorer: ClipScorer, images: list[Path], text: str, bands: tuple[str, ...] = DYADIC_BANDS,
            min_confidence: float = DEFAULT_MIN_CONFIDENCE, on_skip: Callable[[str], None] | None = None,
            ) -> tuple[list[ImageSpectrum], list[BandSeparation] | None]:
    """Per-image spectra and, when both groups (with and without text) are present, the band separation.

    With ``on_skip``, an image that cannot be measured (the OCR engine fails on it, it became
    unreadable) is reported there and left out; when none is left it is a SpectralStyleError.
    """
    results = []
    for p in images:
        try:
            results.append(analyze_image(scorer, p, text, bands, min_confidence))
        except SpectralStyleError as exc:
            if on_skip is None:
                raise
            on_skip(f"{p}: {exc}")
    if not results:
        raise SpectralStyleError(f"none of the {len(images)} image(s) could be analysed")
    groups = {r.text.has_text for r in results}
    return results, band_separation(results, bands) if len(groups) == 2 else None


MIN_GROUP_SIZE = 5
"""Below this many images in a group, an AUC is too coarse to mean much (said on the console)."""


def small_group_line(results: list[ImageSpectrum]) -> str | None:
    """A caution when either OCR group is too small for the AUC to be read as evidence."""
    with_text = sum(r.text.has_text for r in results)
    smallest = min(with_text, len(results) - with_text)
    if smallest >= MIN_GROUP_SIZE:
        return None
    return (f"caution: {with_text} image(s) with text and {len(results) - with_text} without; with fewer than "
            f"{MIN_GROUP_SIZE} in a group the AUCs are coarse")


def one_group_line(results: list[ImageSpectrum]) -> str:
    has = results[0].text.has_text
    return (f"only one group: all {len(results)} image(s) {'have' if has else 'have no'} text by OCR, "
            "so no band separation is computed (per-image results are written)")


# --- outputs ----------------------------------------------------------------------------------------
def plot_spectrum(results: list[ImageSpectrum], bands: tuple[str, ...], path: Path) -> Path:
    """Per-image energy curves (log scale) coloured by OCR group, with the dyadic bands marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for has_text, color, label in ((True, "tab:red", "text found"), (False, "tab:blue", "no text")):
        group = [r for r in results if r.text.has_text == has_text]
        for r in group:
            ax.plot(r.energy, color=color, alpha=0.35, lw=1)
        if group:
            ax.plot(np.mean([r.energy for r in group], axis=0), color=color, lw=2.5,
                    label=f"{label} (mean of {len(group)})")
    n = len(results[0].energy)
    for b in bands:
        idx = np.flatnonzero(parse_bands(b, n).numpy())
        ax.axvline(idx[0] - 0.5, color="grey", lw=0.6, ls=":")
        ax.text((idx[0] + idx[-1]) / 2, 1.01, b, ha="center", va="bottom", fontsize=8,
                transform=ax.get_xaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel(f"token frequency (DCT index, {n} tokens)")
    ax.set_ylabel("energy (mean squared coefficient)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_bands(results: list[ImageSpectrum], separation: list[BandSeparation] | None, bands: tuple[str, ...],
               path: Path) -> Path:
    """Left: CLIP score lost by removing each band, per group. Right: AUC per band (when computable)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    x = np.arange(len(bands))
    groups = ((True, "tab:red", "text found"), (False, "tab:blue", "no text"))
    for offset, (has_text, color, label) in zip((-0.2, 0.2), groups):
        group = [r for r in results if r.text.has_text == has_text]
        if group:
            axes[0].bar(x + offset, [np.mean([r.drop(b) for r in group]) for b in bands], 0.4, color=color, label=label)
    axes[0].set_xticks(x, bands)
    axes[0].set_title("CLIP score lost when the band is removed")
    axes[0].legend(fontsize=8)
    if separation:
        axes[1].bar(x - 0.2, [s.auc_energy for s in separation], 0.4, label="band energy")
        axes[1].bar(x + 0.2, [s.auc_drop for s in separation], 0.4, label="score drop")
        axes[1].axhline(0.5, color="grey", lw=0.8)
        axes[1].set_ylim(0, 1)
        axes[1].legend(fontsize=8)
    else:
        axes[1].text(0.5, 0.5, "one OCR group only:\nno AUC", ha="center", va="center", transform=axes[1].transAxes)
    axes[1].set_xticks(x, bands)
    axes[1].set_title("AUC text vs no text")
    fig.tight_layout()
    return save_figure(fig, path)


def write_analysis(results: list[ImageSpectrum], separation: list[BandSeparation] | None, out_dir: Path,
                   bands: tuple[str, ...] = DYADIC_BANDS, settings: Mapping[str, object] | None = None,
                   overwrite: bool = False, inputs: list[Path] | None = None,
                   on_note: Callable[[str], None] | None = None) -> list[Path]:
    """per_image.csv, spectrum.csv, bands.csv (when separable), two plots and analysis.json in ``out_dir``.

    As ``report.write_report``: another analysis's files there get no overwrite; this one is then written
    under ``<name>_<hash>`` with one note through ``on_note``, unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = inputs if inputs is not None else [r.image for r in results]
    settings = {**(settings or {}), "bands": list(bands)}
    names, note = choose_outputs(out_dir, "analyze", inputs, settings, overwrite)
    if note and on_note:
        on_note(note)
    record = write_evaluation_record(names, inputs, settings)
    files = [write_csv([r.row() for r in results], names.path("per_image"))]
    spectrum_rows = [{"image": str(r.image), "has_text": int(r.text.has_text),
                      **{f"e{k}": f"{v:.6g}" for k, v in enumerate(r.energy)}} for r in results]
    files.append(write_csv(spectrum_rows, names.path("spectrum_csv")))
    if separation is not None:
        files.append(write_csv([s.row() for s in separation], names.path("bands_csv")))
    files.append(plot_spectrum(results, bands, names.path("spectrum")))
    files.append(plot_bands(results, separation, bands, names.path("band_scores")))
    return [*files, record]
