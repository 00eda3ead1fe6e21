"""Which results a run may write over, and which images are results rather than content.

Why: a result's name (``<content>_<text>_<band>``) does not say which settings made it, so a second run
with other settings (``--steps 3`` after ``--steps 2``), another content image of the same stem
(``x.png`` then ``x.jpg``) or another folder into the same ``--out`` would silently replace earlier work.
A name is free for a run when nothing is there, or when what is there was made by the same run (same
content file, text and config hash: re-running the same command rewrites the same result). Otherwise
the run moves to the first free name of a fixed list (short config hash, then short content-path hash,
then both), so the same command always finds the same name again. ``--overwrite`` keeps the plain name.

Reserving a name. Choosing a free name at start is not enough when runs start together: two runs with
other settings (``--steps 4`` and ``--steps 6``) would both find the plain name free and write over each
other. So a run reserves its name (``reserve_stem``) before it starts: it claims ``OUT/.names/<stem>.lock``
with an exclusive create (:mod:`spectralstyle.media.claims`: owner, heartbeat, takeover of a lock whose
owner died), and a name whose lock a live run holds is not free. The reservation is checked again just
before the result is written (``ReservedName.confirm``): if another writer put a result of other settings
under the name meanwhile (a tool that does not reserve), the run moves to the next free name with a note.
Every command that writes a result should reserve its name this way.

Every command follows this rule (``transfer``, ``batch``, ``apply``, ``train``, ``video``, ``generate``), and a
run is "the same" only for the same command: records carry a ``kind`` (None for a transfer, ``stylenet``
for a trained model, ``video``, ``generation``, ``applied``), so one command's result never takes another's
name. A training run's inputs are its list of ``images`` instead of one ``content`` file.

Images this tool wrote carry their settings in the PNG text chunk ``spectralstyle`` (see ``record``,
the one reader of sidecars and chunks); they are never taken as content, so a batch whose ``--out``
is its content folder does not stylise its own results on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.claims import Claim, holder, try_claim
from spectralstyle.record import RecordError, RunRecord, find_record, png_record

log = logging.getLogger("spectralstyle")

NAMES_DIR = ".names"
"""``OUT/.names/<stem>.lock``: the result names reserved by running runs."""

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


def inputs_key(content: Path | None, images: list[str] | None = None) -> Any:
    """What a record names as a run's inputs: the training ``images`` when given, else the resolved content path."""
    if images is not None:
        return [str(p) for p in images]
    return str(Path(content).resolve()) if content is not None else None


def same_inputs(record: RunRecord, content: Path | None, images: list[str] | None = None) -> bool:
    key = "images" if images is not None else "content"
    return record.get(key) == inputs_key(content, images)


def same_run(record: RunRecord, content: Path | None, text: str, config_hash: str, kind: str | None = None,
             images: list[str] | None = None) -> bool:
    """The record is of this run: the same command (``kind``), inputs, text and config hash."""
    return (record.kind == kind and record.config_hash == config_hash and record.text == text
            and same_inputs(record, content, images))


def content_tag(content: Path | None, images: list[str] | None = None) -> str:
    return hashlib.sha1(json.dumps(inputs_key(content, images)).encode() if images is not None
                        else str(inputs_key(content)).encode()).hexdigest()[:8]


def candidate_stems(stem: str, content: Path | None, config_hash: str, other_content: bool,
                    images: list[str] | None = None) -> Iterator[str]:
    """The names a run tries in order: a short content-path hash first when the plain name holds
    another content image's result (``x.jpg`` after ``x.png``), else a short config hash first."""
    tag, config = content_tag(content, images), config_hash.rsplit("-", 1)[-1][:8]  # "apply-<hex>": its hex
    yield stem
    yield from ([f"{stem}_{tag}", f"{stem}_{tag}_{config}", f"{stem}_{config}"] if other_content
                else [f"{stem}_{config}", f"{stem}_{tag}", f"{stem}_{tag}_{config}"])


