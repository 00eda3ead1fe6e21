"""The files evaluate and analyze write into their --out folder, declared once, and the rule that never
overwrites another evaluation's files.

Why a rule: ``evaluate a/ --out e`` then ``evaluate b/ --out e`` used to replace the first report without
a word. Now each evaluation writes a small record (``report.json`` / ``analysis.json``) naming its inputs
and settings (their hash is its key). A folder holding another evaluation's files (or files of unknown
origin under these names) gets this one's files under a suffixed name, ``report_<hash8>.html`` and so on,
with one note; the same evaluation run again rewrites its own files; ``overwrite`` replaces the plain
names. Pure Python: the names are known before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPORT_HTML, METRICS_CSV = "report.html", "metrics.csv"
BANDS_PLOT, SCATTER_PLOT = "bands.png", "clip_vs_text_area.png"
EVALUATE_OUTPUTS = (BANDS_PLOT, SCATTER_PLOT)
"""The plots ``evaluate`` writes (beside report.html and metrics.csv)."""
PER_IMAGE_CSV, SPECTRUM_CSV, BANDS_CSV = "per_image.csv", "spectrum.csv", "bands.csv"
SPECTRUM_PLOT, BAND_SCORES_PLOT = "spectrum.png", "band_scores.png"
ANALYZE_OUTPUTS = (SPECTRUM_PLOT, BAND_SCORES_PLOT)
"""The plots ``analyze`` writes."""
PLOT_KIND = "evaluation-plot"
"""``kind`` in the settings embedded in the plots of evaluate and analyze: never taken as an input."""

EVALUATE_FILES: Mapping[str, str] = {"html": REPORT_HTML, "csv": METRICS_CSV, "bands": BANDS_PLOT,
                                     "scatter": SCATTER_PLOT}
ANALYZE_FILES: Mapping[str, str] = {"per_image": PER_IMAGE_CSV, "spectrum_csv": SPECTRUM_CSV, "bands_csv": BANDS_CSV,
                                    "spectrum": SPECTRUM_PLOT, "band_scores": BAND_SCORES_PLOT}
RECORD_FILES = {"evaluate": "report.json", "analyze": "analysis.json"}
"""The record of what an evaluation read and how (its key), beside its files."""
FILES = {"evaluate": EVALUATE_FILES, "analyze": ANALYZE_FILES}

_TAG = re.compile(r"^(?P<base>.+)_[0-9a-f]{8}(?:[0-9a-f]{4})?$")


def suffixed(name: str, tag: str) -> str:
    """``report.html`` + ``ab12cd34`` -> ``report_ab12cd34.html`` (the plain name for an empty tag)."""
    if not tag:
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}_{tag}{dot}{suffix}"


def is_output_name(name: str) -> bool:
    """A plot name evaluate or analyze writes, plain or suffixed (``bands_ab12cd34.png``)."""
    stem, dot, suffix = name.partition(".")
    match = _TAG.match(stem)
    plain = f"{match['base']}{dot}{suffix}" if match else name
    return plain in EVALUATE_OUTPUTS + ANALYZE_OUTPUTS


def evaluation_key(command: str, inputs: list[Path], settings: Mapping[str, Any]) -> str:
    """12 hex digits naming one evaluation: the command, its inputs (resolved, sorted) and its settings."""
    described = {"command": command, "inputs": sorted(str(Path(p).resolve()) for p in inputs),
                 "settings": dict(settings)}
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class OutputNames:
    """Where one evaluation's files go: ``out / files[role]``, its record ``out / record``."""

    out: Path
    command: str
    key: str
    tag: str
    """"" for the plain names, else the hash suffix this evaluation writes under."""

    def path(self, role: str) -> Path:
        return self.out / suffixed(FILES[self.command][role], self.tag)

    @property
    def record(self) -> Path:
        return self.out / suffixed(RECORD_FILES[self.command], self.tag)

    def all_paths(self) -> list[Path]:
        return [self.path(role) for role in FILES[self.command]]


def _recorded_key(path: Path) -> str | None:
    """The key in an evaluation record; None when it cannot be read (then it is not ours to replace)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("key") if isinstance(data, dict) and isinstance(data.get("key"), str) else None


def choose_outputs(out: Path, command: str, inputs: list[Path], settings: Mapping[str, Any],
                   overwrite: bool = False) -> tuple[OutputNames, str | None]:
    """(the names this evaluation writes under, a note when they are not the plain ones).

    The plain names when they are free (none of the files nor the record exist), hold this same
    evaluation (its record has this key), or ``overwrite``; else ``<name>_<hash8>``, then ``<name>_<hash12>``.
    """
    out = Path(out)
    key = evaluation_key(command, inputs, settings)
    plain = OutputNames(out, command, key, "")
    if overwrite:
        return plain, None
    for tag in ("", key[:8], key):
        names = OutputNames(out, command, key, tag)
        if names.record.exists():
            if _recorded_key(names.record) == key:
                return names, _note(plain, names)
            continue
        if not any(p.exists() for p in names.all_paths()):
            return names, _note(plain, names)
    raise FileExistsError(f"{out} holds files of another evaluation under every name of key {key}")


def _note(plain: OutputNames, chosen: OutputNames) -> str | None:
    if not chosen.tag:
        return None
    first = plain.path(next(iter(FILES[plain.command])))
    return (f"note: {first} holds another {plain.command} (other inputs or settings); this one is written as "
            f"{chosen.path(next(iter(FILES[chosen.command]))).name} and its other files with _{chosen.tag} "
            "(--overwrite replaces the earlier files)")


def write_evaluation_record(names: OutputNames, inputs: list[Path], settings: Mapping[str, Any]) -> Path:
    """``report.json`` / ``analysis.json``: the key, inputs and settings of the evaluation whose files these are.
    Written before the files, so an interrupted evaluation's names stay claimed by it."""
    from spectralstyle.media.files import write_json

    return write_json({"kind": "evaluation", "command": names.command, "key": names.key,
                       "inputs": [str(Path(p).resolve()) for p in inputs], "settings": dict(settings),
                       "files": [p.name for p in names.all_paths()],
                       "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}, names.record)
