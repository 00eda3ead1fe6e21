"""A setting is a dataclass field declared with :func:`setting`; :class:`Settings` checks it from the declaration.

Pure Python (no torch): every ``COMMAND --help`` builds its options from these declarations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from spectralstyle.bands import canonical_band
from spectralstyle.errors import SpectralStyleError, shorten

S = TypeVar("S", bound="Settings")
TYPE_WORDS = {int: "a whole number", float: "a number", str: "text (quote it in YAML)", bool: "true or false"}


@dataclass(frozen=True)
class SettingInfo:
    """What a setting's declaration says besides its type and default."""

    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    note: str = ""
    """Appended to the bounds in error messages, e.g. '(0: no snapshots)'."""
    what: str = ""
    """How error messages name an unknown choice ('unknown weights mode ...'); default: the name."""
    short: str | None = None
    """A one-letter command-line alias such as '-b'."""
    cli: bool = True
    """Offered as a command-line option (width and height come through --size instead)."""
    in_hash: bool = True
    """Part of the config hash: False for settings that do not change the result (where a run is saved)."""
    pair: str = ""
    """Width and height fields of one 'WxH' option name the option here ('size', 'train_size')."""
    rule: Callable[[Any], str | None] | None = None
    """A further check of the value: returns the one-line error, or None when the value is fine."""
    metavar: str | None = None
    bare: Any = None
    """The value of the option given alone, without one (``--preserve-color`` alone means luminance)."""
    reads_file: bool = False
    """The value names a file the run reads (a mask, a second model): a command says it is missing in its
    first second (``require_files``), not after torch has loaded."""
    neutral: bool = False
    """The default does what runs did before the setting existed (a control added later): at its default the
    setting is left out of the config hash, so the hashes of earlier results and checkpoints stay valid."""

    def bounds_rule(self, is_int: bool) -> str:
        """The bounds in words: 'a positive integer', 'non-negative', 'in (0, 1]'."""
        lo, hi = self.minimum, self.maximum
        shown = (lambda v: f"{v:g}" if not float(v).is_integer() or abs(v) >= 1e15 else str(int(v)))
        if hi is None and lo == 1 and is_int:
            rule = "a positive integer"
        elif hi is None and lo == 0:
            rule = "positive" if self.exclusive_minimum else "non-negative"
        elif hi is None:
            rule = f"{'above' if self.exclusive_minimum else 'at least'} {shown(lo)}"
        elif lo is None:
            rule = f"at most {shown(hi)}"
        else:
            rule = f"in {'(' if self.exclusive_minimum else '['}{shown(lo)}, {shown(hi)}]"
        return f"{rule} {self.note}".strip()


def setting(default: Any, help: str, **info: Any) -> Any:
    """Declare a setting: a dataclass field with its default and a :class:`SettingInfo`."""
    return field(default=default, metadata={"setting": SettingInfo(help, **info)})


def info_of(f: dataclasses.Field) -> SettingInfo:
    return f.metadata.get("setting") or SettingInfo(help=f.name.replace("_", " "))


def declared_types(cls: type) -> dict[str, Any]:
    """Field name -> declared type of a settings dataclass (annotations resolved)."""
    return typing.get_type_hints(cls)


def describe_type(declared: Any) -> tuple[type, bool, tuple[Any, ...]]:
    """(base type, optional?, choices) of a declared type: ``int``, ``str | None``, ``Literal[...]``."""
    optional = False
    args = typing.get_args(declared)
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) != len(args)
        declared = rest[0]
        args = typing.get_args(declared)
    if typing.get_origin(declared) is Literal:
        return type(args[0]), optional, args
    return declared, optional, ()


def require_files(settings: Any) -> None:
    """Every ``reads_file`` setting of ``settings`` that is given names an existing file (one line if not)."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None or not info_of(f).reads_file:
            continue
        path = Path(value)
        if not path.is_file():
            state = "is not a file" if path.exists() else "does not exist"
            raise SpectralStyleError(f"{info_of(f).what or f.name.replace('_', ' ')} {path} {state}")


def field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


def size_pairs(cls: type) -> dict[str, tuple[str, str]]:
    """'WxH' option name -> (width field, height field): {'size': ('width', 'height')} for a transfer."""
    pairs: dict[str, list[str]] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if info_of(f).pair:
            pairs.setdefault(info_of(f).pair, []).append(f.name)
    return {name: (fields[0], fields[1]) for name, fields in pairs.items() if len(fields) == 2}


def parse_size(text: Any, what: str = "size") -> tuple[int, int]:
    """'512x384' -> (512, 384); a single number means a square."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*(?:[xX*]\s*(\d{1,9}))?\s*", str(text))
    if not match:
        raise SpectralStyleError(f"{what} {shorten(repr(text))} is not WIDTHxHEIGHT (for example 512x512)")
    width = int(match.group(1))
    height = int(match.group(2) or width)
    if not width or not height:
        raise SpectralStyleError(f"{what} {shorten(repr(text))} has a side of 0 pixels (for example 512x512)")
    return width, height


