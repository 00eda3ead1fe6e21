"""Random weights of the real architectures (``--weights random``): the same model in every process.

Tests, benchmarks and machines without weight files build CLIP, VGG19 and the VQGAN decoder with
random weights; seeding their construction with one fixed seed, without touching the caller's random
state, makes those models identical across runs, processes and ranks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

RANDOM_INIT_SEED = 0


@contextlib.contextmanager
def repeatable_init(seed: int = RANDOM_INIT_SEED) -> Iterator[None]:
    """Build models inside this block: seeded with ``seed``, the global CPU random state left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