def free_stem(out: str | Path, stem: str, content: Path | None, text: str, config_hash: str,
              overwrite: bool = False, taken: set[str] | None = None, kind: str | None = None,
              images: list[str] | None = None) -> str:
    """The name this run writes under: ``stem`` unless another run's result is there (see the module doc).

    ``taken`` holds the names other jobs of the same plan write under (not on disk yet). A name that a
    running run has reserved is not free either; ``reserve_stem`` is this plus the reservation. ``kind`` and
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
        free = record is None or same_run(record, content, text, config_hash, kind, images)
        if free and holder(out / NAMES_DIR, candidate) is None:
            return candidate
    key = f"{content_tag(content, images)}{text}{config_hash}{kind or ''}"
    return f"{stem}_{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _free_on_disk(out: Path, stem: str, content: Path, text: str, config_hash: str) -> bool:
    record = existing_record(out, stem)
    return record is None or same_run(record, content, text, config_hash)


@dataclass
class ReservedName:
    """A result name this run holds (``OUT/.names/<stem>.lock``) from its start until its result is written.

    ``plain`` is the name asked for, ``stem`` the one held (``plain`` or a hashed variant beside it).
    """

    out: Path
    plain: str
    stem: str
    content: Path
    text: str
    config_hash: str
    overwrite: bool = False
    claim: Claim | None = None
    on_note: Callable[[str], None] | None = None

    @property
    def moved(self) -> bool:
        """True when the plain name holds (or is being written with) another run's result."""
        return self.stem != self.plain

    def confirm(self) -> str:
        """The name to write under now: checked again just before the write (see the module doc)."""
        lost = self.claim is not None and (self.claim.lost or not self.claim.holds())
        replaceable = self.overwrite and self.stem == self.plain
        if not lost and (replaceable or _free_on_disk(self.out, self.stem, self.content, self.text, self.config_hash)):
            return self.stem
        previous = self.stem
        self.release()
        again = reserve_stem(self.out, self.plain, self.content, self.text, self.config_hash, taken={previous})
        self.stem, self.claim = again.stem, again.claim
        message = (f"{self.out / previous}.png was taken by another run while this one ran; "
                   f"writing {self.stem}.png instead")
        log.warning(message)
        if self.on_note:
            self.on_note(message)
        return self.stem

    def release(self) -> None:
        """Give the name up (the result is written, or the run ended without one)."""
        if self.claim is not None:
            self.claim.release()
            self.claim = None
            with contextlib.suppress(OSError):  # other runs' reservations remain: keep the folder
                (self.out / NAMES_DIR).rmdir()

    def __enter__(self) -> "ReservedName":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def reserve_stem(out: str | Path, stem: str, content: Path, text: str, config_hash: str, overwrite: bool = False,
                 taken: set[str] | None = None, first: str | None = None) -> ReservedName:
    """Reserve the name this run writes under: the first of ``free_stem``'s list that holds nothing of
    another run on disk and that no live run holds (see the module doc). Release it when done.

    ``overwrite`` takes the first name whatever is on disk (unless a live run is writing it). ``taken``
    holds names other jobs of the same plan write under; ``first`` is tried before that list (a name
    chosen earlier, such as a batch plan's).
    """
    out = Path(out)
    folder = out / NAMES_DIR
    identity = {"content": str(Path(content).resolve()), "text": text, "config_hash": config_hash}
    base = existing_record(out, stem)
    other_content = base is not None and base.content not in (None, identity["content"])
    fallback = f"{stem}_{hashlib.sha1(f'{content_tag(content)}{text}{config_hash}'.encode()).hexdigest()[:12]}"
    candidates = list(dict.fromkeys([*([first] if first else []), *candidate_stems(stem, content, config_hash,
                                                                                     other_content),
                                     fallback, *(f"{fallback}-{n}" for n in range(2, 10))]))
    for i, candidate in enumerate(candidates):
        if taken and candidate in taken:
            continue
        replaceable = overwrite and i == 0
        if not replaceable and not _free_on_disk(out, candidate, content, text, config_hash):
            continue
        if holder(folder, candidate) is not None:  # a live run is writing under it right now
            continue
        claim = try_claim(folder, candidate, extra={"reserved_for": identity})
        if claim is None:
            continue
        if replaceable or _free_on_disk(out, candidate, content, text, config_hash):  # again: one may have finished
            return ReservedName(out, stem, candidate, Path(content), text, config_hash, overwrite, claim)
        claim.release()
    raise SpectralStyleError(f"no free name for {stem}.png in {out}: other runs hold every name tried")


def is_own_result(path: Path) -> bool:
    """True for images this tool wrote (results, snapshots, comparisons): they are not content."""
    return path.suffix.lower() == ".png" and png_record(path) is not None


def split_own_results(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """(content images, images this tool wrote)."""
    own = [p for p in images if is_own_result(p)]
    return [p for p in images if p not in own], own
