"""spectralstyle: text-guided style transfer with SpectralCLIP.

The Python API (imported on first use, so ``import spectralstyle`` loads no torch):

- ``stylize(content, text, **settings) -> Result`` (``.image``, ``.record``, ``.model``, ``.save(path)``)
- ``StyleModel.load(path).apply(image)``: a trained style on any picture
- ``SpectralCLIP``, ``load_clip``: CLIP with the spectral filter, as the tool uses it
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "stylize": "spectralstyle.api",
    "Result": "spectralstyle.api",
    "StyleModel": "spectralstyle.api",
    "SpectralCLIP": "spectralstyle.method.clip_model",
    "load_clip": "spectralstyle.method.clip_model",
    "TransferConfig": "spectralstyle.settings",
    "SpectralStyleError": "spectralstyle.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import an API name's module the first time the name is used."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spectralstyle' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
