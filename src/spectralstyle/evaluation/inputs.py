"""What evaluate and analyze read: the results named or found in folders, each with what its run record
says (text, band, content image, weighted prompts, settings), and the models its records ask for.

Records are read through the one reader (``spectralstyle.record``): the sidecar JSON beside a result,
else the PNG's own chunk. Comparison images, snapshots, interrupted runs and the plots evaluate and
analyze write are not results and are left out of folders.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from spectralstyle.errors import SpectralStyleError
from spectralstyle.evaluation.outputs import PLOT_KIND, is_output_name
from spectralstyle.media.images import IMAGE_SUFFIXES, list_images, open_rgb
from spectralstyle.method.clip_model import tokenize_templated
from spectralstyle.method.prompts import SEPARATOR, Prompt
from spectralstyle.record import (
    RecordError,
    RunRecord,
    find_record,
    json_type,
    png_record,
)

UNKNOWN_BAND = "unknown"
SKIPPED_KINDS = ("comparison", PLOT_KIND)
SKIPPED_STATUSES = ("snapshot", "interrupted")


class SidecarError(RecordError):
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
    record: RunRecord | None = None
    """The result's run record (None without a sidecar or embedded settings)."""

    @property
    def key_settings(self) -> dict[str, str]:
        """Steps, size, band, seed, precision and weights of the run, as far as its record says."""
        return self.record.key_settings() if self.record is not None else {}

    @property
    def random_weights(self) -> bool:
        """True for a result made with random weights (a test or demo run, not a real stylisation)."""
        return self.record is not None and self.record.random_weights

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


def _sidecar(image: Path) -> tuple[dict[str, Any], str, RunRecord] | None:
    """(settings, where they come from, record) of ``image`` through the one reader; None without one.
    A sidecar JSON that is unreadable or not an object is a SidecarError (one line)."""
    try:
        found = find_record(image)
    except RecordError as exc:
        raise SidecarError(str(exc)) from None
    if found is None:
        return None
    record, source = found
    return record.to_dict(), source, record


def read_sidecar(image: Path) -> RunRecord | None:
    """The run record of a result (its sidecar JSON, else the settings embedded in the PNG), else None."""
    found = _sidecar(image)
    return found[2] if found else None


def _string_field(meta: dict[str, Any], key: str, source: str) -> str | None:
    """``meta[key]`` when it is a non-empty string, None when absent, null or empty; a SidecarError otherwise."""
    value = meta.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SidecarError(f"{source}: \"{key}\" must be a string, not {json_type(value)}")
    return value


