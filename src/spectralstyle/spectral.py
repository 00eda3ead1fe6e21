"""The SpectralCLIP filter: a fixed projection along the token axis of CLIP's vision sequence.

DCT-II along the tokens, a 0/1 mask over frequencies, inverse DCT. Because the orthonormal DCT is an
orthogonal matrix ``C``, the whole chain is the symmetric projection ``P = C^T diag(mask) C``
(SPEC.md section 1); we build ``P`` once in float64 and apply it as one matrix product.

Band specs are written on the reference scale of ViT-B/32, whose last block has N = 50 tokens and
therefore 50 DCT frequencies. Rule for other token counts (ViT-B/16: 197, ViT-L/14: 257): frequency
index ``k`` of an ``N``-token sequence is kept when reference index ``floor(k * 50 / N)`` is kept, so
every cut point keeps its relative frequency ``k / N`` (c2's cut at 4/50 becomes 16/197 on ViT-B/16).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

REFERENCE_TOKENS = 50
"""Token count of ViT-B/32 at 224 px (1 CLS + 7x7 patches); band specs use this index scale."""

BAND_PRESETS: dict[str, str] = {
    "c1": "4-7,16-49",
    "c2": "4-49",
    "c3": "2-49",
    "none": "0-49",
}
"""Kept reference frequency indices of each preset (SPEC.md section 1 table)."""

DEFAULT_BAND = "c2"

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def _parse_reference_indices(spec: str) -> torch.Tensor:
    """Kept-mask on the 50-index reference scale for a preset name or a spec like ``"4-7,16-49"``."""
    text = BAND_PRESETS.get(spec.strip().lower(), spec) if isinstance(spec, str) else spec
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty band spec; use one of {', '.join(BAND_PRESETS)} or kept indices like '4-7,16-49'")
    keep = torch.zeros(REFERENCE_TOKENS, dtype=torch.bool)
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
            raise ValueError(
                f"band range {part.strip()!r} in {spec!r} is outside 0-{REFERENCE_TOKENS - 1} or reversed"
            )
        keep[lo : hi + 1] = True
    if not keep.any():
        raise ValueError(f"band {spec!r} keeps no frequency")
    return keep


def parse_bands(spec: str, num_tokens: int = REFERENCE_TOKENS) -> torch.Tensor:
    """Bool mask [num_tokens] of kept DCT frequencies for a preset or custom spec.

    Raises ValueError for anything that is not a preset or a list of in-range index ranges.
    """
    if num_tokens < 2:
        raise ValueError(f"num_tokens must be at least 2, got {num_tokens}")
    reference = _parse_reference_indices(spec)
    if num_tokens == REFERENCE_TOKENS:
        return reference
    mapped = torch.div(torch.arange(num_tokens) * REFERENCE_TOKENS, num_tokens, rounding_mode="floor")
    return reference[mapped]


def band_label(spec: str) -> str:
    """Filesystem-safe short name of a band spec: the preset name (also for an index list that keeps the
    same frequencies, so ``0-49`` is ``none``), or e.g. ``4-9_16-49``."""
    key = spec.strip().lower()
    if key in BAND_PRESETS:
        return key
    try:
        kept = _parse_reference_indices(spec)
    except ValueError:
        kept = None
    for name in BAND_PRESETS:
        if kept is not None and torch.equal(kept, _parse_reference_indices(name)):
            return name
    return re.sub(r"[^0-9-]+", "_", spec.strip()).strip("_")


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix C [n, n]: ``C @ x`` transforms x along its first axis."""
    k = torch.arange(n, dtype=dtype).unsqueeze(1)
    i = torch.arange(n, dtype=dtype).unsqueeze(0)
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def projection_matrix(keep: torch.Tensor) -> torch.Tensor:
    """P = C^T diag(keep) C in float64; exactly the identity when every frequency is kept."""
    n = keep.numel()
    if bool(keep.all()):
        return torch.eye(n, dtype=torch.float64)
    c = dct_matrix(n)
    return c.T @ (keep.to(torch.float64).unsqueeze(1) * c)


class SpectralFilter(nn.Module):
    """Removes the masked DCT frequencies of a token sequence [B, N, D] along N."""

    keep: torch.Tensor
    projection: torch.Tensor

    def __init__(self, bands: str = DEFAULT_BAND, num_tokens: int = REFERENCE_TOKENS) -> None:
        super().__init__()
        self.bands = bands
        self.num_tokens = num_tokens
        keep = parse_bands(bands, num_tokens)
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("projection", projection_matrix(keep).to(torch.float32), persistent=False)
        self._identity = bool(keep.all())  # a Python bool: no device sync per call on a GPU

    @property
    def is_identity(self) -> bool:
        return self._identity

    @property
    def cls_weights(self) -> torch.Tensor:
        """Row 0 of P: the filtered CLS token is this weighted sum of all tokens."""
        return self.projection[0]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check(tokens)
        if self.is_identity:
            return tokens
        return torch.matmul(self.projection.to(device=tokens.device, dtype=tokens.dtype), tokens)

    def filtered_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token 0 of ``forward(tokens)`` [B, D], computed without the other N-1 rows."""
        self._check(tokens)
        if self.is_identity:
            return tokens[:, 0]
        return torch.einsum("n,bnd->bd", self.cls_weights.to(device=tokens.device, dtype=tokens.dtype), tokens)

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 3 or tokens.shape[1] != self.num_tokens:
            raise ValueError(
                f"SpectralFilter({self.bands!r}) expects tokens [B, {self.num_tokens}, D], got {list(tokens.shape)}"
            )

    def extra_repr(self) -> str:
        return f"bands={self.bands!r}, num_tokens={self.num_tokens}, kept={int(self.keep.sum())}"
