"""The study's numbers: per-band means with bootstrap 95% intervals over images and prompts, paired
differences to plain CLIP (band ``none``), a per-style breakdown and the best band of each style.

Why a two-way bootstrap: a study's results form an images x prompts grid per band, and both are samples
(other photos, other styles would give other numbers). Each bootstrap round draws the images with
replacement and, independently, the prompts with replacement, and averages over every drawn (image,
prompt) cell with its multiplicity; the 2.5th and 97.5th percentiles of the round means are the interval.
Differences are paired: the same (image, prompt, seed) cell under a band and under ``none``, with the same
draws, so the variation between images and prompts that both bands share cancels.

NumPy only (no torch): ``study --phase summary`` can run where results were copied to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

BASELINE = "none"
METRICS: dict[str, str] = {
    "text_rate": "share of results in which OCR finds words",
    "ocr_chars": "mean number of characters OCR reads",
    "judge_clip_score": "CLIP score from the judge model",
    "judge_directional": "directional CLIP score from the judge model",
    "ssim": "SSIM to the content image",
    "vgg_content_distance": "VGG19 content distance to the content image",
    "guide_clip_score": "CLIP score from the guiding model (grades its own work)",
    "guide_directional": "directional CLIP score from the guiding model",
}
"""Every summarised metric, in table order; each result row carries a float (NaN: not measured)."""
STYLE_METRICS = ("text_rate", "judge_clip_score", "judge_directional")
LOWER_IS_BETTER = {"text_rate", "ocr_chars", "vgg_content_distance"}
DEFAULT_ROUNDS = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean and its bootstrap interval (NaN when nothing was measured)."""

    value: float
    lo: float
    hi: float

    def text(self, digits: int = 3, signed: bool = False) -> str:
        if math.isnan(self.value):
            return "-"
        sign = "+" if signed else ""
        return f"{self.value:{sign}.{digits}f} [{self.lo:{sign}.{digits}f}, {self.hi:{sign}.{digits}f}]"


@dataclass(frozen=True)
class Draws:
    """Bootstrap draws: ``images[r]`` and ``prompts[r]`` are the indices drawn (with replacement) in round r."""

    images: np.ndarray  # [R, I] int
    prompts: np.ndarray  # [R, P] int

    @property
    def rounds(self) -> int:
        return int(self.images.shape[0])


def bootstrap_draws(n_images: int, n_prompts: int, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> Draws:
    """The same draws for every band and metric of one study (seeded: the summary is reproducible)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, n_images, size=(rounds, n_images))
    return Draws(images, rng.integers(0, n_prompts, size=(rounds, n_prompts)))


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of n units was drawn in each round: [R, n] float."""
    rounds = indices.shape[0]
    counts = np.zeros((rounds, n))
    np.add.at(counts, (np.repeat(np.arange(rounds), indices.shape[1]), indices.ravel()), 1.0)
    return counts


def replicate_means(grid: np.ndarray, draws: Draws) -> np.ndarray:
    """Mean of every bootstrap round [R] of an images x prompts grid [I, P] (NaN cells left out).

    Round r averages ``grid[draws.images[r]][:, draws.prompts[r]]``, computed as a count-weighted sum.
    """
    valid = ~np.isnan(grid)
    ci, cp = _counts(draws.images, grid.shape[0]), _counts(draws.prompts, grid.shape[1])
    total = np.einsum("ri,ip,rp->r", ci, np.where(valid, grid, 0.0), cp)
    weight = np.einsum("ri,ip,rp->r", ci, valid.astype(float), cp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)


def estimate(grid: np.ndarray, draws: Draws, confidence: float = CONFIDENCE) -> Estimate:
    """The grid's mean (NaN cells left out) and the percentile interval of its bootstrap means."""
    if not np.any(~np.isnan(grid)):
        return Estimate(math.nan, math.nan, math.nan)
    means = replicate_means(grid, draws)
    means = means[~np.isnan(means)]
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail]) if means.size else (math.nan, math.nan)
    return Estimate(float(np.nanmean(grid)), float(lo), float(hi))


