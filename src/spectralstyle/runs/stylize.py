"""What one ``transfer`` command does after its checks: the runs of ``--compare``, their free names, the
comparison picture. The command only parses, prints and maps errors; this is the work.

``--compare`` runs plain CLIP (band ``none``) first, then the chosen band, with the same seed, and
writes both side by side. Each run's name is its plain name unless another run's result is there or
another run is writing it right now; it is reserved (``naming.reserve_stem``) before any model loads and
held until the result is written (a note says where it writes instead when it moves).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from spectralstyle.runs.naming import ReservedName
from spectralstyle.settings import BandedSettings, RunControl, TransferConfig

C = TypeVar("C", bound=BandedSettings)
NoteFn = Callable[[str], None]


def compared_configs(config: C, compare: bool, on_note: NoteFn | None = None) -> list[C]:
    """The runs of ``--compare``: plain CLIP (band none) first, then the chosen band, with the same seed;
    a note and one run when the band already is none."""
    if not compare:
        return [config]
    if config.band_value.keeps_everything:
        if on_note:
            on_note("--compare compares a band with none; the band is none, so there is nothing to compare")
        return [config]
    return [config.replace(band="none"), config]


def result_stem(content: Path, text: str, config: TransferConfig, out: Path, overwrite: bool,
                on_note: NoteFn | None = None) -> ReservedName:
    """The result's reserved name (``naming.reserve_stem``; release it, or use it as a context manager, once
    the result is written): the plain one unless another run's result is there or another run is writing it
    right now (then a note). ``config`` is the resolved one (``for_content``): its hash identifies the run."""
    from spectralstyle.runs.naming import existing_record, reserve_stem
    from spectralstyle.runs.transfer import output_stem

    plain = output_stem(content, text, config.band)
    name = reserve_stem(out, plain, content, text, config.digest(), overwrite)
    if name.moved and on_note:
        what = ("holds the result of other settings or another image" if existing_record(out, plain) is not None
                else "is being written by another run of other settings or another image")
        on_note(f"{out / plain}.png {what}; writing {name.stem}.png beside it (--overwrite replaces a finished one)")
    return name


def write_transfer_comparison(results: list[Any], out: Path) -> Any:
    """Side-by-side image of transfers that differ only in band."""
    from spectralstyle.media.images import slugify
    from spectralstyle.runs.outputs import write_comparison

    first = results[0].record
    return write_comparison(results, out, f"{Path(first['content']).stem}_{slugify(first['text'])}")


def run_transfers(content: Path, text: str, configs: list[TransferConfig], models: Any, out: Path, *,
                  names: list[ReservedName | str], save_model: bool = False, control: RunControl | None = None,
                  on_start: Callable[[TransferConfig], Callable[[int, dict[str, float]], None] | None] | None = None,
                  on_note: NoteFn | None = None) -> list[Any]:
    """Run each config (one, or the two of ``--compare``) and, for two, the comparison picture.

    ``names`` holds each run's reserved name (``result_stem``, held by the caller until this returns) or a
    plain stem. ``on_start(config)`` returns that run's step callback. Returns the JobOutputs (the comparison last);
    an interrupted run ends the list (its output has ``interrupted`` set) and nothing after it runs.
    """
    from spectralstyle.runs.transfer import run_job

    results = []
    for config, name in zip(configs, names):
        on_step = on_start(config) if on_start else None
        reserved = name if isinstance(name, ReservedName) else None
        if reserved is not None:
            reserved.on_note = on_note  # the name moves at the write if another writer took it meanwhile
        result = run_job(content, text, config, models, out, on_step=on_step, save_model=save_model,
                         control=control, on_note=on_note, stem=None if reserved else name, name=reserved)
        results.append(result)
        if result.interrupted:
            return results
    if len(results) == 2:
        results.append(write_transfer_comparison(results, out))
    return results
