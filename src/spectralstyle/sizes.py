"""Working and output sizes: what ``--size`` and ``--output-size`` mean for a photo of a given shape.

Why: the method optimises at a working size (the paper: 512x512), but a photo is rarely square and
usually larger. ``--size N`` is the long side of the working size and the short side follows the
photo's aspect ratio (multiples of 8, as the StyleNet needs); ``--size WxH`` is exact (the paper's
``512x512``). The trained StyleNet is then applied to the photo itself, so the result comes back at
the photo's own resolution (``--output-size native``), at the working size (``working``) or with a
given long side (``N``). The default, ``auto``, is native up to ``NATIVE_CAP`` pixels on the long side:
above it the result is scaled to the cap with one note, and ``--output-size native`` asks for the full size.

Pure Python (no torch): the settings and every ``--help`` use it.
"""

from __future__ import annotations

import re

from spectralstyle.errors import SpectralStyleError

SIZE_MULTIPLE = 8  # three stride-2 levels in the StyleNet
MIN_WORKING_SIDE = 16  # VGG's relu5_2 needs 16 px; the StyleNet bottleneck needs 2x2 pixels
NATIVE_CAP = 4096
"""Longest output side ``--output-size auto`` (the default) gives; ``native`` has no cap."""
OUTPUT_SIZE_WORDS = ("auto", "native", "working")
OUTPUT_SIZE_HELP = ("Size of the result: auto (the photo's own size, at most 4096 px on the long side), native (the "
                    "photo's own size, however large), working (the working --size), or N (long side N, the photo's "
                    "aspect ratio).")


def parse_size_spec(text: str | int) -> tuple[int, int | None]:
    """'512x384' -> (512, 384); '512' -> (512, None): a long side, the short side from the content."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", str(text))
    if not match:
        raise SpectralStyleError(f"size {text!r} is neither N (the long side) nor WIDTHxHEIGHT (for example 512 or "
                                 "512x384)")
    width, height = int(match.group(1)), int(match.group(2)) if match.group(2) else None
    if width == 0 or height == 0:
        raise SpectralStyleError(f"size {text!r} has a side of 0 pixels (for example 512 or 512x384)")
    return width, height


def size_fields(text: str | int) -> dict[str, object]:
    """The settings a size spec sets: exact width and height, or a long side (``keep_aspect``)."""
    width, height = parse_size_spec(text)
    if height is None:
        return {"width": width, "height": width, "keep_aspect": True}
    return {"width": width, "height": height, "keep_aspect": False}


def fit_working_size(content: tuple[int, int], box: tuple[int, int], multiple: int = SIZE_MULTIPLE,
                     min_side: int = MIN_WORKING_SIDE) -> tuple[int, int]:
    """The largest size with ``content``'s aspect ratio inside ``box`` (for ``--size N``: NxN), both sides
    rounded to ``multiple`` and at least ``min_side``. A 160x120 photo in 64x64 -> 64x48."""
    cw, ch = content
    if cw < 1 or ch < 1:
        raise SpectralStyleError(f"content size {cw}x{ch} has an empty side")
    scale = min(box[0] / cw, box[1] / ch)

    def side(n: float, limit: int) -> int:
        rounded = max(min_side, int(round(n * scale / multiple)) * multiple)
        return min(rounded, max(min_side, limit - limit % multiple))

    return side(cw, box[0]), side(ch, box[1])


def check_output_size(spec: str) -> None:
    """One line for an output size that is none of auto, native, working, a long side N or WIDTHxHEIGHT."""
    text = str(spec).strip().lower()
    if text in OUTPUT_SIZE_WORDS:
        return
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text)
    if not match or min(int(n) for n in match.groups() if n is not None) < 1:
        raise SpectralStyleError(f"--output-size must be auto, native, working or a long side in pixels "
                                 f"(for example 2048), got {spec!r}")


def long_side_size(content: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``content``'s aspect ratio with the long side ``long_side`` (no rounding beyond whole pixels)."""
    cw, ch = content
    scale = long_side / max(cw, ch)
    return max(1, round(cw * scale)), max(1, round(ch * scale))


def output_dimensions(spec: str, content: tuple[int, int], working: tuple[int, int],
                      cap: int = NATIVE_CAP) -> tuple[tuple[int, int], str | None]:
    """(width, height) of the result for ``--output-size spec``, and a note when ``auto`` capped it."""
    text = str(spec).strip().lower()
    check_output_size(text)
    if text == "working":
        return tuple(working), None  # type: ignore[return-value]
    if text == "native":
        return tuple(content), None  # type: ignore[return-value]
    if text == "auto":
        if max(content) <= cap:
            return tuple(content), None  # type: ignore[return-value]
        size = long_side_size(content, cap)
        return size, (f"the photo is {content[0]}x{content[1]}: the result is {size[0]}x{size[1]} (at most {cap} px "
                      f"on the long side; --output-size native gives {content[0]}x{content[1]})")
    width, height = parse_size_spec(text)
    if height is not None:  # an exact WIDTHxHEIGHT (what a resolved config holds)
        return (width, height), None
    return long_side_size(content, width), None
