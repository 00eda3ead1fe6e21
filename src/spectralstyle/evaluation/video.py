"""evaluate on videos: OCR and CLIP scores on evenly sampled frames, plus temporal stability.

A video counts as one result. Its OCR summary is that of the sampled frame with the most text (a
word painted into any frame is a defect); CLIP, directional CLIP, SSIM and VGG distance are means over
the sampled frames, compared with the same frames of the source video when the sidecar names it.
Temporal stability comes from the sidecar that ``apply``/``video`` wrote, else it is computed by
streaming both videos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.temporal import temporal_stability, video_flicker
from spectralstyle.media.video import is_video, probe_video, sample_frames

EVAL_FRAMES = 4


def sidecar_stability(meta: dict[str, Any] | None) -> float | None:
    value = (meta or {}).get("temporal_stability")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def evaluate_video(item: Any, scorer: Any, vgg: Any = None, min_confidence: float = 0.6,
                   frames: int = EVAL_FRAMES) -> Any:
    """``ImageMetrics`` of a video result (see module doc); ``item`` is an ``EvalInput``."""
    from spectralstyle.evaluation.metrics import ImageMetrics, read_sidecar, ssim, text_summary, vgg_content_distance

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
        metrics.directional = float(np.mean([scorer.weighted_directional(o, c, prompts) for o, c in zip(outputs, contents)]))
        metrics.ssim = float(np.mean([ssim(o, c) for o, c in zip(outputs, contents)]))
        if vgg is not None:
            metrics.vgg_distance = float(np.mean([vgg_content_distance(vgg, o, c) for o, c in zip(outputs, contents)]))
    stability = sidecar_stability(read_sidecar(item.image))
    if stability is None and contents is not None:
        size = (info.width, info.height)
        stability = temporal_stability(video_flicker(item.content, size), video_flicker(item.image, size))
        notes.append("temporal stability computed from the source video")
    metrics.temporal_stability = stability
    metrics.note = "; ".join(notes)
    return metrics


def frame_strip_image(path: Path) -> Any:
    """The report's picture of a video: evenly spread frames side by side."""
    from spectralstyle.media.video import frame_strip

    return frame_strip(path, n=6, height=120)
