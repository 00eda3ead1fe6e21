"""CLIP at a tenth of the width, for the tests whose claims do not depend on the network's size.

The real CLIP classes with each architecture's patch size at 224 px (the same 50 tokens for ViT-B/32, so the
same spectral filter), 2 layers a tower, widths 128 (vision) and 64 (text): a transfer step costs a few
milliseconds instead of a second of ViT-B/32 on one core. In-process tests get it from conftest, the commands
they start from ``narrow_site/sitecustomize.py``; ``@pytest.mark.full_clip`` / ``full_clip_env()`` keep
ViT-B/32 where the claim is about it.
"""

from __future__ import annotations

import os
from pathlib import Path

NARROW_SITE = Path(__file__).resolve().parent / "narrow_site"
NARROW = dict(embed_dim=64, vision_layers=2, vision_width=128, transformer_width=64, transformer_heads=1,
              transformer_layers=2)


def narrow_random_clip(name: str):
    """What ``clip_model._random_clip(name)`` builds, narrowed (``name`` must be a known architecture)."""
    from clip.model import CLIP

    from spectralstyle.method.clip_model import CLIP_SIZE, CONTEXT_LENGTH
    from spectralstyle.seeding import repeatable_init
    from spectralstyle.weights.clip_formats import CLIP_ARCHITECTURES

    with repeatable_init():
        return CLIP(image_resolution=CLIP_SIZE, context_length=CONTEXT_LENGTH, vocab_size=49408,
                    **{**CLIP_ARCHITECTURES[name], **NARROW})


def narrowing(random_clip):
    """``random_clip`` (the module's builder) for unknown names, so its error message stays; narrow otherwise."""
    from spectralstyle.weights.clip_formats import CLIP_ARCHITECTURES

    def narrow_or_full(name: str):
        return narrow_random_clip(name) if name in CLIP_ARCHITECTURES else random_clip(name)

    narrow_or_full.__wrapped__ = random_clip  # inspect.unwrap() gives the full builder back
    return narrow_or_full


def narrow_subprocesses() -> None:
    """Commands started from now on (they inherit ``os.environ``) build narrow random CLIPs."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NARROW_SITE), os.environ.get("PYTHONPATH")]))


def full_clip_env(**extra: str) -> dict[str, str]:
    """``os.environ`` plus ``extra`` for a command that builds the full architectures."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p) != NARROW_SITE]
    env = {**os.environ, **extra}
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env
