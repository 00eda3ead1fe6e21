"""A whole study in library calls: the prompts and bands of a protocol, the grid, the summary.

``spectralstyle study`` is these functions plus printing; a script can call them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectralstyle.bands import band_label
from spectralstyle.batch.jobs import Job
from spectralstyle.errors import SpectralStyleError
from spectralstyle.runs.models import Models
from spectralstyle.settings import TransferConfig
from spectralstyle.study.grid import grid_progress
from spectralstyle.study.judging import Judge, guide_label, judge_all, judge_label
from spectralstyle.study.protocol import JUDGES, PAPER_SETTINGS, PAPER_STYLES, STUDY_BANDS
from spectralstyle.study.report import StudyInfo, write_study_report
from spectralstyle.study.summary import BASELINE, DEFAULT_ROUNDS, Results, band_rows, bootstrap_draws, style_rows


@dataclass(frozen=True)
class Protocol:
    """What a study runs: prompts, bands and the settings the protocol fixes (flags still override them)."""

    name: str
    prompts: list[str]
    bands: list[str]
    settings: dict[str, Any]


def paper_protocol() -> Protocol:
    """The paper's 12 styles, each with none, c1, c2 and c3, at 512x512, 200 steps, 64 crops, seed 1234."""
    return Protocol("paper", list(PAPER_STYLES), list(STUDY_BANDS), dict(PAPER_SETTINGS))


def check_judge(judge: str) -> str:
    if judge not in JUDGES:
        raise SpectralStyleError(f"unknown judge {judge!r}; use one of {', '.join(JUDGES)}")
    return judge


def find_judge(config: TransferConfig, judge: str, judge_weights: str | None = None) -> None:
    """Find (or download once) the judge's weights now, so that a missing file stops a study before its grid
    runs for hours, with the one message of ``weights`` for a missing model."""
    from spectralstyle.weights.resolve import resolve_model_files

    mode = "pretrained" if judge_weights else config.weights
    resolve_model_files(judge_weights or check_judge(judge), mode, None, "random", judge)


def summarize_study(plan: list[Job], out: Path, config: TransferConfig, judge: str, *, bands: list[str] | None = None,
                    judge_weights: str | None = None, min_confidence: float = 0.6, rounds: int = DEFAULT_ROUNDS,
                    models: Models | None = None, on_loading: Callable[[], None] | None = None,
                    on_start: Callable[[int, Job], None] | None = None) -> list[Path]:
    """Judge every result of a finished grid and write the tables, plots and report; returns the files.

    ``bands``: the table's row order (``none`` always first); ``models``: the guide's CLIP and VGG when this
    process has them loaded already (its grid ran here). Raises SpectralStyleError when jobs of the plan are
    not finished yet (other shards still running).
    """
    progress = grid_progress(plan, out)
    if not progress.complete:
        raise SpectralStyleError(f"{progress.total - progress.finished} of {progress.total} jobs of the study are not "
                                 "finished; run the study (every shard) first, then the summary")
    if on_loading is not None:
        on_loading()
    judged = judge_all(plan, out, Judge(config, check_judge(judge), judge_weights, models), min_confidence, on_start)
    seed = config.seed
    rows = [j.row(seed) for j in judged]
    labels = [band_label(b) for b in bands or []] + [str(r["band"]) for r in rows]
    order = sorted(dict.fromkeys(labels), key=lambda label: label != BASELINE)  # stable: none first
    results = Results.from_rows(rows, bands=order)
    draws = bootstrap_draws(len(results.images), len(results.prompts), rounds, seed=0)
    info = StudyInfo(judge_label(judge, config.weights, judge_weights), guide_label(config),
                     f"{config.width}x{config.height}, {config.steps} steps, {config.crops} crops, seed {seed}",
                     len(results.images), len(results.prompts), rounds)
    return write_study_report(judged, band_rows(results, draws), style_rows(results, rounds), info, out, seed)
