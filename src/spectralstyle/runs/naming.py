"""Which results a run may write over, and which images are results rather than content.

Why: a result's name (``<content>_<text>_<band>``) does not say which settings made it, so a second run
with other settings (``--steps 3`` after ``--steps 2``), another content image of the same stem
(``x.png`` then ``x.jpg``) or another folder into the same ``--out`` would silently replace earlier work.
A name is free for a run when nothing is there, or when what is there was made by the same run (same
content file, text and config hash: re-running the same command rewrites the same result). Otherwise
the run moves to the first free name of a fixed list (short config hash, then short content-path hash,
then both), so the same command always finds the same name again. ``--overwrite`` keeps the plain name.

Images this tool wrote carry their settings in the PNG text chunk ``spectralstyle`` (see ``record``,
the one reader of sidecars and chunks); they are never taken as content, so a batch whose ``--out``
is its content folder does not stylise its own results on the next run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from spectralstyle.record import RecordError, RunRecord, find_record, png_record

FOREIGN = RunRecord(extra={"foreign": True})
"""The record of a file this tool did not write (or cannot read): never ours to replace."""


def existing_record(out: Path, stem: str) -> RunRecord | None:
    """What is written under ``stem`` in ``out``: the sidecar's record, else the PNG's; None if nothing.

    Read through the one reader (``record.find_record``); a sidecar that is not a JSON object, or a file
    there that this tool did not write, is FOREIGN.
    """
    sidecar, image = Path(out) / f"{stem}.json", Path(out) / f"{stem}.png"
    if not sidecar.is_file() and not image.exists():
        return None
    try:
        found = find_record(image)
    except RecordError:
        return FOREIGN
    return found[0] if found else FOREIGN


def same_run(record: RunRecord, content: Path, text: str, config_hash: str) -> bool:
    return (record.config_hash == config_hash and record.text == text
            and record.content == str(Path(content).resolve()))


def content_tag(content: Path) -> str:
    return hashlib.sha1(str(Path(content).resolve()).encode()).hexdigest()[:8]


def candidate_stems(stem: str, content: Path, config_hash: str, other_content: bool) -> Iterator[str]:
    """The names a run tries in order: a short content-path hash first when the plain name holds
    another content image's result (``x.jpg`` after ``x.png``), else a short config hash first."""
    tag, config = content_tag(content), config_hash[:8]
    yield stem
    yield from ([f"{stem}_{tag}", f"{stem}_{tag}_{config}", f"{stem}_{config}"] if other_content
                else [f"{stem}_{config}", f"{stem}_{tag}", f"{stem}_{tag}_{config}"])


def free_stem(out: str | Path, stem: str, content: Path, text: str, config_hash: str,
              overwrite: bool = False, taken: set[str] | None = None) -> str:
    """The name this run writes under: ``stem`` unless another run's result is there (see the module doc).

    ``taken`` holds the names other jobs of the same plan write under (not on disk yet).
    """
    if overwrite:
        return stem
    out = Path(out)
    base = existing_record(out, stem)
    other_content = base is not None and base.content not in (None, str(Path(content).resolve()))
    for candidate in candidate_stems(stem, content, config_hash, other_content):
        if taken and candidate in taken:
            continue
        record = existing_record(out, candidate)
        if record is None or same_run(record, content, text, config_hash):
            return candidate
    return f"{stem}_{hashlib.sha1(f'{content_tag(content)}{text}{config_hash}'.encode()).hexdigest()[:12]}"


def is_own_result(path: Path) -> bool:
    """True for images this tool wrote (results, snapshots, comparisons): they are not content."""
    return path.suffix.lower() == ".png" and png_record(path) is not None


def split_own_results(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """(content images, images this tool wrote)."""
    own = [p for p in images if is_own_result(p)]
    return [p for p in images if p not in own], own
