"""Bands: which DCT frequencies of CLIP's token sequence the spectral filter keeps.

A band is written as a preset name (``c1``, ``c2``, ``c3``, ``none``) or as kept index ranges such as
``4-7,16-49``, always on the reference scale of ViT-B/32, whose last block has N = 50 tokens and
therefore 50 DCT frequencies (docs/method.md, section 1). ``Band.parse`` reads a spec once (and caches
it); everything else asks the parsed value: its file-name label, its complement, its mask for another
token count. Pure Python: the command line validates bands without importing torch.

Rule for other token counts (ViT-B/16: 197, ViT-L/14: 257): frequency index ``k`` of an ``N``-token
sequence is kept when reference index ``floor(k * 50 / N)`` is kept, so every cut point keeps its
relative frequency ``k / N`` (c2's cut at 4/50 becomes 16/197 on ViT-B/16).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

REFERENCE_TOKENS = 50
"""Token count of ViT-B/32 at 224 px (1 CLS + 7x7 patches); band specs use this index scale."""

BAND_PRESETS: dict[str, str] = {
    "c1": "4-7,16-49",
    "c2": "4-49",
    "c3": "2-49",
    "none": "0-49",
}
"""Kept reference frequency indices of each preset (docs/method.md, the band table)."""

DEFAULT_BAND = "c2"

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class Band:
    """A parsed band: the spec as given and the kept reference indices (0-49)."""

    spec: str
    kept: frozenset[int]

    @classmethod
    def parse(cls, spec: "str | Band") -> "Band":
        """The band of a preset name or an index list; ValueError with the rules for anything else."""
        if isinstance(spec, Band):
            return spec
        return _parse(spec)

    @classmethod
    def from_kept(cls, kept: "frozenset[int] | set[int] | list[int]") -> "Band":
        """The band keeping exactly these reference indices, written as ranges ('2-49')."""
        return cls.parse(ranges_of(sorted(set(kept))))

    @property
    def label(self) -> str:
        """Filesystem-safe short name: the preset name (also for an index list that keeps the same
        frequencies, so ``0-49`` is ``none``), or e.g. ``4-9_16-49``."""
        for name, preset in BAND_PRESETS.items():
            if _parse(preset).kept == self.kept:
                return name
        return re.sub(r"[^0-9-]+", "_", self.spec.strip()).strip("_")

    @property
    def canonical(self) -> str:
        """One spelling per set of kept frequencies: the preset name, else sorted ranges ('3-10,20-21').

        Why: the config hash, job ids and result names use it, so ``4-7,16-49`` and ``c1`` (or ``0-49``
        and ``none``) are one result with one name, not two.
        """
        for name, preset in BAND_PRESETS.items():
            if _parse(preset).kept == self.kept:
                return name
        return ranges_of(sorted(self.kept))

    @property
    def keeps_everything(self) -> bool:
        """True for plain CLIP (band ``none``): the filter is the identity."""
        return len(self.kept) == REFERENCE_TOKENS

    def complement(self) -> "Band":
        """The band that removes exactly this one: '4-7' -> '0-3,8-49'."""
        rest = set(range(REFERENCE_TOKENS)) - self.kept
        if not rest:
            raise ValueError(f"band {self.spec!r} keeps every frequency: its complement keeps none")
        return Band.from_kept(rest)

    def kept_for(self, num_tokens: int = REFERENCE_TOKENS) -> list[bool]:
        """Kept flags of the ``num_tokens`` frequencies of another token count (the module's mapping rule)."""
        if num_tokens < 2:
            raise ValueError(f"num_tokens must be at least 2, got {num_tokens}")
        return [(k * REFERENCE_TOKENS) // num_tokens in self.kept for k in range(num_tokens)]

    def mask(self, num_tokens: int = REFERENCE_TOKENS) -> "torch.Tensor":
        """Bool tensor [num_tokens] of kept frequencies."""
        import torch

        return torch.tensor(self.kept_for(num_tokens), dtype=torch.bool)

    def __str__(self) -> str:
        return self.spec


@lru_cache(maxsize=256)
def _parse(spec: str) -> Band:
    text = BAND_PRESETS.get(spec.strip().lower(), spec) if isinstance(spec, str) else spec
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty band spec; use one of {', '.join(BAND_PRESETS)} or kept indices like '4-7,16-49'")
    kept: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part)
        if not match:
            raise ValueError(
                f"unknown band {spec!r}: use one of {', '.join(BAND_PRESETS)} or kept frequency "
                f"indices 0-{REFERENCE_TOKENS - 1} like '4-7,16-49'"
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if lo > hi or hi >= REFERENCE_TOKENS:
            raise ValueError(f"band range {part.strip()!r} in {spec!r} is outside 0-{REFERENCE_TOKENS - 1} or reversed")
        kept.update(range(lo, hi + 1))
    if not kept:
        raise ValueError(f"band {spec!r} keeps no frequency")
    name = spec.strip().lower()
    return Band(name if name in BAND_PRESETS else spec.strip(), frozenset(kept))


def ranges_of(indices: list[int]) -> str:
    """Sorted indices -> a band spec: [2, 3, ..., 49] -> '2-49', [3, 5, 6] -> '3,5-6'."""
    if not indices:
        raise ValueError("a band spec must keep at least one frequency")
    parts: list[str] = []
    start = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(f"{start}-{previous}" if previous > start else str(start))
        if index is not None:
            start = previous = index
    return ",".join(parts)


def band_label(spec: str) -> str:
    """``Band.parse(spec).label``; an unparseable spec is only made filesystem-safe."""
    try:
        return Band.parse(spec).label
    except ValueError:
        return re.sub(r"[^0-9-]+", "_", str(spec).strip()).strip("_")


def canonical_band(spec: str) -> str:
    """``Band.parse(spec).canonical``; an unparseable spec is returned stripped (validation reports it)."""
    try:
        return Band.parse(spec).canonical
    except (ValueError, TypeError, AttributeError):
        return spec.strip() if isinstance(spec, str) else spec


def split_band_list(values: list[str]) -> list[Band]:
    """``["c2,none"]`` -> bands c2 and none; index lists stay whole: ``"c2,4-7,16-49"`` -> c2 and 4-7,16-49.

    Why: band specs contain commas themselves, so consecutive non-preset pieces form one spec; ``;``
    separates two index specs (``"4-7;16-49"``). Bands keeping the same frequencies ("4-49" and "c2")
    are one band, listed once under the first spelling.
    """
    specs: list[str] = []
    for value in values:
        for group in value.split(";"):
            custom: list[str] = []
            for piece in (p.strip() for p in group.split(",")):
                if piece.lower() in BAND_PRESETS:
                    if custom:
                        specs.append(",".join(custom))
                        custom = []
                    specs.append(piece.lower())
                elif piece:
                    custom.append(piece)
            if custom:
                specs.append(",".join(custom))
    by_kept: dict[frozenset[int], Band] = {}
    for spec in specs:
        band = Band.parse(spec)
        by_kept.setdefault(band.kept, band)
    return list(by_kept.values())
