"""The resolved settings of a run: defaults (SPEC.md), then a YAML file, then command-line flags.

Every output stores ``TransferConfig.to_dict()`` so that a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import SpectralStyleError
from .spectral import parse_bands

PRECISIONS = ("fp32", "bf16", "fp16")
SOURCE_ENCODERS = ("plain", "filtered")
WEIGHT_MODES = ("pretrained", "random")
MAX_SEED = 2**63 - 1  # torch.manual_seed's range, with room for derived seeds
MIN_TRANSFER_SIDE = 16  # VGG's relu5_2 needs 16 px; the StyleNet bottleneck needs 2x2 pixels
S = TypeVar("S", bound="Settings")
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_TYPE_WORDS = {"int": "a whole number", "float": "a number", "str": "text (quote it in YAML)", "bool": "true or false"}


class Settings:
    """What every settings dataclass shares: validation on creation, dict/hash/replace, the size pair.

    Subclasses are dataclasses with ``band``, ``weights``, ``width`` and ``height`` fields.
    """

    band: str
    weights: str
    width: int
    height: int

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks shared by all runs; subclasses extend it."""
        self.check_types()
        try:
            parse_bands(self.band)
        except ValueError as exc:
            raise SpectralStyleError(str(exc)) from None
        if self.weights not in WEIGHT_MODES:
            raise SpectralStyleError(f"unknown weights mode {self.weights!r}; use pretrained or random")

    def check_types(self) -> None:
        """Each value has its field's declared type (YAML can give anything); ints are accepted as floats."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            declared = str(f.type).replace(" ", "")
            optional = declared.endswith("|None")
            kind = declared.removesuffix("|None")
            value = getattr(self, f.name)
            if value is None and optional:
                continue
            if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            expected = _TYPES.get(kind)
            if expected is None:
                continue
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise SpectralStyleError(f"setting {f.name} must be {_TYPE_WORDS[kind]}, got {value!r}")
            if expected is float and not math.isfinite(value):
                raise SpectralStyleError(f"setting {f.name} must be a finite number, got {value!r}")
            if f.name == "seed" and not 0 <= value <= MAX_SEED:
                raise SpectralStyleError(f"seed must be between 0 and {MAX_SEED}, got {value}")

    def require_positive(self, *names: str) -> None:
        for name in names:
            if int(getattr(self, name)) < 1:
                raise SpectralStyleError(f"{name} must be a positive integer, got {getattr(self, name)}")

    def require(self, condition: bool, name: str, rule: str) -> None:
        """One line naming the setting, its rule and the value given."""
        if not condition:
            raise SpectralStyleError(f"{name} must be {rule}, got {getattr(self, name)}")

    def check_min_side(self, minimum: int) -> None:
        if min(self.width, self.height) < minimum:
            raise SpectralStyleError(f"size {self.width}x{self.height}: each side must be at least {minimum} pixels")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def digest(self) -> str:
        """Short stable hash of the settings (for manifests and caches)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass
