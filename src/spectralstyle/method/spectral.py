"""The SpectralCLIP filter: a fixed projection along the token axis of CLIP's vision sequence.

DCT-II along the tokens, a 0/1 mask over frequencies, inverse DCT. Because the orthonormal DCT is an
orthogonal matrix ``C``, the whole chain is the symmetric projection ``P = C^T diag(mask) C``
(docs/method.md, section 1); we build ``P`` once in float64 and apply it as one matrix product.
Which frequencies are kept is a :class:`~spectralstyle.bands.Band` (presets, index lists, the rule
for token counts other than ViT-B/32's 50).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spectralstyle.bands import BAND_PRESETS, DEFAULT_BAND, REFERENCE_TOKENS, Band, band_label

__all__ = ["BAND_PRESETS", "DEFAULT_BAND", "REFERENCE_TOKENS", "Band", "SpectralFilter", "band_label",
           "dct_matrix", "parse_bands", "projection_matrix"]


def parse_bands(spec: str | Band, num_tokens: int = REFERENCE_TOKENS) -> torch.Tensor:
    """Bool mask [num_tokens] of kept DCT frequencies for a preset or custom spec.

    Raises ValueError for anything that is not a preset or a list of in-range index ranges.
    """
    return Band.parse(spec).mask(num_tokens)


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

    def __init__(self, bands: str | Band = DEFAULT_BAND, num_tokens: int = REFERENCE_TOKENS) -> None:
        super().__init__()
        self.band = Band.parse(bands)
        self.bands = self.band.spec
        self.num_tokens = num_tokens
        keep = self.band.mask(num_tokens)
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
