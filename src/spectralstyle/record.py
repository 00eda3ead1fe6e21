"""The run record: what every result carries about how it was made, and the one place that reads it back.

Why one typed record: the sidecar (``<stem>.json`` beside a result, and the same JSON in the PNG's
``spectralstyle`` text chunk) is the format every command reads: naming decides from it whether a
name is free, batch whether a job is done, evaluate and analyze which text, band, content and weights
a result had. Built as loose dicts in each loop and read by several readers, a key spelled two ways or
a sidecar that is JSON but not an object (``[]``) broke one reader and not the other. Here the record
is one dataclass: the keys all readers rely on are typed fields, everything else a loop adds (losses,
checkpoint, video statistics ...) rides along in ``extra`` unchanged, so the on-disk format is the one
written before and old outputs still read.

Pure Python (PIL only, lazily, for the PNG chunk): no torch, so commands read records before any model
is imported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spectralstyle.errors import SpectralStyleError

PNG_TEXT_KEY = "spectralstyle"
"""The PNG text chunk that holds a result's record (the same JSON as its sidecar)."""

MULTI_SUFFIXES = (".stylenet.pt",)
"""Output suffixes of more than one dot: ``x.stylenet.pt``'s sidecar is ``x.json``."""


class RecordError(SpectralStyleError):
    """A sidecar that exists but cannot be used (unreadable, not JSON, not an object); one line."""


def json_type(value: Any) -> str:
    """How a message names a JSON value's type ('a list', 'a number', ...)."""
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


