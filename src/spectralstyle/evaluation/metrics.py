"""Measuring outputs: written words (OCR), CLIP agreement with the text, and content preservation.

Written words are found with ``rapidocr`` (PP-OCR detection and recognition, ONNX models shipped in
its wheel, run offline). The CLIP scores use the plain (unfiltered) image encoder, so every band is
judged by the same yardstick. Content preservation is SSIM (implemented here in torch) and the VGG19
content distance that the transfer loss itself minimises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw

from spectralstyle.method.clip_model import clip_input, encode_templated_text, tokenize_templated
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import IMAGE_SUFFIXES, list_images, load_image, open_rgb, read_png_metadata
from spectralstyle.method.losses import content_loss, normalize
from spectralstyle.method.prompts import SEPARATOR, Prompt
from spectralstyle.method.vgg import VGGContent

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


def detect_text(image: Image.Image | torch.Tensor | str | Path, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[TextBox]:
    """Text lines that OCR reads in ``image`` with at least ``min_confidence``, in reading order.

    Very elongated images are padded first (``ocr_canvas``); boxes are in the image's own pixel
    coordinates (clipped to it). Raises ``OcrError`` when the OCR engine itself fails on the image.
    """
    pil = _as_pil(image)
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
        return self.weighted_score(image, (Prompt(text),))

    def weighted_score(self, image: torch.Tensor, prompts: Sequence[Prompt]) -> float:
        """Weight-averaged ``score`` over ``prompts`` (all weights must be positive); the image is encoded once."""
        features = clip_image_features(self.clip, image)
        return _weighted_mean([(float((features @ self.text(p.text).T).mean()), p.weight) for p in prompts])

    def directional(self, image: torch.Tensor, content: torch.Tensor, text: str) -> float:
        """cos(normalise(img - content), normalise(text - source text)): did the image move towards the text?"""
        return self.weighted_directional(image, content, (Prompt(text),))

    def weighted_directional(self, image: torch.Tensor, content: torch.Tensor, prompts: Sequence[Prompt]) -> float:
        """Weight-averaged ``directional`` over ``prompts`` (positive weights); NaN when image == content."""
        features = clip_image_features(self.clip, torch.cat([image, _resize_like(content, image)]))
        delta = features[:1] - features[1:]
        if float(delta.norm()) < 1e-8:  # the image is the content: no edit, no direction
            return float("nan")
        image_dir = normalize(delta)
        source = self.text(self.source_text)
        return _weighted_mean([(float((image_dir @ normalize(self.text(p.text) - source).T).squeeze()), p.weight)
                               for p in prompts])


def _weighted_mean(values: list[tuple[float, float]]) -> float:
    total = sum(w for _, w in values)
    if not values or total <= 0:
        raise ValueError("a weighted CLIP score needs at least one prompt with a positive weight")
    return sum(v * w for v, w in values) / total


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
BANDS_PLOT, SCATTER_PLOT = "bands.png", "clip_vs_text_area.png"
EVALUATE_OUTPUTS = (BANDS_PLOT, SCATTER_PLOT)
"""The plots ``evaluate`` writes into its --out folder (beside report.html and metrics.csv); the names are
used where they are written (report.py) and where they are recognised as not being results."""
SPECTRUM_PLOT, BAND_SCORES_PLOT = "spectrum.png", "band_scores.png"
ANALYZE_OUTPUTS = (SPECTRUM_PLOT, BAND_SCORES_PLOT)
"""The plots ``analyze`` writes into its --out folder."""
PLOT_KIND = "evaluation-plot"
"""``kind`` in the settings embedded in the plots of evaluate and analyze: never taken as an input."""
SKIPPED_KINDS = ("comparison", PLOT_KIND)
SKIPPED_STATUSES = ("snapshot", "interrupted")


class SidecarError(SpectralStyleError):
    """A sidecar (``<stem>.json``, or the settings embedded in a PNG) that cannot be used."""


@dataclass
class EvalInput:
    """An image to evaluate and what its sidecar says about it."""

    image: Path
    text: str
    band: str = UNKNOWN_BAND
    content: Path | None = None
    prompts: tuple[Prompt, ...] = ()
    """The parsed prompts of a weighted multi-prompt (``generate "a|b:0.5|c:-1"``); empty for a plain text."""
    text_from: str = "sidecar"
    """Where ``text`` came from: "sidecar" or "--text"."""

    @property
    def scored_prompts(self) -> tuple[Prompt, ...]:
        """What the CLIP scores measure: the prompts with a positive weight, else the text itself."""
        positive = tuple(p for p in self.prompts if p.weight > 0)
        return positive or (Prompt(self.text),)

    @property
    def weighted(self) -> bool:
        """True when the scores are a weighted average over prompts rather than of ``text`` as written."""
        return self.scored_prompts != (Prompt(self.text),)

    @property
    def scored_text(self) -> str:
        """The scored prompts in prompt syntax ('a lighthouse|dark clouds:0.5'), or the text."""
        if not self.weighted:
            return self.text
        return SEPARATOR.join(p.text if p.weight == 1 else f"{p.text}:{p.weight:g}" for p in self.scored_prompts)

    @property
    def scoring_note(self) -> str:
        """How a weighted multi-prompt is scored ('' for a plain text)."""
        if not self.weighted:
            return ""
        negative = [f"{p.text}:{p.weight:g}" for p in self.prompts if p.weight <= 0]
        return ("weighted multi-prompt: CLIP and directional scores are the weight-averaged scores of its "
                f"positive prompts ({self.scored_text})"
                + (f"; prompts with weight <= 0 are not scored ({SEPARATOR.join(negative)})" if negative else ""))


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
    temporal_stability: float | None = None
    """Videos only: output flicker / input flicker (1.0 = no added flicker)."""

    def row(self) -> dict[str, Any]:
        """A flat record for CSV files."""
        return {
            "image": str(self.item.image), "band": self.item.band, "text": self.item.text,
            "scored_text": self.item.scored_text,
            "content": str(self.item.content) if self.item.content else "", "text_boxes": self.text.count,
            "text_area_fraction": round(self.text.area_fraction, 6), "ocr_strings": " | ".join(self.text.strings),
            "ocr_max_confidence": round(max((b.confidence for b in self.text.boxes), default=0.0), 4),
            "clip_score": round(self.clip_score, 6), "directional_clip": _rounded(self.directional),
            "ssim": _rounded(self.ssim), "vgg_content_distance": _rounded(self.vgg_distance), "note": self.note,
            "temporal_stability": _rounded(self.temporal_stability),
        }


def _rounded(value: float | None) -> float | str:
    return "" if value is None or math.isnan(value) else round(value, 6)


def _sidecar(image: Path) -> tuple[dict[str, Any], str] | None:
    """(settings, where they come from) of ``image``: ``<stem>.json`` beside it, else the settings
    embedded in the PNG, else None. A sidecar JSON that is unreadable or not an object is a SidecarError."""
    sidecar = image.with_suffix(".json")
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
        except OSError as exc:
            raise SidecarError(f"sidecar {sidecar} is not readable ({exc.__class__.__name__})") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise SidecarError(f"sidecar {sidecar} is not valid JSON ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise SidecarError(f"sidecar {sidecar} is not a JSON object (it is {_json_type(data)})")
        return data, f"sidecar {sidecar}"
    if image.suffix.lower() == ".png":
        try:
            data = read_png_metadata(image)
        except (OSError, ValueError, SyntaxError):
            return None
        return (data, f"settings embedded in {image}") if isinstance(data, dict) else None
    return None


def read_sidecar(image: Path) -> dict[str, Any] | None:
    """``<stem>.json`` beside the image, else the settings embedded in the PNG, else None."""
    found = _sidecar(image)
    return found[0] if found else None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _string_field(meta: dict[str, Any], key: str, source: str) -> str | None:
    """``meta[key]`` when it is a non-empty string, None when absent, null or empty; a SidecarError otherwise."""
    value = meta.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SidecarError(f"{source}: \"{key}\" must be a string, not {_json_type(value)}")
    return value


def _prompts_field(meta: dict[str, Any], source: str) -> tuple[Prompt, ...]:
    """The ``prompts`` list of a generate sidecar ([{"text": ..., "weight": ...}, ...]), validated."""
    raw = meta.get("prompts")
    if raw is None:
        return ()
    bad = f"{source}: \"prompts\" must be a list of {{\"text\": string, \"weight\": number}}"
    if not isinstance(raw, list):
        raise SidecarError(f"{bad}, not {_json_type(raw)}")
    prompts = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise SidecarError(f"{bad}; found {_json_type(entry)}")
        text, weight = entry.get("text"), entry.get("weight", 1.0)
        if not isinstance(text, str) or not text.strip():
            raise SidecarError(f"{bad}; a prompt's text is {_json_type(text) if text != '' else 'empty'}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise SidecarError(f"{bad}; the weight of {text!r} is {_json_type(weight) if not isinstance(weight, float) else weight}")
        prompts.append(Prompt(text.strip(), float(weight)))
    if prompts and not any(p.weight > 0 for p in prompts):
        raise SidecarError(f"{source}: no prompt has a positive weight, so there is nothing to score against")
    return tuple(prompts)


@lru_cache(maxsize=1024)
def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be embedded with CLIP's templates (empty, too long), or None."""
    try:
        tokenize_templated(text)
    except SpectralStyleError as exc:
        return str(exc)
    return None


