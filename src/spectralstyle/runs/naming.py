"""Which results a run may write over, and which images are results rather than content.

Why: a result's name (``<content>_<text>_<band>``) does not say which settings made it, so a second run
with other settings (``--steps 3`` after ``--steps 2``), another content image of the same stem
(``x.png`` then ``x.jpg``) or another folder into the same ``--out`` would silently replace earlier work.
A name is free for a run when nothing is there, or when what is there was made by the same run (same
content file, text and config hash: re-running the same command rewrites the same result). Otherwise
the run moves to the first free name of a fixed list (short config hash, then short content-path hash,
then both), so the same command always finds the same name again. ``--overwrite`` keeps the plain name.

Every command follows this rule (``transfer``, ``batch``, ``apply``, ``train``, ``video``, ``generate``), and a
run is "the same" only for the same command: records carry a ``kind`` (None for a transfer, ``stylenet``
for a trained model, ``video``, ``generation``, ``applied``), so one command's result never takes another's
name. A training run's inputs are its list of ``images`` instead of one ``content`` file.

Images this tool wrote carry their settings in the PNG text chunk ``spectralstyle`` (see image_io);
they are never taken as content, so a batch whose ``--out`` is its content folder does not stylise its
own results on the next run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from spectralstyle.media.images import METADATA_KEY

FOREIGN: dict[str, Any] = {"foreign": True}
"""The record of a file this tool did not write (or cannot read): never ours to replace."""


def existing_record(out: Path, stem: str) -> dict[str, Any] | None:
    """What is written under ``stem`` in ``out``: the sidecar's record, else the PNG's; None if nothing."""
    sidecar, image = out / f"{stem}.json", out / f"{stem}.png"
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text())
            return record if isinstance(record, dict) else FOREIGN
        except (OSError, ValueError):
            return FOREIGN
    if image.exists():
        return png_record(image) or FOREIGN
    return None


def png_record(path: Path) -> dict[str, Any] | None:
    """The settings this tool embedded in a PNG (header chunks only, no pixels decoded); None if absent."""
    try:
        with Image.open(path) as img:
            raw = img.info.get(METADATA_KEY) if img.format == "PNG" else None
        record = json.loads(raw) if raw else None
    except Exception:  # any unreadable file is simply not one of ours
        return None
    return record if isinstance(record, dict) else None


def inputs_key(content: Path | None, images: list[str] | None = None) -> Any:
    """What a record names as a run's inputs: the training ``images`` when given, else the resolved content path."""
    if images is not None:
        return [str(p) for p in images]
    return str(Path(content).resolve()) if content is not None else None


def same_inputs(record: dict[str, Any], content: Path | None, images: list[str] | None = None) -> bool:
    key = "images" if images is not None else "content"
    return record.get(key) == inputs_key(content, images)


def same_run(record: dict[str, Any], content: Path | None, text: str, config_hash: str, kind: str | None = None,
             images: list[str] | None = None) -> bool:
    """The record is of this run: the same command (``kind``), inputs, text and config hash."""
    return (record.get("kind") == kind and record.get("config_hash") == config_hash and record.get("text") == text
            and same_inputs(record, content, images))


def content_tag(content: Path | None, images: list[str] | None = None) -> str:
    return hashlib.sha1(json.dumps(inputs_key(content, images)).encode() if images is not None
                        else str(inputs_key(content)).encode()).hexdigest()[:8]


def candidate_stems(stem: str, content: Path | None, config_hash: str, other_content: bool,
                    images: list[str] | None = None) -> Iterator[str]:
    """The names a run tries in order: a short content-path hash first when the plain name holds
    another content image's result (``x.jpg`` after ``x.png``), else a short config hash first."""
    tag, config = content_tag(content, images), config_hash[:8]
    yield stem
    yield from ([f"{stem}_{tag}", f"{stem}_{tag}_{config}", f"{stem}_{config}"] if other_content
                else [f"{stem}_{config}", f"{stem}_{tag}", f"{stem}_{tag}_{config}"])


def free_stem(out: str | Path, stem: str, content: Path | None, text: str, config_hash: str,
              overwrite: bool = False, taken: set[str] | None = None, kind: str | None = None,
              images: list[str] | None = None) -> str:
    """The name this run writes under: ``stem`` unless another run's result is there (see the module doc).

    ``taken`` holds the names other jobs of the same plan write under (not on disk yet). ``kind`` and
    ``images`` identify runs of other commands than ``transfer`` (see ``same_run``).
    """
    if overwrite:
        return stem
    out = Path(out)
    base = existing_record(out, stem)
    other_content = (base is not None and not same_inputs(base, content, images)
                     and base.get("images" if images is not None else "content") is not None)
    for candidate in candidate_stems(stem, content, config_hash, other_content, images):
        if taken and candidate in taken:
            continue
        record = existing_record(out, candidate)
        if record is None or same_run(record, content, text, config_hash, kind, images):
            return candidate
    key = f"{content_tag(content, images)}{text}{config_hash}{kind or ''}"
    return f"{stem}_{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def is_own_result(path: Path) -> bool:
    """True for images this tool wrote (results, snapshots, comparisons): they are not content."""
    return path.suffix.lower() == ".png" and png_record(path) is not None


def split_own_results(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """(content images, images this tool wrote)."""
    own = [p for p in images if is_own_result(p)]
    return [p for p in images if p not in own], own
