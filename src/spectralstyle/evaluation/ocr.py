"""Written words in an image, found by OCR: ``rapidocr`` (PP-OCR detection and recognition, ONNX models
shipped in its wheel, run offline, never downloaded). Used by evaluate and analyze to count and outline
the words a style painted in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import open_rgb

DEFAULT_MIN_CONFIDENCE = 0.6
"""Recognition confidence below which an OCR box is ignored. On the sample photos in
/work/shared/content the only spurious box (a CJK string on tubingen.jpeg) scored 0.53, while
rendered words score above 0.95; rapidocr's own default cut is 0.5."""

OCR_MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}
"""The models inside the rapidocr wheel; naming them explicitly means rapidocr never downloads."""

@dataclass(frozen=True)
class TextBox:
    """One detected line of text: its quadrilateral (4 (x, y) corners), the string, the confidence."""

    box: tuple[tuple[float, float], ...]
    text: str
    confidence: float

    @property
    def area(self) -> float:
        """Polygon area in pixels (shoelace formula)."""
        pts = self.box
        return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]))) / 2


@dataclass(frozen=True)
class TextSummary:
    """What OCR found in one image."""

    boxes: tuple[TextBox, ...]
    width: int
    height: int

    @property
    def count(self) -> int:
        return len(self.boxes)

    @property
    def has_text(self) -> bool:
        return bool(self.boxes)

    @property
    def strings(self) -> list[str]:
        return [b.text for b in self.boxes]

    @property
    def area_fraction(self) -> float:
        """Fraction of the image covered by the union of the boxes (overlaps counted once)."""
        if not self.boxes:
            return 0.0
        mask = Image.new("1", (self.width, self.height), 0)
        draw = ImageDraw.Draw(mask)
        for b in self.boxes:
            draw.polygon([tuple(p) for p in b.box], fill=1)
        return float(np.asarray(mask, dtype=bool).mean())


def _rapidocr_models_dir() -> Path:
    try:
        import rapidocr
    except ImportError:
        raise SpectralStyleError("the OCR package rapidocr is not installed: "
                                 "pip install rapidocr onnxruntime") from None
    return Path(rapidocr.__file__).resolve().parent / "models"


@lru_cache(maxsize=1)
def ocr_engine() -> Any:
    """The RapidOCR engine, built once per process (loading the ONNX sessions takes a moment)."""
    models = _rapidocr_models_dir()
    missing = [name for name in OCR_MODEL_FILES.values() if not (models / name).is_file()]
    if missing:
        raise SpectralStyleError(f"rapidocr's bundled models are missing from {models} ({', '.join(missing)}); "
                                 "reinstall rapidocr")
    from rapidocr import RapidOCR

    params: dict[str, Any] = {"Global.log_level": "error"}
    params.update({f"{stage}.model_path": str(models / name) for stage, name in OCR_MODEL_FILES.items()})
    return RapidOCR(params=params)


def as_pil(image: Image.Image | torch.Tensor | str | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        return TF.to_pil_image(image.detach().float().clamp(0, 1).squeeze(0).cpu())
    return open_rgb(image)


MAX_OCR_ASPECT = 4.0
"""Images more elongated than this are padded (with their mean colour) to this aspect ratio before OCR.

rapidocr first shrinks the long side to 2000 px and rounds both sides to multiples of 32, so a strip
like 4000x20 becomes 0 px high and the engine raises ``ResizeImgError``; its detector also scales the
*short* side up to 736 px, which makes very long strips slow. Padded, such images are measured, and a
word in a 1000x40 strip is read where the unpadded strip gives nothing."""
OCR_MAX_SIDE = 2000
"""rapidocr's own cap on the long side; an elongated image is shrunk to it before padding, so the padded
canvas stays small (at most 2000x500) however long the strip."""


class OcrError(SpectralStyleError):
    """The OCR engine failed on one image (evaluate and analyze skip that image)."""


@dataclass(frozen=True)
class OcrCanvas:
    """What OCR reads for an image: the image, maybe shrunk (``scale_x``, ``scale_y``) and padded
    (placed at ``left``, ``top``); ``to_image`` maps a point back to the image's own pixels."""

    image: Image.Image
    left: int = 0
    top: int = 0
    scale_x: float = 1.0
    scale_y: float = 1.0

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.left) / self.scale_x, (y - self.top) / self.scale_y


def ocr_canvas(image: Image.Image, max_aspect: float = MAX_OCR_ASPECT, max_side: int = OCR_MAX_SIDE) -> OcrCanvas:
    """``image`` as it is when its aspect ratio is at most ``max_aspect``; else shrunk to ``max_side`` if
    longer, and centred on a canvas of its mean colour with aspect ratio ``max_aspect``."""
    w, h = image.size
    if max(w, h) <= max_aspect * min(w, h):
        return OcrCanvas(image)
    small = image
    if max(w, h) > max_side:
        factor = max_side / max(w, h)
        small = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BILINEAR)
    sw, sh = small.size
    new_w, new_h = max(sw, math.ceil(sh / max_aspect)), max(sh, math.ceil(sw / max_aspect))
    mean = tuple(int(round(v)) for v in np.asarray(small, dtype=np.float64).reshape(-1, 3).mean(axis=0))
    canvas = Image.new("RGB", (new_w, new_h), mean)
    left, top = (new_w - sw) // 2, (new_h - sh) // 2
    canvas.paste(small, (left, top))
    return OcrCanvas(canvas, left, top, sw / w, sh / h)


ImageLike = Image.Image | torch.Tensor | str | Path
"""A PIL image, an image tensor [1, 3, H, W] in [0, 1], or an image file."""


def detect_text(image: ImageLike, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[TextBox]:
    """Text lines that OCR reads in ``image`` with at least ``min_confidence``, in reading order.

    Very elongated images are padded first (``ocr_canvas``); boxes are in the image's own pixel
    coordinates (clipped to it). Raises ``OcrError`` when the OCR engine itself fails on the image.
    """
    pil = as_pil(image)
    canvas = ocr_canvas(pil)
    try:
        result = ocr_engine()(canvas.image)  # a PIL image: rapidocr converts RGB to its BGR itself
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any engine failure concerns this image only
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise OcrError(f"OCR failed on this {pil.width}x{pil.height} image "
                       f"({exc.__class__.__name__}{': ' + detail if detail else ''})") from None
    if result.boxes is None or result.txts is None:
        return []
    boxes = []
    for box, text, score in zip(result.boxes, result.txts, result.scores):
        if float(score) >= min_confidence and text.strip():
            corners = tuple((min(max(x, 0.0), float(pil.width)), min(max(y, 0.0), float(pil.height)))
                            for x, y in (canvas.to_image(float(px), float(py)) for px, py in np.asarray(box)))
            found = TextBox(corners, text, float(score))
            if found.area > 0:  # not wholly in the padding
                boxes.append(found)
    return boxes


def text_summary(image: ImageLike, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> TextSummary:
    """Boxes, covered area and strings of one image."""
    pil = as_pil(image)
    return TextSummary(tuple(detect_text(pil, min_confidence)), pil.width, pil.height)
