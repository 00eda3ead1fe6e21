"""Checks that run before any model is loaded, so a run fails (or warns) before the work, not after.

Why: a full run takes minutes on a GPU and most of an hour on a CPU. A full disk found when the
result is written loses all of it; an input far smaller than the working size, or a float image
that PIL would turn black, gives a useless result that nobody notices until the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import image_header
from spectralstyle.settings import TransferConfig
from spectralstyle.sizes import parse_size_spec

SMALL_INPUT_FACTOR = 8
"""Inputs with fewer than 1/8 of the working size's pixels are warned about (they are upscaled)."""
SAFETY_BYTES = 4 * 2**20
"""Room for the log, state files and the temporary copy of a file being renamed into place."""


@lru_cache(maxsize=1)
def stylenet_parameters() -> int:
    from spectralstyle.method.stylenet import StyleNet

    return sum(p.numel() for p in StyleNet().parameters())


def checkpoint_bytes() -> int:
    """A resumable checkpoint: the StyleNet's weights plus Adam's two moments, float32."""
    return stylenet_parameters() * 3 * 4


def result_bytes(config: TransferConfig, save_model: bool = False) -> int:
    """An upper bound for what one job keeps: the PNG (stored, uncompressed RGB at worst), its sidecar
    (about 250 bytes of losses per step), snapshots every ``save_every`` steps, and the saved model."""
    image = max(config.width * config.height, output_pixels(config)) * 3 + 64 * 1024
    snapshots = (config.steps - 1) // config.save_every if config.save_every else 0
    model = stylenet_parameters() * 4 if save_model else 0
    return image * (1 + snapshots) + config.steps * 250 + 16 * 1024 + model


def output_pixels(config: TransferConfig) -> int:
    """Pixels of the result when the settings give its size exactly (``for_content`` resolved them), else the
    working size's (the output size is known per image only)."""
    width, height = parse_size_spec(config.output_size) if config.output_size[:1].isdigit() else (0, None)
    return width * height if height is not None else config.width * config.height


def needed_bytes(config: TransferConfig, jobs: int = 1, save_model: bool = False) -> int:
    """Results of ``jobs`` jobs plus one checkpoint (one job runs at a time in a process)."""
    return jobs * result_bytes(config, save_model) + checkpoint_bytes() + SAFETY_BYTES


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_free_space(out: Path, needed: int, what: str = "the result") -> None:
    """Refuse to start when ``out`` has less free space than ``needed`` bytes, naming the folder."""
    try:
        free = shutil.disk_usage(out).free
    except OSError:  # a filesystem that does not report its space: the write itself will tell
        return
    if free < needed:
        raise SpectralStyleError(f"not enough free space in {out}: {_size(free)} free, about {_size(needed)} needed "
                                 f"for {what} and checkpoints; free some space or choose another --out")


def small_inputs(paths: Iterable[Path], size: tuple[int, int]) -> list[tuple[Path, tuple[int, int]]]:
    """Inputs with more than ``SMALL_INPUT_FACTOR`` times fewer pixels than the working size."""
    target = size[0] * size[1]
    small = []
    for path in paths:
        header = image_header(path)
        if header and header[0][0] * header[0][1] * SMALL_INPUT_FACTOR < target:
            small.append((path, header[0]))
    return small


def float_inputs(paths: Iterable[Path]) -> list[Path]:
    """Float images (mode F: 32-bit TIFF and the like); they are scaled by ``image_io.float_to_8bit``."""
    return [p for p in paths if (header := image_header(p)) and header[1] == "F"]


def input_notes(paths: list[Path], size: tuple[int, int]) -> list[str]:
    """One note per kind of problem, however many inputs have it (a batch warns once, not per job)."""
    notes = []
    small = small_inputs(paths, size)
    if small:
        path, (w, h) = small[0]
        others = f" and {len(small) - 1} more" if len(small) > 1 else ""
        notes.append(f"{path.name} ({w}x{h}){others} {'is' if len(small) == 1 else 'are'} more than "
                     f"{SMALL_INPUT_FACTOR}x smaller than the working size {size[0]}x{size[1]}: upscaled, the result "
                     "will be blurry (use a smaller --size)")
    floats = float_inputs(paths)
    if floats:
        others = f" and {len(floats) - 1} more" if len(floats) > 1 else ""
        notes.append(f"{floats[0].name}{others}: 32-bit float pixels, read as grey: values in [0, 1] scaled to "
                     "0-255 (values in [0, 255] kept, other ranges stretched from their minimum to their maximum)")
    return notes


def generate_needed_bytes(config: object, runs: int = 1) -> int:
    """``generate``: per run the PNG (uncompressed RGB at worst), its sidecar, its snapshots, and one
    checkpoint of the generator's parameters with Adam's two moments (the Fourier spectrum is the larger)."""
    width, height = int(getattr(config, "width")), int(getattr(config, "height"))
    steps, every = int(getattr(config, "steps")), int(getattr(config, "save_every", 0) or 0)
    image = width * height * 3 + 64 * 1024
    snapshots = (steps - 1) // every if every else 0
    spectrum = 3 * height * (width // 2 + 1) * 2 * 4 * 3
    return runs * (image * (1 + snapshots) + steps * 250 + 16 * 1024) + spectrum + SAFETY_BYTES


def train_needed_bytes(config: TransferConfig, preview_images: int = 4) -> int:
    """``train``: the model file, its sidecar, the preview grid (before/after per image) and one checkpoint."""
    preview = 2 * max(1, preview_images) * config.width * config.height * 3 + 64 * 1024
    return stylenet_parameters() * 4 + preview + config.steps * 250 + 16 * 1024 + checkpoint_bytes() + SAFETY_BYTES
