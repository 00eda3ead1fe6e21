"""Commands the tests start build narrow random CLIPs too (``narrow_models.py``), as in-process runs do.

conftest puts this folder on the PYTHONPATH the test processes inherit; ``full_clip_env()`` takes it off for
the runs that are about ViT-B/32 itself. Python imports ``sitecustomize`` at start-up: this one only adds an
import hook (no torch), which swaps ``clip_model._random_clip`` once that module has been executed.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

_TARGET = "spectralstyle.method.clip_model"
_HELPER = Path(__file__).resolve().parents[1] / "narrow_models.py"


def _narrow(module) -> None:
    spec = importlib.util.spec_from_file_location("narrow_models", _HELPER)
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    module._random_clip = helper.narrowing(module._random_clip)


class _NarrowRandomClip:
    """A meta-path finder that finds only ``_TARGET`` (through the normal path finder) and narrows it."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_narrow(module):
            exec_module(module)
            _narrow(module)

        spec.loader.exec_module = exec_and_narrow
        return spec


sys.meta_path.insert(0, _NarrowRandomClip())
