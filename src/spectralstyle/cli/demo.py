"""``spectralstyle demo [TEXT]``: ``transfer`` on the photo shipped with the package, from any folder.

Why: a first run should need nothing but the install: no photo of one's own, no path to type. The sample
is scikit-image's ``coffee`` photograph (CC0, see ``spectralstyle/data/SAMPLE_LICENSE.txt``), 512x341.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from spectralstyle.cli.common import JsonFlag, OutOpt, OverwriteFlag, config_option, with_settings
from spectralstyle.cli.transfer import CompareFlag, SaveModelFlag, run_transfer
from spectralstyle.interrupts import stops_at_step_boundary
from spectralstyle.settings import RunControl, TransferConfig

SAMPLE_NAME = "coffee.jpg"


def sample_photo() -> Path:
    """The shipped sample photo's path (a file inside the installed package)."""
    return Path(str(resources.files("spectralstyle") / "data" / SAMPLE_NAME))


@stops_at_step_boundary
@with_settings(TransferConfig, RunControl)
def demo(
    text: Annotated[str, typer.Argument(help="Style text.")] = "pop art",
    config_file: config_option(TransferConfig, RunControl) = None,
    out: OutOpt = Path("outputs"),
    save_model: SaveModelFlag = False,
    compare: CompareFlag = False,
    overwrite: OverwriteFlag = False,
    json_summary: JsonFlag = False,
    *,
    settings: dict[str, Any],
) -> None:
    """Stylise the shipped sample photo (a coffee cup, CC0) with TEXT: `transfer` without a photo of your own.

    A first try in seconds, with no weights: `spectralstyle demo --weights random --steps 5`; a real run:
    `spectralstyle demo "pop art" --config quick`. Every option of `transfer` works here.
    """
    run_transfer(sample_photo(), text, config_file, out, save_model, compare, overwrite, settings=settings,
                 json_summary=json_summary)