@dataclass
class Results:
    """Measured values of a study: ``values[metric][band]`` is an images x prompts grid [I, P]."""

    images: list[str]
    prompts: list[str]
    bands: list[str]
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]], bands: Sequence[str] | None = None,
                  metrics: Iterable[str] = METRICS) -> "Results":
        """Rows with ``image``, ``prompt``, ``band`` and one float per metric (missing or None: NaN)."""
        rows = list(rows)
        images = sorted({str(r["image"]) for r in rows})
        prompts = list(dict.fromkeys(str(r["prompt"]) for r in rows))
        found = list(dict.fromkeys(str(r["band"]) for r in rows))
        order = [b for b in (bands or []) if b in found] + [b for b in found if b not in (bands or [])]
        result = cls(images, prompts, order)
        where = {(str(r["image"]), str(r["prompt"]), str(r["band"])): r for r in rows}
        for metric in metrics:
            result.values[metric] = {}
            for band in order:
                grid = np.full((len(images), len(prompts)), np.nan)
                for i, image in enumerate(images):
                    for p, prompt in enumerate(prompts):
                        value = where.get((image, prompt, band), {}).get(metric)
                        if value is not None and value != "":
                            grid[i, p] = float(value)
                result.values[metric][band] = grid
        return result

    def count(self, band: str) -> int:
        first = next(iter(self.values.values()))
        return int(np.sum(~np.isnan(first[band])))


@dataclass
class BandRow:
    """One row of table.csv: a band's estimates and its paired differences to ``none`` (None for none itself)."""

    band: str
    results: int
    estimates: dict[str, Estimate]
    differences: dict[str, Estimate | None]


def band_rows(results: Results, draws: Draws, metrics: Iterable[str] = METRICS) -> list[BandRow]:
    rows = []
    for band in results.bands:
        est: dict[str, Estimate] = {}
        diff: dict[str, Estimate | None] = {}
        for metric in metrics:
            grid = results.values[metric][band]
            est[metric] = estimate(grid, draws)
            baseline = results.values[metric].get(BASELINE)
            diff[metric] = (estimate(grid - baseline, draws)
                            if baseline is not None and band != BASELINE else None)
        rows.append(BandRow(band, results.count(band), est, diff))
    return rows


@dataclass
class StyleRow:
    """One (style, band) of the per-style breakdown: intervals over the images only."""

    style: str
    band: str
    estimates: dict[str, Estimate]
    differences: dict[str, Estimate | None]


def style_rows(results: Results, rounds: int = DEFAULT_ROUNDS, seed: int = 0,
               metrics: Iterable[str] = STYLE_METRICS) -> list[StyleRow]:
    draws = bootstrap_draws(len(results.images), 1, rounds, seed)
    rows = []
    for p, style in enumerate(results.prompts):
        for band in results.bands:
            est: dict[str, Estimate] = {}
            diff: dict[str, Estimate | None] = {}
            for metric in metrics:
                column = results.values[metric][band][:, [p]]
                est[metric] = estimate(column, draws)
                baseline = results.values[metric].get(BASELINE)
                diff[metric] = (estimate(column - baseline[:, [p]], draws)
                                if baseline is not None and band != BASELINE else None)
            rows.append(StyleRow(style, band, est, diff))
    return rows


def best_band(rows: list[StyleRow], style: str) -> str:
    """The filtered band (not ``none``) of a style with the lowest text rate; ties: the higher judge score."""
    candidates = [r for r in rows if r.style == style and r.band != BASELINE
                  and not math.isnan(r.estimates["text_rate"].value)]
    if not candidates:
        return ""

    def key(row: StyleRow) -> tuple[float, float]:
        score = row.estimates["judge_clip_score"].value
        return (row.estimates["text_rate"].value, -(score if not math.isnan(score) else -math.inf))

    return min(candidates, key=key).band
