"""The evaluation: measure each result (OCR, CLIP scores, content preservation) into ``ImageMetrics``.

The parts live in their own modules: ``inputs`` (which results, what their records say, which models
to score with), ``ocr`` (written words), ``scores`` (CLIP, directional, SSIM, VGG distance), ``video``
(results that are videos), ``outputs`` (the file names of evaluate and analyze) and ``report`` (the
HTML, CSV and plots). Their public names are importable from here too, as before the split.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision.transforms.functional as TF

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.inputs import (  # noqa: F401 - re-exported
    SKIPPED_KINDS,
    SKIPPED_STATUSES,
    UNKNOWN_BAND,
    EvalInput,
    ScoringModels,
    SidecarError,
    collect_images,
    collect_inputs,
    read_sidecar,
    scoring_models,
)
from spectralstyle.evaluation.ocr import (  # noqa: F401 - re-exported
    DEFAULT_MIN_CONFIDENCE,
    MAX_OCR_ASPECT,
    OCR_MAX_SIDE,
    OcrCanvas,
    OcrError,
    TextBox,
    TextSummary,
    detect_text,
    ocr_canvas,
    ocr_engine,
    text_summary,
)
from spectralstyle.evaluation.outputs import (  # noqa: F401 - re-exported
    ANALYZE_OUTPUTS,
    BAND_SCORES_PLOT,
    BANDS_PLOT,
    EVALUATE_OUTPUTS,
    PLOT_KIND,
    SCATTER_PLOT,
    SPECTRUM_PLOT,
)
from spectralstyle.evaluation.scores import (  # noqa: F401 - re-exported
    SOURCE_TEXT,
    ClipScorer,
    ImageMetrics,
    clip_image_features,
    clip_score,
    directional_clip_score,
    gaussian_window,
    ssim,
    vgg_content_distance,
)
from spectralstyle.evaluation.video import evaluate_video
from spectralstyle.media.images import load_image, open_rgb
from spectralstyle.media.video import is_video
from spectralstyle.method.clip_model import clip_input  # noqa: F401 - re-exported
from spectralstyle.method.vgg import VGGContent


@torch.no_grad()
def evaluate_image(item: EvalInput, scorer: ClipScorer, vgg: VGGContent | None = None,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> ImageMetrics:
    """OCR, CLIP score and (when the content image is available) directional CLIP, SSIM and VGG distance.

    A weighted multi-prompt is scored against its positive prompts, weight-averaged (``scoring_note``).
    Raises OcrError when the OCR engine fails on the image. Videos: see ``video.evaluate_video``.
    """
    if is_video(item.image):
        return evaluate_video(item, scorer, vgg, min_confidence)
    pil = open_rgb(item.image)
    image = TF.to_tensor(pil).unsqueeze(0)
    prompts = item.scored_prompts
    metrics = ImageMetrics(item, text_summary(pil, min_confidence), scorer.weighted_score(image, prompts))
    notes = [item.scoring_note] if item.scoring_note else []
    content = None
    if item.content is None:
        notes.append("no content image recorded: content metrics skipped")
    elif not item.content.is_file():
        notes.append(f"content image {item.content} not found: content metrics skipped")
    else:
        try:
            content = load_image(item.content, (pil.width, pil.height))
        except SpectralStyleError as exc:
            notes.append(f"{exc}: content metrics skipped")
    if content is not None:
        metrics.directional = scorer.weighted_directional(image, content, prompts)
        metrics.ssim = ssim(image, content)
        if vgg is not None:
            metrics.vgg_distance = vgg_content_distance(vgg, image, content)
    metrics.note = "; ".join(notes)
    return metrics


def evaluate_images(items: list[EvalInput], scorer: ClipScorer, vgg: VGGContent | None = None,
                    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                    on_skip: Callable[[str], None] | None = None,
                    on_start: Callable[[int, EvalInput], None] | None = None) -> list[ImageMetrics]:
    """``evaluate_image`` for each item; with ``on_skip``, an image that cannot be measured (the OCR
    engine fails on it, it became unreadable) is reported there and left out instead of stopping the run."""
    results = []
    for n, item in enumerate(items, 1):
        if on_start is not None:
            on_start(n, item)
        try:
            results.append(evaluate_image(item, scorer, vgg, min_confidence))
        except SpectralStyleError as exc:
            if on_skip is None:
                raise
            on_skip(f"{item.image}: {exc}")
    return results
