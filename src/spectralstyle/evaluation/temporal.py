"""Temporal stability of a video result: how much it changes from frame to frame, against its input.

Kept apart from the container code (``media/video.py``): it is a measure of a result, computed while
``apply`` writes a video and by ``evaluate`` for a video whose sidecar does not record it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spectralstyle.media.video import decoded_frames, frame_to_tensor, open_video


class Flicker:
    """Running mean absolute difference between consecutive frames [1, 3, H, W] in [0, 1]."""

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.total = 0.0
        self.count = 0

    def add(self, frame: torch.Tensor) -> None:
        frame = frame.detach().float().cpu()
        if self.previous is not None:
            self.total += float((frame - self.previous).abs().mean())
            self.count += 1
        self.previous = frame

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


def temporal_stability(input_flicker: float, output_flicker: float) -> float | None:
    """Output flicker over input flicker (1.0 = the result changes from frame to frame as much as the input).

    A still input (no change at all) has no ratio: None, unless the output is still too (1.0).
    """
    if input_flicker > 0:
        return output_flicker / input_flicker
    return 1.0 if output_flicker == 0 else None


def video_flicker(path: str | Path, size: tuple[int, int]) -> float:
    """Mean |frame[t] - frame[t-1]| of a video at ``size`` (width, height), streamed."""
    flicker = Flicker()
    container = open_video(path)
    try:
        for frame in decoded_frames(container, path):
            flicker.add(frame_to_tensor(frame, size))
    finally:
        container.close()
    return flicker.value
