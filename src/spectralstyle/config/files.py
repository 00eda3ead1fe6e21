"""Reading settings: YAML files and shipped presets, checked before any value is built, then resolved as
defaults < YAML file (or preset) < explicit values.

A config file is small and flat. Hostile ones are refused in one line before their values exist: more
than ``MAX_FILE_BYTES``, nesting deeper than ``MAX_DEPTH``, or aliases that expand to more than
``MAX_VALUES`` values (the "billion laughs" file); keys that are not text, or given twice, too.
"""

from __future__ import annotations

import dataclasses
import difflib
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from spectralstyle.config.fields import Settings, field_names, parse_size, size_pairs
from spectralstyle.errors import SpectralStyleError, shorten
from spectralstyle.sizes import size_fields

S = TypeVar("S", bound=Settings)
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_VALUES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ShapeError(Exception):
    """A YAML file whose shape is refused (the message says why, without the file's name)."""


def _check_events(text: str) -> None:
    """Depth and expanded size from the parser's event stream (flat, no recursion, nothing built).

    Each open collection counts the values it will hold once aliases are expanded; an alias adds the
    count of what its anchor named, so nested aliases are measured without expanding them.
    """
    open_counts = [0]
    open_anchors: list[str | None] = []
    sizes: dict[str, int] = {}
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            open_counts.append(0)
            open_anchors.append(event.anchor)
            if len(open_anchors) > MAX_DEPTH:
                raise _ShapeError(f"is nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            count = open_counts.pop() + 1
            anchor = open_anchors.pop()
            if anchor:
                sizes[anchor] = count
            open_counts[-1] += count
        elif isinstance(event, yaml.ScalarEvent):
            open_counts[-1] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            open_counts[-1] += sizes.get(event.anchor, 1)
        if sum(open_counts) > MAX_VALUES:
            raise _ShapeError(f"expands to more than {MAX_VALUES} values (nested aliases?)")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse keys that are not text or that are given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise _ShapeError(f"has a key that is not a setting name: {shorten(repr(key), 40)} (line {line})")
            if key in lines:
                raise _ShapeError(f"gives {shorten(key, 40)!r} twice (lines {lines[key]} and {line})")
            lines[key] = line
        return super().construct_mapping(node, deep)


def read_yaml_mapping(path: Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file holding a mapping; anything else (see the module doc) is a one-line user error."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise SpectralStyleError(f"{what} {path} is larger than {MAX_FILE_BYTES // 1024} KB; a config file is "
                                     "a short list of settings")
        text = raw.decode("utf-8")
        _check_events(text)
        data = yaml.load(text, Loader=_StrictLoader) or {}
    except _ShapeError as exc:
        raise SpectralStyleError(f"{what} {path} {exc}") from None
    except yaml.YAMLError as exc:
        raise SpectralStyleError(f"{what} {path} is not valid YAML: {shorten(str(exc).splitlines()[0], 160)}") from None
    except RecursionError:
        raise SpectralStyleError(f"{what} {path} is nested too deeply") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise SpectralStyleError(f"{what} {path} is not readable UTF-8 text ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise SpectralStyleError(f"{what} {path} must hold a mapping of settings")
    return data


def presets_dir() -> Any:
    """The shipped presets (the repository's ``configs/``): packaged as ``spectralstyle.presets`` in an
    installed wheel, read from the checkout in a development (editable) install."""
    try:
        return resources.files("spectralstyle.presets")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[3] / "configs"


def preset_names(*classes: type) -> list[str]:
    """Names usable as ``--config NAME``: the shipped YAML files without their suffix; with ``classes``,
    only the presets whose every key is one of their settings (``transfer`` is not offered ``generate``)."""
    try:
        names = sorted(p.name[: -len(".yaml")] for p in presets_dir().iterdir() if p.name.endswith(".yaml"))
    except OSError:
        return []
    if not classes:
        return names
    known = all_names(*classes)
    return [name for name in names if set(_preset_keys(name)) <= known]


def _preset_keys(name: str) -> list[str]:
    try:
        with resources.as_file(presets_dir() / f"{name}.yaml") as path:
            return list(read_yaml_mapping(Path(path)))
    except SpectralStyleError:
        return []


def find_config(name_or_path: str | Path) -> Path:
    """A config file: an existing path, else a shipped preset name ('quick'); one line when neither."""
    path = Path(name_or_path)
    if path.exists():
        if not path.is_file():
            raise SpectralStyleError(f"config file {path} is not a file")
        return path
    name = str(name_or_path).removesuffix(".yaml")
    if name in preset_names() and "/" not in name:
        with resources.as_file(presets_dir() / f"{name}.yaml") as preset:
            return Path(preset)
    presets = ", ".join(preset_names())
    raise SpectralStyleError(f"config file {shorten(str(path))} does not exist (shipped presets: {presets})")


def check_keys(keys: set[str], names: frozenset[str], source: str) -> None:
    """Unknown keys are one line naming them, with the nearest known setting ('crop-size' -> crop_size)."""
    unknown = sorted(keys - names, key=str)
    if not unknown:
        return
    hints = []
    for key in unknown[:5]:
        close = difflib.get_close_matches(str(key).replace("-", "_").lower(), sorted(names), n=1)
        shown = shorten(str(key), 40)
        hints.append(f"{shown} (did you mean {close[0]}?)" if close else shown)
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    raise SpectralStyleError(f"unknown setting(s) in {source}: {', '.join(hints)}{more}")


def _split_pairs(values: dict[str, Any], pairs: dict[str, tuple[str, str]], source: str,
                 names: frozenset[str] = frozenset()) -> dict[str, Any]:
    """'size: 512x384' -> width 512, height 384 (for every 'WxH' option of the class). For a class with a
    ``keep_aspect`` setting (transfer), ``size: N`` is a long side at the content's aspect ratio and ``WxH``
    exact (``sizes.size_fields``)."""
    for name, (width, height) in pairs.items():
        if values.get(name) is None:
            values.pop(name, None)
            continue
        if {width, height} & set(values):
            raise SpectralStyleError(f"{source} gives both {name} and {width}/{height}; keep one")
        if name == "size" and "keep_aspect" in names:
            values.update(size_fields(values.pop(name)))
        else:
            values[width], values[height] = parse_size(values.pop(name), name.replace("_", "-"))
    return values


def read_config_file(path: str | Path | None, names: frozenset[str],
                     pairs: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Settings from a YAML file or preset; keys outside ``names`` (and the pair options) are user errors."""
    if path is None:
        return {}
    p = find_config(path)
    data = read_yaml_mapping(p)
    pairs = {"size": ("width", "height")} if pairs is None else pairs
    check_keys(set(data), names | set(pairs), str(p))
    if "size" not in data and {"width", "height"} & set(data) and "keep_aspect" in names:
        data.setdefault("keep_aspect", False)  # width and height given one by one are exact
    return _split_pairs(data, pairs, str(p), names)


def resolve_settings(cls: type[S], config_file: str | Path | None = None, size: str | None = None,
                     known: frozenset[str] = frozenset(), **overrides: Any) -> S:
    """Defaults < YAML file < explicit overrides (``None`` means 'not given'); ``size`` is 'WxH'.

    ``known`` names keys of the same file that belong to another settings class of the command (a
    ``train`` file holds transfer and training settings): accepted and left to that class.
    """
    names, pairs = field_names(cls), size_pairs(cls)
    values = read_config_file(config_file, names | known, pairs)
    values = {k: v for k, v in values.items() if k in names}
    if size is not None:
        overrides["size"] = size
    given = {k: v for k, v in overrides.items() if v is not None}
    given = _split_pairs(given, pairs, "the settings", names) if pairs else given
    for width, height in pairs.values():
        if width in given:
            values.pop(width, None), values.pop(height, None)
    values.update(given)
    check_keys(set(values), names, "the settings")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SpectralStyleError(f"bad setting: {shorten(str(exc), 200)}") from None


def all_names(*classes: type) -> frozenset[str]:
    """Every key a file for these settings classes may hold (fields and 'WxH' options)."""
    return frozenset().union(*(field_names(c) | set(size_pairs(c)) for c in classes))


def defaults_of(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
