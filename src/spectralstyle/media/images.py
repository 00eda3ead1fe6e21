"""Reading images as users have them, and writing results with their settings embedded (atomically,
through ``files.atomic_path``)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import atomic_path

METADATA_KEY = "spectralstyle"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 1_000_000_000
"""Largest input accepted: a gigapixel (about 3 GB as 8-bit RGB) is still scaled down in memory; PIL's
own limit (89 megapixels, a guard against decompression bombs) would refuse ordinary scans and panoramas."""
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL warns above it and raises above twice it; open_rgb refuses both


def _too_large(path: Path, size: tuple[int, int] | None = None, pil_message: str = "") -> SpectralStyleError:
    pixels = re.search(r"\((\d+) pixels\)", pil_message)  # PIL says "Image size (N pixels) exceeds ..."
    dims = (f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:,.0f} megapixels" if size
            else f"{int(pixels.group(1)) / 1e6:,.0f} megapixels" if pixels else "too many pixels")
    return SpectralStyleError(f"{path} is {dims}, more than the {MAX_PIXELS / 1e9:g} gigapixel this tool reads; "
                              "scale it down first (for example with ImageMagick: magick IN -resize 8192x8192 OUT)")


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path; one line when it is missing or not a file (the first check of every image read)."""
    p = Path(path)
    if not p.exists():
        raise SpectralStyleError(f"image {p} does not exist")
    if not p.is_file():
        raise SpectralStyleError(f"{p} is not a file")
    return p


def open_rgb(path: str | Path) -> Image.Image:
    """The image at ``path`` as RGB; one clear error when missing or not an image."""
    p = existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # above MAX_PIXELS: refuse, not warn
            with Image.open(p) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise _too_large(p, img.size)
                img.load()
                rotated = ImageOps.exif_transpose(img) if img.getexif().get(0x0112, 1) != 1 else img
                return _as_rgb(rotated)  # one copy of the pixels at most: 3 bytes per pixel, not 9
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(p, pil_message=str(exc)) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise SpectralStyleError(f"{p} is not a readable image ({exc.__class__.__name__})") from None


def _as_rgb(img: Image.Image) -> Image.Image:
    """RGB 8 bit. PIL's convert clips 16-bit grey (modes I;16 and I) at 255, which turns it white: scale
    instead. Float images (mode F, 32-bit TIFF) would be clipped to 0 or 1 out of 255, i.e. black: see
    ``float_to_8bit``."""
    if img.mode.startswith("I;16") or (img.mode == "I" and img.getextrema()[1] > 255):
        values = np.asarray(img).astype(np.float32) * (255 / 65535)
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(float_to_8bit(np.asarray(img))[0], "L")
    return img if img.mode == "RGB" else img.convert("RGB")


def float_to_8bit(values: np.ndarray) -> tuple[np.ndarray, str]:
    """8-bit grey from float pixels, and how they were read (for the note a command prints).

    Values within [0, 1] (the usual float convention) are scaled by 255; within [0, 255] they are taken
    as they are; anything else is stretched from its minimum to its maximum. NaN counts as 0.
    """
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low >= 0 and high <= 1:
        scaled, how = values * 255, "values in [0, 1] scaled to 0-255"
    elif low >= 0 and high <= 255:
        scaled, how = values, "values in [0, 255] used as they are"
    else:
        span = high - low or 1.0
        scaled, how = (values - low) * (255 / span), f"values {low:g} to {high:g} stretched to 0-255"
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), how


def image_header(path: str | Path) -> tuple[tuple[int, int], str] | None:
    """(size, mode) from the file's header alone (no pixels decoded); None if it is not a readable image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size, img.mode
    except Exception:  # open_rgb reports unreadable files with the right message when the run reads them
        return None


def check_image(path: str | Path) -> tuple[tuple[int, int], str]:
    """(size, mode) of a readable image, from its header and a verify pass that decodes no pixels, so a run
    can refuse a missing, foreign, damaged or too large image before any model loads at a few megabytes of
    memory (decoding a 225-megapixel photo to float only to check it took 7.8 GB). The same messages as
    ``open_rgb``; a file whose pixels are damaged past what ``verify`` sees still fails, later, in ``open_rgb``.
    """
    p = existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                size, mode = img.size, img.mode
                if size[0] * size[1] > MAX_PIXELS:
                    raise _too_large(p, size)
                if not img.tile:  # a header that declares pixels it does not hold (a PNG without IDAT)
                    raise SyntaxError("no image data")
                img.verify()  # PNG: every chunk's CRC; other formats: their structure (no pixels decoded)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(p, pil_message=str(exc)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SpectralStyleError(f"{p} is not a readable image ({exc.__class__.__name__})") from None
    return size, mode
ORIENTATION_TAG = 0x0112
"""EXIF orientation; values 5 to 8 turn the picture by 90 degrees (``ImageOps.exif_transpose`` swaps its sides)."""


def oriented_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) as ``open_rgb`` returns the image (EXIF rotation applied), from the header alone;
    None if it is not a readable image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                turned = img.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8)
        return (height, width) if turned else (width, height)
    except Exception:  # open_rgb reports unreadable files with the right message when the run reads them
        return None


def load_image(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """[1, 3, H, W] float tensor in [0, 1], resized bicubically to ``size`` = (width, height) if given."""
    img = open_rgb(path)
    if size is not None and img.size != tuple(size):
        img = img.resize(tuple(size), Image.BICUBIC)
    return TF.to_tensor(img).unsqueeze(0)


def to_pil(image: torch.Tensor) -> Image.Image:
    return TF.to_pil_image(image.detach().float().clamp(0, 1).squeeze(0).cpu())


def finish_image(image: torch.Tensor, contrast: float) -> torch.Tensor:
    """Clamp to [0, 1] and adjust contrast (1.5 in the reference, 1.0 = unchanged)."""
    image = image.detach().float().clamp(0, 1)
    return TF.adjust_contrast(image, contrast) if contrast != 1.0 else image


def save_png(image: torch.Tensor | Image.Image, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Atomically write a PNG, with ``metadata`` as JSON in its ``spectralstyle`` text chunk."""
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    info = PngImagePlugin.PngInfo()
    if metadata is not None:
        info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True, default=str))
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def read_png_metadata(path: str | Path) -> dict[str, Any] | None:
    with Image.open(path) as img:
        raw = img.info.get(METADATA_KEY)
    return json.loads(raw) if raw else None


def slugify(text: str, max_len: int = 60) -> str:
    """'Pop Art!' -> 'pop-art': ASCII, lower case, safe in file names.

    Texts that lose letters, digits or symbols on the way ('Ukiyo-e 浮世絵', emoji) or have none
    ('!!!') get a short hash of the text, so that two such prompts never share a file name.
    """
    folded = unicodedata.normalize("NFKD", text)
    ascii_text = folded.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_len].rstrip("-")
    lossy = any(ord(ch) > 127 and unicodedata.category(ch)[0] in "LNS" for ch in folded)
    if lossy or not slug:
        slug = f"{slug or 'text'}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return slug


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; hidden files (macOS ``._x.jpg`` and the like) are not
    images."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def side_by_side(images: list[tuple[Image.Image, str]], label_height: int = 28) -> Image.Image:
    """Images in a row, each with its label written above it (for --compare)."""
    from PIL import ImageDraw, ImageFont

    width = sum(img.width for img, _ in images)
    height = max(img.height for img, _ in images) + label_height
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, label_height - 10))
    x = 0
    for img, label in images:
        canvas.paste(img, (x, label_height))
        draw.text((x + 6, 4), label, fill="black", font=font)
        x += img.width
    return canvas
