"""The study's bootstrap and paired differences, checked against a direct NumPy computation on known numbers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from spectralstyle.study.protocol import PAPER_STYLES, recommended_band
from spectralstyle.study.summary import (
    Results,
    band_rows,
    best_band,
    bootstrap_draws,
    estimate,
    replicate_means,
    style_rows,
)

# 3 images x 2 prompts; text found (1) or not (0) and a judge score per cell
NONE_TEXT = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
C2_TEXT = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
NONE_SCORE = np.array([[0.20, 0.30], [0.25, 0.35], [0.22, np.nan]])  # one cell not measured
C2_SCORE = np.array([[0.21, 0.28], [0.27, 0.33], [0.22, 0.31]])


def direct_round_means(grid: np.ndarray, draws) -> np.ndarray:
    """Round by round, literally: the drawn images' rows, the drawn prompts' columns, their mean."""
    with warnings.catch_warnings():  # a round may draw only the unmeasured cell: NaN, as in replicate_means
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array([np.nanmean(grid[np.ix_(draws.images[r], draws.prompts[r])]) for r in range(draws.rounds)])


def rows_of(values: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    rows = []
    for band in ("none", "c2"):
        for i in range(3):
            for p, prompt in enumerate(("pop art", "fauvism")):
                rows.append({"image": f"img{i}.png", "prompt": prompt, "band": band,
                             **{m: values[m][band][i, p] for m in values}})
    return rows


def test_round_means_equal_the_direct_computation():
    draws = bootstrap_draws(3, 2, rounds=500, seed=7)
    for grid in (NONE_TEXT, NONE_SCORE, C2_SCORE - NONE_SCORE):
        assert np.allclose(replicate_means(grid, draws), direct_round_means(grid, draws), atol=1e-12, equal_nan=True)


def test_estimate_is_the_mean_and_the_percentiles_of_the_direct_rounds():
    draws = bootstrap_draws(3, 2, rounds=400, seed=3)
    diff = C2_TEXT - NONE_TEXT
    est = estimate(diff, draws)
    assert est.value == pytest.approx(-3 / 6)  # (-1 + 0 + 0 - 1 - 1 + 0) / 6: c2 removes text in 3 of 6 cells
    lo, hi = np.percentile(direct_round_means(diff, draws), [2.5, 97.5])
    assert (est.lo, est.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert est.lo <= est.value <= est.hi <= 0
    # a constant difference has no spread; NaN cells are left out of the mean
    assert estimate(np.full((3, 2), 0.25), draws) == pytest.approx(type(est)(0.25, 0.25, 0.25))
    assert estimate(NONE_SCORE, draws).value == pytest.approx(np.mean([0.20, 0.30, 0.25, 0.35, 0.22]))


def test_band_rows_pair_each_cell_with_none():
    values = {"text_rate": {"none": NONE_TEXT, "c2": C2_TEXT}, "judge_clip_score": {"none": NONE_SCORE, "c2": C2_SCORE}}
    results = Results.from_rows(rows_of(values), bands=["none", "c2"], metrics=values)
    assert results.images == ["img0.png", "img1.png", "img2.png"] and results.prompts == ["pop art", "fauvism"]
    draws = bootstrap_draws(3, 2, rounds=300, seed=1)
    none, c2 = band_rows(results, draws, metrics=values)
    assert (none.band, c2.band, none.results, c2.results) == ("none", "c2", 6, 6)
    assert none.differences["text_rate"] is None
    assert c2.estimates["text_rate"].value == pytest.approx(1 / 6)
    assert none.estimates["text_rate"].value == pytest.approx(4 / 6)
    paired = C2_SCORE - NONE_SCORE  # the unmeasured cell drops out of the pairs
    assert c2.differences["judge_clip_score"].value == pytest.approx(np.nanmean(paired))
    lo, hi = np.nanpercentile(direct_round_means(paired, draws), [2.5, 97.5])  # rounds of only that cell: none
    assert c2.differences["judge_clip_score"].lo == pytest.approx(lo)
    assert c2.differences["judge_clip_score"].hi == pytest.approx(hi)


def test_style_breakdown_and_best_band():
    c1_text = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    values = {"text_rate": {"none": NONE_TEXT, "c2": C2_TEXT, "c1": c1_text},
              "judge_clip_score": {"none": NONE_SCORE, "c2": C2_SCORE, "c1": C2_SCORE + 0.01},
              "judge_directional": {"none": NONE_SCORE, "c2": C2_SCORE, "c1": C2_SCORE}}
    rows = []
    for band in ("none", "c1", "c2"):
        for i in range(3):
            for p, prompt in enumerate(("pop art", "fauvism")):
                rows.append({"image": f"img{i}", "prompt": prompt, "band": band,
                             **{m: values[m][band][i, p] for m in values}})
    results = Results.from_rows(rows, bands=["none", "c1", "c2"], metrics=values)
    styles = style_rows(results, rounds=200)
    pop_c2 = next(r for r in styles if r.style == "pop art" and r.band == "c2")
    assert pop_c2.estimates["text_rate"].value == 0.0
    assert pop_c2.differences["text_rate"].value == pytest.approx(0 - 2 / 3)
    # pop art: c1 and c2 both find text in 0 of 3 images, c1's judge score is higher; fauvism: c2 1/3 beats c1 2/3
    assert best_band(styles, "pop art") == "c1" and best_band(styles, "fauvism") == "c2"
    assert math.isnan(estimate(np.full((2, 2), np.nan), bootstrap_draws(2, 2, 10)).value)


def test_paper_protocol_bands():
    assert len(PAPER_STYLES) == 12
    assert [recommended_band(s) for s in ("pop art", "Fauvism", "LOWBROW", "digital  art", "cubism")] == \
        ["c2", "c3", "c1", "c3", ""]
