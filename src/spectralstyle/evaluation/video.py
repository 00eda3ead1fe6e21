"""evaluate on videos: OCR and CLIP scores on evenly sampled frames, plus temporal stability.

A video counts as one result. Its OCR summary is that of the sampled frame with the most text (a
word painted into any frame is a defect); CLIP, directional CLIP, SSIM and VGG distance are means over
the sampled frames, compared with the same frames of the source video when the sidecar names it.
Temporal stability comes from the sidecar that ``apply``/``video`` wrote, else it is computed by
streaming both videos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.inputs import EvalInput, read_sidecar
from spectralstyle.evaluation.ocr import DEFAULT_MIN_CONFIDENCE, text_summary
from spectralstyle.evaluation.scores import (
    ClipScorer,
    ImageMetrics,
    ssim,
    vgg_content_distance,
)
from spectralstyle.media.video import (
    frame_strip,
    is_video,
    probe_video,
    sample_frames,
    temporal_stability,
    video_flicker,
)
from spectralstyle.method.vgg import VGGContent
from spectralstyle.record import RunRecord

EVAL_FRAMES = 4


def sidecar_stability(record: RunRecord | None) -> float | None:
    """The temporal stability ``apply``/``video`` recorded, if the record has a number there."""
    value = record.get("temporal_stability") if record is not None else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def evaluate_video(item: EvalInput, scorer: ClipScorer, vgg: VGGContent | None = None,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE, frames: int = EVAL_FRAMES) -> ImageMetrics:
    """``ImageMetrics`` of a video result (see module doc)."""
    info = probe_video(item.image)
    outputs = sample_frames(item.image, frames)
    summaries = [text_summary(frame, min_confidence) for frame in outputs]
    worst = max(range(len(summaries)), key=lambda i: (summaries[i].area_fraction, summaries[i].count))
    prompts = item.scored_prompts
    metrics = ImageMetrics(item, summaries[worst], float(np.mean([scorer.weighted_score(f, prompts) for f in outputs])))
    notes = [f"video: {info.frames} frames; scores are means over {len(outputs)} sampled frames, "
             f"OCR shows the frame with most text (frame {worst + 1} of {len(outputs)})"]
    if item.scoring_note:
        notes.append(item.scoring_note)
    contents = None
    if item.content is None:
        notes.append("no source video recorded: content metrics skipped")
    elif not item.content.is_file() or not is_video(item.content):
        notes.append(f"source video {item.content} not found: content metrics skipped")
    else:
        try:
            contents = sample_frames(item.content, frames)
        except SpectralStyleError as exc:
            notes.append(f"{exc}: content metrics skipped")
    if contents is not None and len(contents) == len(outputs):
        contents = [F.interpolate(c, size=o.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
                    if c.shape[-2:] != o.shape[-2:] else c for c, o in zip(contents, outputs)]
        pairs = list(zip(outputs, contents))
        metrics.directional = float(np.mean([scorer.weighted_directional(o, c, prompts) for o, c in pairs]))
        metrics.ssim = float(np.mean([ssim(o, c) for o, c in pairs]))
        if vgg is not None:
            metrics.vgg_distance = float(np.mean([vgg_content_distance(vgg, o, c) for o, c in pairs]))
    stability = sidecar_stability(item.record if item.record is not None else read_sidecar(item.image))
    if stability is None and contents is not None:
        size = (info.width, info.height)
        stability = temporal_stability(video_flicker(item.content, size), video_flicker(item.image, size))
        notes.append("temporal stability computed from the source video")
    metrics.temporal_stability = stability
    metrics.note = "; ".join(notes)
    return metrics


def frame_strip_image(path: Path) -> Image.Image:
    """The report's picture of a video: evenly spread frames side by side."""
    return frame_strip(path, n=6, height=120)