def _listed_sidecar(image: Path, in_folder: bool) -> tuple[dict[str, Any], str] | None:
    """(sidecar settings, their source) of ``image`` ({} and "" without one); None for our own plots and,
    in folders, for comparison images, snapshots and interrupted runs. A bad sidecar, or a kind or status
    that is not a string, is a SidecarError."""
    found = _sidecar(image)
    meta, source = found if found else ({}, "")
    kind, status = _string_field(meta, "kind", source), _string_field(meta, "status", source)
    if kind == PLOT_KIND or (in_folder and (kind in SKIPPED_KINDS or status in SKIPPED_STATUSES)):
        return None
    return meta, source


def _input_for(image: Path, text: str | None, in_folder: bool) -> EvalInput | None:
    """What to evaluate for ``image``; None for comparison images, snapshots and our own plots found in
    folders. A bad sidecar is a SidecarError; an image with no text anywhere a SpectralStyleError."""
    listed = _listed_sidecar(image, in_folder)
    if listed is None:
        return None
    meta, source = listed
    own_text = _string_field(meta, "text", source)
    band = _string_field(meta, "band", source) or UNKNOWN_BAND
    content = _string_field(meta, "content", source)
    prompts = _prompts_field(meta, source) if own_text else ()
    if not own_text and not text:
        raise SpectralStyleError(f"{image} has no sidecar JSON naming its text; pass --text")
    item = EvalInput(image, own_text or str(text), band, Path(content) if content else None, prompts,
                     "sidecar" if own_text else "--text")
    if own_text:
        for p in item.scored_prompts:
            problem = _text_problem(p.text)
            if problem:
                raise SidecarError(f"{source}: {problem}")
    return item


