"""Measuring a study's results: OCR, content metrics and CLIP scores from an independent judge model.

Why a judge: the CLIP that guided an optimisation grades its own work when it also scores the result,
and optimisation against it inflates its scores. The judge is another CLIP architecture (ViT-B/16 by
default, or ViT-L/14), unfiltered, so every band is scored by one yardstick it was not optimised
against. The guide's own (unfiltered) scores are kept as extra columns, labelled ``guide_``.

Everything is measured with ``evaluation``'s functions (``evaluate_image`` and its ``ClipScorer``), once
per result: OCR and the content metrics with the judge's pass, the guide's two scores on the same tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF

from spectralstyle.bands import band_label
from spectralstyle.batch.jobs import Job
from spectralstyle.evaluation.metrics import ClipScorer, EvalInput, ImageMetrics, evaluate_image
from spectralstyle.media.images import load_image, open_rgb
from spectralstyle.method.clip_model import load_clip
from spectralstyle.runs.models import Models
from spectralstyle.settings import TransferConfig
from spectralstyle.study.grid import result_path


def judge_label(judge: str, weights: str, judge_weights: str | None = None) -> str:
    """How the judge is named in every table: 'ViT-B/16', 'ViT-B/16 (random weights)', or its file."""
    if judge_weights:
        return f"{judge} ({judge_weights})"
    return f"{judge} (random weights)" if weights == "random" else judge


def guide_label(config: TransferConfig) -> str:
    name = config.clip_weights or config.clip_model
    return f"{name} (random weights)" if config.weights == "random" and not config.clip_weights else name


@dataclass
class Judged:
    """One measured result: the evaluation's metrics (judge scores) and the guide's scores."""

    job: Job
    metrics: ImageMetrics
    guide_clip_score: float
    guide_directional: float | None

    def row(self, seed: int) -> dict[str, Any]:
        """The flat record the summary reads (results.csv): pairing keys, then one float per metric."""
        m = self.metrics
        return {
            "image": self.job.name, "prompt": self.job.text, "band": band_label(self.job.band), "seed": seed,
            "text_rate": 1.0 if m.text.has_text else 0.0,
            "ocr_chars": float(sum(len("".join(s.split())) for s in m.text.strings)),
            "judge_clip_score": m.clip_score, "judge_directional": _number(m.directional),
            "ssim": _number(m.ssim), "vgg_content_distance": _number(m.vgg_distance),
            "guide_clip_score": self.guide_clip_score, "guide_directional": _number(self.guide_directional),
            "ocr_strings": " | ".join(m.text.strings), "result": str(m.item.image), "content": str(self.job.content),
        }


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


class Judge:
    """The judge and guide CLIPs and VGG19 on one device, loaded once for all results."""

    def __init__(self, config: TransferConfig, judge: str, judge_weights: str | None = None,
                 models: Models | None = None) -> None:
        # the guide's CLIP and VGG exactly as the runs loaded them (``models``: the runs' own, in one process)
        self.models = models or Models.load(config)
        mode = "pretrained" if judge_weights else config.weights
        judge_model = load_clip(judge_weights or judge, device=self.models.device, weights=mode)
        self.judge = ClipScorer(judge_model, source_text=config.source_text)
        self.guide = ClipScorer(self.models.clip, source_text=config.source_text, text_cache=self.models.text_cache)

    @torch.no_grad()
    def measure(self, job: Job, image_path: Path, min_confidence: float) -> Judged:
        item = EvalInput(image=image_path, text=job.text, band=band_label(job.band), content=job.content)
        metrics = evaluate_image(item, self.judge, self.models.vgg, min_confidence)
        pil = open_rgb(image_path)
        image = TF.to_tensor(pil).unsqueeze(0)
        prompts = item.scored_prompts
        directional = None
        if job.content.is_file():
            content = load_image(job.content, (pil.width, pil.height))
            directional = self.guide.weighted_directional(image, content, prompts)
        return Judged(job, metrics, self.guide.weighted_score(image, prompts), directional)


def judge_all(plan: list[Job], out: Path, judge: Judge, min_confidence: float,
              on_start: Callable[[int, Job], None] | None = None) -> list[Judged]:
    """Measure every result of the plan (all finished: see grid.grid_progress)."""
    judged = []
    for n, job in enumerate(plan, 1):
        if on_start is not None:
            on_start(n, job)
        judged.append(judge.measure(job, result_path(job, out), min_confidence))
    return judged