def _prompts_field(meta: dict[str, Any], source: str) -> tuple[Prompt, ...]:
    """The ``prompts`` list of a generate sidecar ([{"text": ..., "weight": ...}, ...]), validated."""
    raw = meta.get("prompts")
    if raw is None:
        return ()
    bad = f"{source}: \"prompts\" must be a list of {{\"text\": string, \"weight\": number}}"
    if not isinstance(raw, list):
        raise SidecarError(f"{bad}, not {json_type(raw)}")
    prompts = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise SidecarError(f"{bad}; found {json_type(entry)}")
        text, weight = entry.get("text"), entry.get("weight", 1.0)
        if not isinstance(text, str) or not text.strip():
            raise SidecarError(f"{bad}; a prompt's text is {json_type(text) if text != '' else 'empty'}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            shown = json_type(weight) if not isinstance(weight, float) else weight
            raise SidecarError(f"{bad}; the weight of {text!r} is {shown}")
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


def _listed_sidecar(image: Path, in_folder: bool) -> tuple[dict[str, Any], str, RunRecord | None] | None:
    """(sidecar settings, their source, the record) of ``image`` ({}, "" and None without one); None for our
    own plots and, in folders, for comparison images, snapshots and interrupted runs. A bad sidecar, or a kind or status
    that is not a string, is a SidecarError."""
    found = _sidecar(image)
    meta, source, record = found if found else ({}, "", None)
    kind, status = _string_field(meta, "kind", source), _string_field(meta, "status", source)
    if kind == PLOT_KIND or (in_folder and (kind in SKIPPED_KINDS or status in SKIPPED_STATUSES)):
        return None
    return meta, source, record


def _input_for(image: Path, text: str | None, in_folder: bool) -> EvalInput | None:
    """What to evaluate for ``image``; None for comparison images, snapshots and our own plots found in
    folders. A bad sidecar is a SidecarError; an image with no text anywhere a SpectralStyleError."""
    listed = _listed_sidecar(image, in_folder)
    if listed is None:
        return None
    meta, source, record = listed
    own_text = _string_field(meta, "text", source)
    band = _string_field(meta, "band", source) or UNKNOWN_BAND
    content = _string_field(meta, "content", source)
    prompts = _prompts_field(meta, source) if own_text else ()
    if not own_text and not text:
        raise SpectralStyleError(f"{image} has no sidecar JSON naming its text; pass --text")
    item = EvalInput(image, own_text or str(text), band, Path(content) if content else None, prompts,
                     "sidecar" if own_text else "--text", record)
    if own_text:
        for p in item.scored_prompts:
            problem = _text_problem(p.text)
            if problem:
                raise SidecarError(f"{source}: {problem}")
    return item


def _own_output(image: Path, out_dir: Path | None) -> bool:
    """A file that evaluate or analyze wrote: a plot in the current --out folder, or any PNG whose
    embedded settings say it is one of their plots."""
    if out_dir is not None and is_output_name(image.name):
        try:
            if image.parent.resolve() == out_dir.resolve():
                return True
        except OSError:
            pass
    if image.suffix.lower() != ".png" or image.with_suffix(".json").is_file():
        return False
    record = png_record(image)
    return record is not None and record.kind == PLOT_KIND


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
        plots = f"{len(own)} plot{'s' if len(own) != 1 else ''}"
        skipped.append(f"{plots} written by evaluate/analyze, not results: {names}")
    if not items:
        raise SpectralStyleError(f"no result images in {', '.join(str(p) for p in paths)}"
                                 + (" (only plots written by evaluate/analyze)" if own else ""))
    return items


# --- the models the records ask for -------------------------------------------------------------------
DEFAULT_CLIP_MODEL = "ViT-B/32"


@dataclass(frozen=True)
class ScoringModels:
    """Which CLIP (and VGG) evaluate and analyze load: ``weights`` "pretrained" or "random", the CLIP
    architecture, the user's own CLIP weights file if any, and a note when the records disagree."""

    weights: str
    clip_model: str = DEFAULT_CLIP_MODEL
    clip_weights: str | None = None
    note: str | None = None
    from_records: bool = False
    """True when ``weights`` came from the results' records rather than from the caller."""


def _agreed(values: list[str | None]) -> tuple[str | None, bool]:
    """(the one value all records that name one agree on, whether they disagree)."""
    named = sorted({v for v in values if v})
    return (named[0] if len(named) == 1 else None), len(named) > 1


def scoring_models(records: list[RunRecord | None], weights: str | None = None,
                   clip_weights: str | None = None, clip_model: str | None = None) -> ScoringModels:
    """The models to score results with: what is given, else what the results' records say.

    Why: results made with ``--weights random`` (tests, demos, the quickstart) must be evaluable with no
    download and no flag; results of a real run are scored with pretrained CLIP, their own architecture
    and (when the file is still there) their own CLIP weights. Records that disagree on the weights are
    scored with pretrained weights, with a note; records with no weights at all count as pretrained.
    """
    notes = []
    if clip_weights is not None and weights is None:  # a CLIP file of the user's own is pretrained weights
        weights = "pretrained"
    from_records = weights is None
    if weights is None:
        agreed, mixed = _agreed([r.weights if r is not None else None for r in records])
        weights = agreed or "pretrained"
        if mixed:
            notes.append("the results were made with different weights (pretrained and random); scoring with "
                         "pretrained weights (pass --weights to choose)")
    if clip_model is None:
        agreed, mixed = _agreed([r.clip_model if r is not None else None for r in records])
        clip_model = agreed or DEFAULT_CLIP_MODEL
        if mixed:
            notes.append(f"the results were made with different CLIP models; scoring with {clip_model}")
    if clip_weights is None and weights == "pretrained" and from_records:
        agreed, _ = _agreed([r.clip_weights if r is not None else None for r in records])
        if agreed and Path(agreed).exists():
            clip_weights = agreed
    return ScoringModels(weights, clip_model, clip_weights if weights == "pretrained" else None,
                         "; ".join(notes) or None, from_records)
