"""Reading images as users have them, and writing results with their settings embedded (atomically,
through ``files.atomic_path``)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import SpectralStyleError
from .files import atomic_path

METADATA_KEY = "spectralstyle"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def open_rgb(path: str | Path) -> Image.Image:
    """The image at ``path`` as RGB; one clear error when missing or not an image."""
    p = Path(path)
    if not p.exists():
        raise SpectralStyleError(f"image {p} does not exist")
    if not p.is_file():
        raise SpectralStyleError(f"{p} is not a file")
    try:
        with Image.open(p) as img:
            img.load()
            return _as_rgb(ImageOps.exif_transpose(img))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise SpectralStyleError(f"{p} is not a readable image ({exc.__class__.__name__})") from None


def _as_rgb(img: Image.Image) -> Image.Image:
    """RGB 8 bit. PIL's convert clips 16-bit grey (modes I;16 and I) at 255, which turns it white: scale instead."""
    if img.mode.startswith("I;16") or (img.mode == "I" and img.getextrema()[1] > 255):
        values = np.asarray(img).astype(np.float32) * (255 / 65535)
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


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
    """Image files directly in ``folder``, sorted by name; hidden files (macOS ``._x.jpg`` and the like) are not images."""
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
