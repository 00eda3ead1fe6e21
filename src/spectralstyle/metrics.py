"""Measuring outputs: written words (OCR), CLIP agreement with the text, and content preservation.

Written words are found with ``rapidocr`` (PP-OCR detection and recognition, ONNX models shipped in
its wheel, run offline). The CLIP scores use the plain (unfiltered) image encoder, so every band is
judged by the same yardstick. Content preservation is SSIM (implemented here in torch) and the VGG19
content distance that the transfer loss itself minimises.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw

from .clip_model import clip_input, encode_templated_text
from .errors import SpectralStyleError
from .image_io import IMAGE_SUFFIXES, list_images, load_image, open_rgb, read_png_metadata
from .losses import content_loss, normalize
from .vgg import VGGContent

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

SOURCE_TEXT = "a Photo"
UNKNOWN_BAND = "unknown"


# --- OCR --------------------------------------------------------------------------------------------
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
        raise SpectralStyleError("the OCR package rapidocr is not installed: pip install rapidocr onnxruntime") from None
    return Path(rapidocr.__file__).resolve().parent / "models"


@lru_cache(maxsize=1)
def ocr_engine() -> Any:
    """The RapidOCR engine, built once per process (loading the ONNX sessions takes a moment)."""
    models = _rapidocr_models_dir()
    missing = [name for name in OCR_MODEL_FILES.values() if not (models / name).is_file()]
    if missing:
        raise SpectralStyleError(f"rapidocr's bundled models are missing from {models} ({', '.join(missing)}); reinstall rapidocr")
    from rapidocr import RapidOCR

    params: dict[str, Any] = {"Global.log_level": "error"}
    params.update({f"{stage}.model_path": str(models / name) for stage, name in OCR_MODEL_FILES.items()})
    return RapidOCR(params=params)


def _as_pil(image: Image.Image | torch.Tensor | str | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        return TF.to_pil_image(image.detach().float().clamp(0, 1).squeeze(0).cpu())
    return open_rgb(image)


def detect_text(image: Image.Image | torch.Tensor | str | Path, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[TextBox]:
    """Text lines that OCR reads in ``image`` with at least ``min_confidence``, in reading order."""
    result = ocr_engine()(_as_pil(image))
    if result.boxes is None or result.txts is None:
        return []
    boxes = []
    for box, text, score in zip(result.boxes, result.txts, result.scores):
        if float(score) >= min_confidence and text.strip():
            boxes.append(TextBox(tuple((float(x), float(y)) for x, y in np.asarray(box)), text, float(score)))
    return boxes


def text_summary(image: Image.Image | torch.Tensor | str | Path, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> TextSummary:
    """Boxes, covered area and strings of one image."""
    pil = _as_pil(image)
    return TextSummary(tuple(detect_text(pil, min_confidence)), pil.width, pil.height)


# --- CLIP scores ------------------------------------------------------------------------------------
def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def clip_image_features(clip_model: Any, image: torch.Tensor) -> torch.Tensor:
    """Unit-norm unfiltered CLIP embeddings [B, E] of images [B, 3, H, W] in [0, 1]."""
    pixels = clip_input(image.float().to(_device_of(clip_model)))
    return normalize(clip_model.encode_image(pixels).float())


@dataclass
class ClipScorer:
    """CLIP scores of many images against a few texts; each text is embedded once (79 templates).

    ``text_cache`` may be shared with ``transfer.Models.text_cache`` (same CLIP model), so texts
    already embedded for a transfer are not embedded again.
    """

    clip: Any
    source_text: str = SOURCE_TEXT
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return _device_of(self.clip)

    def text(self, text: str) -> torch.Tensor:
        """Unit templated text embedding [1, E]."""
        if text not in self.text_cache:
            self.text_cache[text] = encode_templated_text(self.clip, text)
        return self.text_cache[text].float()

    def score(self, image: torch.Tensor, text: str) -> float:
        """cos(CLIP image embedding, templated text embedding)."""
        return float((clip_image_features(self.clip, image) @ self.text(text).T).mean())

    def directional(self, image: torch.Tensor, content: torch.Tensor, text: str) -> float:
        """cos(normalise(img - content), normalise(text - source text)): did the image move towards the text?"""
        features = clip_image_features(self.clip, torch.cat([image, _resize_like(content, image)]))
        delta = features[:1] - features[1:]
        if float(delta.norm()) < 1e-8:  # the image is the content: no edit, no direction
            return float("nan")
        image_dir = normalize(delta)
        text_dir = normalize(self.text(text) - self.text(self.source_text))
        return float((image_dir @ text_dir.T).squeeze())


def clip_score(clip_model: Any, image: torch.Tensor, text: str) -> float:
    """Cosine similarity of the unfiltered CLIP image embedding and the templated text embedding."""
    return ClipScorer(clip_model).score(image, text)


def directional_clip_score(clip_model: Any, image: torch.Tensor, content: torch.Tensor, text: str,
                           source_text: str = SOURCE_TEXT) -> float:
    """CLIPstyler's directional similarity of the edit content -> image with the edit source_text -> text."""
    return ClipScorer(clip_model, source_text).directional(image, content, text)


