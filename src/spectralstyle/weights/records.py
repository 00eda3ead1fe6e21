"""Size and SHA-256 of a download that has no published digest (VQGAN's), recorded beside it at the first
download and checked on every later use, so a file damaged since is named instead of loaded."""

from __future__ import annotations

import json
from pathlib import Path

from spectralstyle.errors import WeightsMissingError
from spectralstyle.media.files import write_json
from spectralstyle.weights.download import sha256_of

RECORD_SUFFIX = ".record.json"


def record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(path: Path) -> None:
    """Remember size and SHA-256 of a good file, so later damage is noticed."""
    write_json({"size": path.stat().st_size, "sha256": sha256_of(path)}, record_path(path))


def check_record(path: Path) -> str:
    """'' when ``path`` has no record, 'recorded' when it matches; WeightsMissingError naming it when not."""
    record = record_path(path)
    if not record.is_file():
        return ""
    try:
        expected = json.loads(record.read_text())
        size, digest = int(expected["size"]), str(expected["sha256"])
    except (ValueError, KeyError, TypeError):
        raise WeightsMissingError(f"{record} is not a size and SHA-256 record; restore or remove it") from None
    actual_size = path.stat().st_size
    if actual_size != size or sha256_of(path) != digest:
        raise WeightsMissingError(
            f"{path} is damaged: it differs from its first download ({actual_size} bytes now, {size} recorded; "
            f"see {record.name}); `spectralstyle weights download vqgan` fetches it again"
        )
    return "recorded"
