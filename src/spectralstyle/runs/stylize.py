"""What one ``transfer`` command does after its checks: the runs of ``--compare``, their free names, the
comparison picture. The command only parses, prints and maps errors; this is the work.

``--compare`` runs plain CLIP (band ``none``) first, then the chosen band, with the same seed, and
writes both side by side. Each run's name is its plain name unless another run's result is there
(``naming.free_stem``; a note then says where it writes instead).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
                on_note: NoteFn | None = None) -> str:
    """The result's name: the plain one unless another run's result is there (then a note; see naming.py)."""
    from spectralstyle.runs.naming import free_stem
    from spectralstyle.runs.transfer import output_stem

    plain = output_stem(content, text, config.band)
    stem = free_stem(out, plain, content, text, config.digest(), overwrite)
    if stem != plain and on_note:
        on_note(f"{out / plain}.png holds the result of other settings or another image; writing {stem}.png beside "
                "it (--overwrite replaces it)")
    return stem


def write_transfer_comparison(results: list[Any], out: Path) -> Any:
    """Side-by-side image of transfers that differ only in band."""
    from spectralstyle.media.images import slugify
    from spectralstyle.runs.outputs import write_comparison

    first = results[0].record
    return write_comparison(results, out, f"{Path(first['content']).stem}_{slugify(first['text'])}")


def run_transfers(content: Path, text: str, configs: list[TransferConfig], models: Any, out: Path, *,
                  stems: list[str], save_model: bool = False, control: RunControl | None = None,
                  on_start: Callable[[TransferConfig], Callable[[int, dict[str, float]], None] | None] | None = None,
                  on_note: NoteFn | None = None) -> list[Any]:
    """Run each config (one, or the two of ``--compare``) and, for two, the comparison picture.

    ``on_start(config)`` returns that run's step callback. Returns the JobOutputs (the comparison last);
    an interrupted run ends the list (its output has ``interrupted`` set) and nothing after it runs.
    """
    from spectralstyle.runs.transfer import run_job

    results = []
    for config, stem in zip(configs, stems):
        on_step = on_start(config) if on_start else None
        result = run_job(content, text, config, models, out, on_step=on_step, save_model=save_model,
                         control=control, on_note=on_note, stem=stem)
        results.append(result)
        if result.interrupted:
            return results
    if len(results) == 2:
        results.append(write_transfer_comparison(results, out))
    return results