class TransferConfig(Settings):
    """Method and run settings of one style transfer (defaults are the reference's)."""

    band: str = "c2"
    steps: int = 200
    width: int = 512
    height: int = 512
    crops: int = 64
    crop_size: int = 128
    distortion: float = 0.5
    lr: float = 5e-4
    lr_step: int = 100
    lr_gamma: float = 0.5
    seed: int = 1234
    threshold: float = 0.7
    lambda_patch: float = 9000.0
    lambda_global: float = 500.0
    lambda_content: float = 150.0
    lambda_tv: float = 0.002
    source_text: str = "a Photo"
    source_encoder: str = "plain"
    contrast: float = 1.5
    clip_model: str = "ViT-B/32"
    weights: str = "pretrained"
    clip_weights: str | None = None
    vgg_weights: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    save_every: int = 0

    def validate(self) -> None:
        """Raise SpectralStyleError with one clear line for the first bad setting."""
        super().validate()
        self.require_positive("steps", "width", "height", "crops", "crop_size", "lr_step")
        if self.width % 8 or self.height % 8:
            raise SpectralStyleError(f"size {self.width}x{self.height}: width and height must be multiples of 8")
        self.check_min_side(MIN_TRANSFER_SIDE)
        if self.crop_size > min(self.width, self.height):
            raise SpectralStyleError(f"crop size {self.crop_size} is larger than the image size {self.width}x{self.height}")
        self.require(0 <= self.distortion <= 1, "distortion", "in [0, 1]")
        self.require(0 < self.lr <= 1, "lr", "in (0, 1] (the reference uses 5e-4)")
        self.require(self.contrast > 0, "contrast", "positive (0 gives a flat grey picture; 1 = unchanged)")
        self.require(self.save_every >= 0, "save_every", "non-negative (0: no snapshots)")
        if self.precision not in PRECISIONS:
            raise SpectralStyleError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.source_encoder not in SOURCE_ENCODERS:
            raise SpectralStyleError(f"unknown source encoder {self.source_encoder!r}; use one of {', '.join(SOURCE_ENCODERS)}")


FIELD_NAMES = frozenset(f.name for f in fields(TransferConfig))


def parse_size(text: str) -> tuple[int, int]:
    """'512x384' -> (512, 384); a single number means a square."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", str(text))
    if not match:
        raise SpectralStyleError(f"size {text!r} is not WIDTHxHEIGHT (for example 512x512)")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def read_yaml_mapping(path: Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file holding a mapping; invalid YAML or another shape is a one-line user error."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SpectralStyleError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise SpectralStyleError(f"{what} {path} is not readable UTF-8 text ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise SpectralStyleError(f"{what} {path} must hold a mapping of settings")
    return data


def with_suggestions(unknown: list[str], known: frozenset[str]) -> str:
    """``crop-size (did you mean crop_size?)``: YAML keys are the flags' names with underscores."""
    parts = []
    for key in unknown:
        text = str(key)
        close = difflib.get_close_matches(text.replace("-", "_").lower(), sorted(known), n=1, cutoff=0.6)
        parts.append(f"{text} (did you mean {close[0]}?)" if close else text)
    return ", ".join(parts)


def read_config_file(path: str | Path | None, field_names: frozenset[str] = FIELD_NAMES) -> dict[str, Any]:
    """Settings from a YAML file; keys outside ``field_names`` and unreadable files are user errors."""
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        raise SpectralStyleError(f"config file {p} does not exist")
    if not p.is_file():
        raise SpectralStyleError(f"config file {p} is not a file")
    data = read_yaml_mapping(p)
    if "size" in data and ({"width", "height"} & set(data)):
        raise SpectralStyleError(f"{p} gives both size and width/height; keep one")
    if "size" in data:
        data["width"], data["height"] = parse_size(data.pop("size"))
    unknown = sorted(set(data) - field_names)
    if unknown:
        raise SpectralStyleError(f"unknown setting(s) in {p}: {with_suggestions(unknown, field_names)}")
    return data


def resolve_settings(cls: type[S], config_file: str | Path | None = None, size: str | None = None, **overrides: Any) -> S:
    """Defaults < YAML file < explicit overrides (``None`` means 'not given'); ``size`` is 'WxH'."""
    names = frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]
    values = read_config_file(config_file, names)
    if size is not None:
        overrides["width"], overrides["height"] = parse_size(size)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - names)
    if unknown:
        raise SpectralStyleError(f"unknown setting(s): {with_suggestions(unknown, names)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SpectralStyleError(f"bad setting: {exc}") from None


def resolve_config(config_file: str | Path | None = None, size: str | None = None, **overrides: Any) -> TransferConfig:
    """The transfer settings: defaults < YAML file < explicit overrides."""
    return resolve_settings(TransferConfig, config_file, size, **overrides)