def _own_output(image: Path, out_dir: Path | None) -> bool:
    """A file that evaluate or analyze wrote: a plot in the current --out folder, or any PNG whose
    embedded settings say it is one of their plots."""
    if out_dir is not None and image.name in EVALUATE_OUTPUTS + ANALYZE_OUTPUTS:
        try:
            if image.parent.resolve() == out_dir.resolve():
                return True
        except OSError:
            pass
    if image.suffix.lower() != ".png" or image.with_suffix(".json").is_file():
        return False
    try:
        meta = read_png_metadata(image)
    except (OSError, ValueError, SyntaxError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == PLOT_KIND


def collect_inputs(paths: list[Path], text: str | None = None, skipped: list[str] | None = None,
                   out_dir: Path | None = None) -> list[EvalInput]:
    """Images named directly or found in folders (not their snapshots/), with their text, band and content.

    Folders contribute their image files; comparison images and snapshots are skipped, and so are the
    plots evaluate and analyze write (into ``out_dir``, or marked as theirs in their PNG settings). An
    image with no sidecar text needs ``text``; a sidecar text wins over ``text`` (``text_from`` says
    which was used). Missing paths, empty folders, non-images, bad sidecars and a bad ``text`` are user
    errors; with a ``skipped`` list, unreadable images and bad sidecars found in folders are named there
    instead (one line each), so one corrupt file does not stop the report on the others.
    """
    if not paths:
        raise SpectralStyleError("give at least one image or folder to evaluate")
    if text is not None and _text_problem(text):
        raise SpectralStyleError(f"--text: {_text_problem(text)}")
    return _discover(paths, skipped, out_dir, lambda image, in_folder: _input_for(image, text, in_folder), videos=True)


def collect_images(paths: list[Path], skipped: list[str] | None = None, out_dir: Path | None = None) -> list[Path]:
    """The images ``analyze`` reads: as ``collect_inputs`` finds them, but sidecar texts are not needed
    (analyze scores every image against its --text) and only a sidecar's kind and status are used."""

    def image_only(image: Path, in_folder: bool) -> Path | None:
        return image if _listed_sidecar(image, in_folder) is not None else None

    return _discover(paths, skipped, out_dir, image_only)


def _check_readable(path: Path, videos: bool) -> None:
    """A clear error for a file that is not an image (or, with ``videos``, a readable video)."""
    from spectralstyle.media.video import is_video, probe_video

    if videos and is_video(path):
        probe_video(path)
    else:
        open_rgb(path)


def _listed(folder: Path, videos: bool) -> list[Path]:
    from spectralstyle.media.video import is_video

    media = list_images(folder)
    if videos:
        media += [p for p in folder.iterdir() if p.is_file() and is_video(p) and not p.name.startswith(".")]
    return sorted(media)


def _discover(paths: list[Path], skipped: list[str] | None, out_dir: Path | None,
              make: Callable[[Path, bool], Any], videos: bool = False) -> list[Any]:
    """``make(image, in_folder)`` for every image (and, with ``videos``, video) named or found in a folder;
    see ``collect_inputs``."""
    if not paths:
        raise SpectralStyleError("give at least one image or folder")
    items: list[Any] = []
    own: list[Path] = []
    for path in paths:
        if not path.exists():
            raise SpectralStyleError(f"{path} does not exist")
        if not path.is_dir():
            if _own_output(path, out_dir):
                own.append(path)
                continue
            _check_readable(path, videos)  # a clear error for a non-image
            item = make(path, False)  # a bad sidecar of a file named directly is an error
            if item is not None:
                items.append(item)
            continue
        found, reasons, own_here = [], [], []
        for image in _listed(path, videos):
            if _own_output(image, out_dir):
                own_here.append(image)
                continue
            try:
                _check_readable(image, videos)
            except SpectralStyleError as exc:  # an unreadable image: skipped
                if skipped is None:
                    raise
                reasons.append(str(exc))
                continue
            try:
                item = make(image, True)  # no text at all is not caught: it needs --text, not a skip
            except SidecarError as exc:  # a bad sidecar: skipped
                if skipped is None:
                    raise
                reasons.append(str(exc))
                continue
            if item is not None:
                found.append(item)
        own.extend(own_here)
        if skipped is not None:
            skipped.extend(reasons)
        if not found:
            if own_here and not reasons:
                continue  # a folder of evaluate's own outputs (e.g. --out inside a globbed results folder)
            why = f"; skipped: {'; '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''}" if reasons else ""
            raise SpectralStyleError(f"no result images in folder {path} (looked for {', '.join(IMAGE_SUFFIXES)}){why}")
        items.extend(found)
    if own and skipped is not None:
        names = ", ".join(str(p) for p in own[:4]) + (" ..." if len(own) > 4 else "")
        skipped.append(f"{len(own)} plot{'s' if len(own) != 1 else ''} written by evaluate/analyze, not results: {names}")
    if not items:
        raise SpectralStyleError(f"no result images in {', '.join(str(p) for p in paths)}"
                                 + (" (only plots written by evaluate/analyze)" if own else ""))
    return items


@torch.no_grad()
def evaluate_image(item: EvalInput, scorer: ClipScorer, vgg: VGGContent | None = None,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> ImageMetrics:
    """OCR, CLIP score and (when the content image is available) directional CLIP, SSIM and VGG distance.

    A weighted multi-prompt is scored against its positive prompts, weight-averaged (``scoring_note``).
    Raises OcrError when the OCR engine fails on the image. Videos: see ``video_metrics``.
    """
    from spectralstyle.media.video import is_video

    if is_video(item.image):
        from spectralstyle.evaluation.video import evaluate_video

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