@dataclass
class RunRecord:
    """One result's record. ``kind`` is None for a transfer result (its sidecars never had one),
    else "generation", "stylenet", "video", "comparison", "evaluation-plot", ...; ``status`` is
    "finished", "snapshot" or "interrupted" (None in records that predate it)."""

    kind: str | None = None
    status: str | None = None
    content: str | None = None
    """Absolute path of the content image (or source video); None when there is none (generate)."""
    text: str | None = None
    band: str | None = None
    config: dict[str, Any] | None = None
    """The full settings of the run (``TransferConfig.to_dict()`` or ``GenerateConfig.to_dict()``)."""
    config_hash: str | None = None
    output: str | None = None
    model: str | None = None
    environment: dict[str, Any] | None = None
    started: str | None = None
    steps_done: int | None = None
    wall_time_s: float | None = None
    losses: list[dict[str, float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other key, written back as it was read."""

    # --- dict / JSON / PNG chunk -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A record from a sidecar's object; unknown keys go to ``extra``, so ``to_dict`` gives them back."""
        names = {f.name for f in fields(cls)} - {"extra"}
        typed = {k: v for k, v in data.items() if k in names}
        return cls(**typed, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The sidecar object: typed fields that are set (``content`` always, as the sidecars had it), then extra."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None or f.name == "content":
                out[f.name] = value
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        """The sidecar file's text (the format ``media.files.write_json`` writes)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "sidecar") -> RunRecord:
        """Parse a sidecar's text; RecordError (one line) when it is not JSON or not a JSON object."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"{source} is not valid JSON ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise RecordError(f"{source} is not a JSON object (it is {json_type(data)})")
        return cls.from_dict(data)

    def to_png_text(self) -> tuple[str, str]:
        """(chunk key, JSON) for ``PngInfo.add_text``: what ``media.images.save_png`` embeds."""
        return PNG_TEXT_KEY, json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_png_text(cls, text: str | None) -> RunRecord | None:
        """The record in a PNG's chunk text; None when absent, not JSON or not an object (not one of ours)."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return cls.from_dict(data) if isinstance(data, dict) else None

    def get(self, key: str, default: Any = None) -> Any:
        """A key of the sidecar object, typed or extra (``record.get("temporal_stability")``)."""
        return self.to_dict().get(key, default)

    # --- what readers ask --------------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        """A run setting: from ``config``, else (applied models, their videos) from the training record."""
        if isinstance(self.config, dict) and name in self.config:
            return self.config[name]
        trained = self.extra.get("trained_with")
        if isinstance(trained, dict) and isinstance(trained.get("config"), dict):
            return trained["config"].get(name)
        return None

    @property
    def weights(self) -> str | None:
        """"pretrained" or "random" when the record says; None when it does not."""
        value = self.setting("weights")
        return value if isinstance(value, str) else None

    @property
    def clip_model(self) -> str | None:
        value = self.setting("clip_model")
        return value if isinstance(value, str) else None

    @property
    def clip_weights(self) -> str | None:
        """The user's own CLIP weights file of the run, if it named one."""
        value = self.setting("clip_weights")
        return value if isinstance(value, str) and value else None

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    def key_settings(self) -> dict[str, str]:
        """The settings that tell two runs of one image apart (steps, size, band, seed, precision, weights),
        as short strings, only those the record has."""
        shown: dict[str, str] = {}
        steps = self.steps_done if self.steps_done is not None else self.setting("steps")
        planned = self.setting("steps")
        if isinstance(steps, int) and not isinstance(steps, bool):
            shown["steps"] = f"{steps}/{planned}" if isinstance(planned, int) and planned != steps else str(steps)
        size = self.extra.get("working_size") or self.setting("size")  # the size the style was learned at
        if size is None and all(isinstance(self.setting(k), int) for k in ("width", "height")):
            size = [self.setting("width"), self.setting("height")]  # records of today's settings: width, height
        if isinstance(size, (list, tuple)) and len(size) == 2:
            shown["size"] = f"{size[0]}x{size[1]}"
        elif isinstance(size, (int, str)) and not isinstance(size, bool):
            shown["size"] = str(size)
        band = self.band if self.band is not None else self.setting("band")
        if isinstance(band, str):
            shown["band"] = band
        for name in ("seed", "precision", "weights"):
            value = self.setting(name)
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                if not (isinstance(value, float) and not math.isfinite(value)):
                    shown[name] = str(value)
        return shown


# --- the one reader ----------------------------------------------------------------------------------
def sidecar_path(output: Path) -> Path:
    """``<stem>.json`` beside an output (``x.png``, ``x.mp4``, ``x.stylenet.pt`` -> ``x.json``)."""
    output = Path(output)
    for suffix in MULTI_SUFFIXES:
        if output.name.endswith(suffix):
            return output.with_name(output.name[: -len(suffix)] + ".json")
    return output.with_suffix(".json")


def png_record(path: Path) -> RunRecord | None:
    """The record embedded in a PNG (header chunks only, no pixels decoded); None if absent or not ours."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            raw = img.info.get(PNG_TEXT_KEY) if img.format == "PNG" else None
    except Exception:  # noqa: BLE001 - any unreadable file is simply not one of ours
        return None
    return RunRecord.from_png_text(raw if isinstance(raw, str) else None)


def find_record(output: Path) -> tuple[RunRecord, str] | None:
    """(record, where it comes from) of an output: its sidecar JSON, else the PNG's chunk, else None.

    A sidecar that exists but is unreadable, not JSON or not a JSON object is a RecordError (one line
    naming the file): it is not silently ignored, since it shadows the PNG's own record.
    """
    output = Path(output)
    sidecar = sidecar_path(output)
    if sidecar.is_file():
        try:
            text = sidecar.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(f"sidecar {sidecar} is not readable ({exc.__class__.__name__})") from None
        return RunRecord.from_json(text, f"sidecar {sidecar}"), f"sidecar {sidecar}"
    if output.suffix.lower() == ".png" and output.is_file():
        record = png_record(output)
        if record is not None:
            return record, f"settings embedded in {output}"
    return None


def read_record(output: Path) -> RunRecord | None:
    """``find_record`` for readers that only need a record or nothing: a bad sidecar counts as none."""
    try:
        found = find_record(output)
    except RecordError:
        return None
    return found[0] if found else None