# --- content preservation ---------------------------------------------------------------------------
def _resize_like(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if image.shape[-2:] == like.shape[-2:]:
        return image.to(like)
    return F.interpolate(image.to(like), size=like.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian [size]."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) of two images [B, 3, H, W] in [0, data_range], averaged over channels.

    Gaussian window 11 / sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid' filtering; the window shrinks (odd
    size) for images smaller than 11 px. 1 for identical images, lower for any distortion.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim needs images of the same shape, got {list(a.shape)} and {list(b.shape)}")
    size = min(window, *a.shape[-2:])
    size -= 1 - size % 2
    c = a.shape[1]
    g = gaussian_window(size, sigma).to(a.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=c)

    a, b = a.float(), b.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


@torch.no_grad()
def vgg_content_distance(vgg: VGGContent, image: torch.Tensor, content: torch.Tensor) -> float:
    """The transfer's content loss (MSE of VGG19 relu4_2 and relu5_2 features) between image and content."""
    device = next(vgg.parameters()).device
    image = image.float().to(device)
    return float(content_loss(vgg(image), vgg(_resize_like(content, image))))


# --- evaluating a set of outputs --------------------------------------------------------------------
@dataclass
class EvalInput:
    """An image to evaluate and what its sidecar says about it."""

    image: Path
    text: str
    band: str = UNKNOWN_BAND
    content: Path | None = None


@dataclass
class ImageMetrics:
    """Every measurement of one evaluated image (None when it could not be computed)."""

    item: EvalInput
    text: TextSummary
    clip_score: float
    directional: float | None = None
    ssim: float | None = None
    vgg_distance: float | None = None
    note: str = ""

    def row(self) -> dict[str, Any]:
        """A flat record for CSV files."""
        return {
            "image": str(self.item.image), "band": self.item.band, "text": self.item.text,
            "content": str(self.item.content) if self.item.content else "", "text_boxes": self.text.count,
            "text_area_fraction": round(self.text.area_fraction, 6), "ocr_strings": " | ".join(self.text.strings),
            "ocr_max_confidence": round(max((b.confidence for b in self.text.boxes), default=0.0), 4),
            "clip_score": round(self.clip_score, 6), "directional_clip": _rounded(self.directional),
            "ssim": _rounded(self.ssim), "vgg_content_distance": _rounded(self.vgg_distance), "note": self.note,
        }


def _rounded(value: float | None) -> float | str:
    return "" if value is None or math.isnan(value) else round(value, 6)


def read_sidecar(image: Path) -> dict[str, Any] | None:
    """``<stem>.json`` beside the image, else the settings embedded in the PNG, else None."""
    sidecar = image.with_suffix(".json")
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise SpectralStyleError(f"sidecar {sidecar} is not valid JSON ({exc.__class__.__name__})") from None
        return data if isinstance(data, dict) else None
    if image.suffix.lower() == ".png":
        try:
            return read_png_metadata(image)
        except (OSError, ValueError):
            return None
    return None


def collect_inputs(paths: list[Path], text: str | None = None, skipped: list[str] | None = None) -> list[EvalInput]:
    """Images named directly or found in folders (not their snapshots/), with their text, band and content.

    Folders contribute their image files; comparison images and snapshots are skipped. An image with
    no sidecar needs ``text``. Missing paths, empty folders and non-images are user errors; with a
    ``skipped`` list, unreadable images found in folders are named there instead, so one corrupt file
    does not stop the report on the others.
    """
    if not paths:
        raise SpectralStyleError("give at least one image or folder to evaluate")
    items: list[EvalInput] = []
    for path in paths:
        if not path.exists():
            raise SpectralStyleError(f"{path} does not exist")
        if path.is_dir():
            found = [p for p in list_images(path) if _is_result(p) and _readable(p, skipped)]
            if not found:
                raise SpectralStyleError(f"no result images in folder {path} (looked for {', '.join(IMAGE_SUFFIXES)})")
            items.extend(_input_for(p, text) for p in found)
        else:
            open_rgb(path)  # a clear error for a non-image
            items.append(_input_for(path, text))
    return items


def _readable(image: Path, skipped: list[str] | None) -> bool:
    try:
        open_rgb(image)
    except SpectralStyleError as exc:
        if skipped is None:
            raise
        skipped.append(str(exc))
        return False
    return True


def _is_result(image: Path) -> bool:
    meta = read_sidecar(image) or {}
    return meta.get("kind") != "comparison" and meta.get("status") not in ("snapshot", "interrupted")


def _input_for(image: Path, text: str | None) -> EvalInput:
    meta = read_sidecar(image) or {}
    style_text = meta.get("text") or text
    if not style_text:
        raise SpectralStyleError(f"{image} has no sidecar JSON naming its text; pass --text")
    content = meta.get("content")
    return EvalInput(image, str(style_text), str(meta.get("band") or UNKNOWN_BAND), Path(content) if content else None)


@torch.no_grad()
def evaluate_image(item: EvalInput, scorer: ClipScorer, vgg: VGGContent | None = None,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> ImageMetrics:
    """OCR, CLIP score and (when the content image is available) directional CLIP, SSIM and VGG distance."""
    pil = open_rgb(item.image)
    image = TF.to_tensor(pil).unsqueeze(0)
    metrics = ImageMetrics(item, text_summary(pil, min_confidence), scorer.score(image, item.text))
    if item.content is None:
        metrics.note = "no content image recorded: content metrics skipped"
    elif not item.content.is_file():
        metrics.note = f"content image {item.content} not found: content metrics skipped"
    else:
        content = load_image(item.content, (pil.width, pil.height))
        metrics.directional = scorer.directional(image, content, item.text)
        metrics.ssim = ssim(image, content)
        if vgg is not None:
            metrics.vgg_distance = vgg_content_distance(vgg, image, content)
    return metrics