class Settings:
    """What every settings dataclass shares: checks from the declarations, dict/hash/replace, the size pair.

    Subclasses are dataclasses whose fields are declared with :func:`setting`; they add rules that
    involve several settings in ``check``.
    """

    SIZE_HELP: ClassVar[str] = "Working size WIDTHxHEIGHT."
    PAIR_HELP: ClassVar[dict[str, str]] = {}
    """Help of each 'WxH' option other than --size (``size`` uses SIZE_HELP)."""
    NAMED_AS_OPTIONS: ClassVar[bool] = False
    """Messages name a setting as its option ('--max-side must be ...'): for settings given on the command
    line only; those that a YAML file holds too keep their key's name ('save_every must be ...')."""

    def shown_name(self, name: str) -> str:
        return f"--{name.replace('_', '-')}" if self.NAMED_AS_OPTIONS else name

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SpectralStyleError with one clear line for the first bad setting."""
        hints = declared_types(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            self._check_field(f, hints[f.name])
        self.check()

    def check(self) -> None:
        """Rules that involve several settings (sizes, crops, generators); subclasses extend it."""

    def _check_field(self, f: dataclasses.Field, declared: Any) -> None:
        name, value, info = f.name, getattr(self, f.name), info_of(f)
        shown = self.shown_name(name)
        setting_word = "" if self.NAMED_AS_OPTIONS else "setting "
        kind, optional, choices = describe_type(declared)
        if value is None and optional:
            return
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(self, name, value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise SpectralStyleError(f"{setting_word}{shown} must be {TYPE_WORDS[kind]}, got {shorten(repr(value))}")
        if choices and value not in choices:
            raise SpectralStyleError(f"unknown {info.what or name.replace('_', ' ')} {shorten(repr(value))}; "
                                     f"use one of {', '.join(map(str, choices))}")
        if kind is float and not math.isfinite(value):
            raise SpectralStyleError(f"{setting_word}{shown} must be a finite number, got {value!r}")
        if info.rule is not None:
            problem = info.rule(value)
            if problem:
                raise SpectralStyleError(problem)
        if kind in (int, float):
            low_ok = info.minimum is None or (value > info.minimum if info.exclusive_minimum else value >= info.minimum)
            high_ok = info.maximum is None or value <= info.maximum
            if not (low_ok and high_ok):
                raise SpectralStyleError(f"{shown} must be {info.bounds_rule(kind is int)}, got {shorten(str(value))}")

    def check_mask_options(self) -> None:
        """--mask-feather and --invert-mask mean something only with a mask."""
        if getattr(self, "mask", None) is None:
            if getattr(self, "mask_feather", 0) or getattr(self, "invert_mask", False):
                raise SpectralStyleError("--mask-feather and --invert-mask need --mask")
        elif not str(self.mask).strip():  # type: ignore[attr-defined]
            raise SpectralStyleError("--mask needs the path of an image")

    def check_min_side(self, minimum: int) -> None:
        if min(self.size) < minimum:
            raise SpectralStyleError(f"size {self.size[0]}x{self.size[1]}: each side must be at least {minimum} pixels")

    def check_multiple(self, multiple: int, why: str) -> None:
        if self.size[0] % multiple or self.size[1] % multiple:
            raise SpectralStyleError(f"size {self.size[0]}x{self.size[1]}: {why} multiples of {multiple}")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def digest(self) -> str:
        """Short stable hash of the settings that determine the result (for manifests, names and resuming)."""
        hashed = {f.name: getattr(self, f.name) for f in self._identity_fields() if info_of(f).in_hash}
        if "band" in hashed:  # one hash per set of kept frequencies: '4-7,16-49' and 'c1' are one result
            hashed["band"] = canonical_band(hashed["band"])
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict[str, Any]:
        """``to_dict`` without the neutral settings that hold their default (what hashes of a run are made of)."""
        return {f.name: getattr(self, f.name) for f in self._identity_fields()}

    def _identity_fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if not (info_of(f).neutral and getattr(self, f.name) == f.default)]

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def pair_help(cls, name: str) -> str:
        return cls.SIZE_HELP if name == "size" else cls.PAIR_HELP.get(name, f"{name.replace('_', ' ')} WIDTHxHEIGHT.")
