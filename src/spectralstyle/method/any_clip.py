"""SpectralCLIP as a drop-in for any CLIP: ``spectral_clip(model, band="c2")``.

Wraps a CLIP model of the ``clip`` package, of open_clip (ViT towers) or of transformers (``CLIPModel``)
and returns a module whose image encoding filters the last block's token sequence and pools the filtered
CLS token before the final LayerNorm and projection, as :class:`~spectralstyle.method.clip_model.SpectralCLIP`
does (docs/method.md, section 1; both pool with :meth:`SpectralFilter.filtered_cls`). Everything else
(text encoding, logit scale, config, tokenizer-facing attributes) passes through to the wrapped model, and
the model's own ``forward`` runs with the filtered image encoder, so ``wrapped(image, text)`` gives
filtered logits.

How: the wrapper and its image tower are thin views. Attribute lookups that they do not answer go to the
wrapped object, and the library's own methods (``encode_image``, ``forward``, ``get_image_features``) run
with the wrapper as ``self``, so they meet the filtered tower where they read ``self.visual`` or
``self.vision_model``. The wrapped model is not modified and stays usable on its own; its parameters are
the wrapper's (``wrapper.model``), so ``.to()``, ``.eval()`` and ``requires_grad_`` work as usual.

Token counts: the filter is built per sequence length N with the band rule of ``bands.py`` (ViT-B/32: 50,
ViT-B/16: 197, ViT-L/14: 257), so a tower that interpolates its positions to another size still works.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from spectralstyle.bands import DEFAULT_BAND, Band
from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.spectral import SpectralFilter

__all__ = ["SpectralCLIPWrapper", "UnsupportedCLIPError", "spectral_clip"]


class UnsupportedCLIPError(SpectralStyleError, TypeError):
    """The model is not a CLIP whose image tower ends in a ViT token sequence pooled at its CLS token."""


class _PassThrough(nn.Module):
    """A module that answers unknown attributes from ``self.model`` (registered as a submodule)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            wrapped = self.__dict__.get("_modules", {}).get("model")  # absent while unpickling or constructing
            if wrapped is None or name == "model":
                raise
        return getattr(wrapped, name)


class _CLSPool:
    """Filtered CLS token [B, D] of a token sequence [B, N, D]; one SpectralFilter per N (band rule)."""

    def __init__(self, band: Band) -> None:
        self.band = band
        self._filters: dict[int, SpectralFilter] = {}
        self._weights: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def filter_for(self, num_tokens: int) -> SpectralFilter:
        if num_tokens not in self._filters:
            self._filters[num_tokens] = SpectralFilter(self.band, num_tokens)
        return self._filters[num_tokens]

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"expected a token sequence [B, N, D], got {list(tokens.shape)}")
        spectral = self.filter_for(tokens.shape[1])
        if spectral.is_identity:
            return tokens[:, 0]
        key = (tokens.shape[1], tokens.device, tokens.dtype)
        if key not in self._weights:  # row 0 of the projection, copied once per device and dtype
            self._weights[key] = spectral.cls_weights.to(device=tokens.device, dtype=tokens.dtype)
        return torch.einsum("n,bnd->bd", self._weights[key], tokens)


class _OpenAITower(_PassThrough):
    """``clip`` package VisionTransformer with the filtered CLS: the exact steps of SpectralCLIP."""

    def __init__(self, tower: nn.Module, pool: _CLSPool) -> None:
        super().__init__()
        from spectralstyle.method.clip_model import patch_embed  # imports the clip package, which is in use here

        self.model = tower
        self.pool = pool
        self._patch_embed = patch_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.model
        x = self._patch_embed(v.conv1, x).flatten(2).transpose(1, 2)  # [B, N-1, D]
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = v.ln_pre(torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype))
        tokens = v.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # the transformer is sequence-first
        pooled = v.ln_post(self.pool(tokens))
        return pooled @ v.proj if v.proj is not None else pooled


class _OpenCLIPTower(_PassThrough):
    """open_clip VisionTransformer (CLS pooling) with the filtered CLS; ``output_tokens`` gives the
    filtered patch tokens after ln_post as the second output, as open_clip's own tower would."""

    def __init__(self, tower: nn.Module, pool: _CLSPool) -> None:
        super().__init__()
        self.model = tower
        self.pool = pool

    def forward(self, x: torch.Tensor) -> Any:
        v = self.model
        x = v._embeds(x)  # patches, class token, positions, patch dropout, ln_pre: [B, N, D]
        if getattr(v.transformer, "batch_first", True):
            tokens = v.transformer(x)
        else:
            tokens = v.transformer(x.transpose(0, 1)).transpose(0, 1)
        pooled = v.ln_post(self.pool(tokens))  # LayerNorm is per token: before or after pooling is the same
        if v.proj is not None:
            pooled = pooled @ v.proj
        if v.output_tokens:
            spectral = self.pool.filter_for(tokens.shape[1])
            return pooled, v.ln_post(spectral(tokens))[:, 1:]
        return pooled


class _TransformersTower(_PassThrough):
    """transformers CLIPVisionModel whose ``pooler_output`` is post_layernorm of the filtered CLS.

    The tower runs as it is (every keyword, hidden states, attentions); ``last_hidden_state`` stays its
    own unfiltered sequence, only the pooled output changes.
    """

    def __init__(self, tower: nn.Module, pool: _CLSPool) -> None:
        super().__init__()
        self.model = tower
        self.pool = pool

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["return_dict"] = True
        out = self.model(*args, **kwargs)
        out.pooler_output = self.model.post_layernorm(self.pool(out.last_hidden_state))
        return out


class SpectralCLIPWrapper(_PassThrough):
    """A CLIP model whose image encoding is SpectralCLIP's; see :func:`spectral_clip`."""

    def __init__(self, model: nn.Module, band: str | Band = DEFAULT_BAND) -> None:
        super().__init__()
        self.model = model
        self.band = Band.parse(band)
        self.library, tower_attr, tower_class = _identify(model)
        pool = _CLSPool(self.band)
        # not registered as a submodule: the tower's parameters are already the wrapped model's
        self.__dict__[tower_attr] = tower_class(getattr(model, tower_attr), pool)
        self._pool = pool

    @property
    def bands(self) -> str:
        return self.band.spec

    def filter_for(self, num_tokens: int) -> SpectralFilter:
        """The SpectralFilter used for sequences of ``num_tokens`` tokens (197 on ViT-B/16)."""
        return self._pool.filter_for(num_tokens)

    def encode_image(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Filtered image embeddings [B, E] (the library's own ``encode_image`` with the filtered tower;
        for transformers ``get_image_features(...).pooler_output``)."""
        if self.library == "transformers":
            out = self.get_image_features(*args, **kwargs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        return type(self.model).encode_image(self, *args, **kwargs)

    def get_image_features(self, *args: Any, **kwargs: Any) -> Any:
        if self.library != "transformers":
            raise AttributeError(f"a {self.library} CLIP has no get_image_features; use encode_image")
        return type(self.model).get_image_features(self, *args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's own forward (image and text), with the filtered image encoding."""
        return type(self.model).forward(self, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"library={self.library!r}, band={self.band.spec!r}"


def spectral_clip(model: nn.Module, band: str | Band = DEFAULT_BAND) -> SpectralCLIPWrapper:
    """``model`` with SpectralCLIP's filtered image encoder; text encoding and all else unchanged.

    ``model``: ``clip.load(...)[0]``, ``open_clip.create_model(...)`` with a ViT tower, or a transformers
    ``CLIPModel``. ``band``: ``c1``, ``c2``, ``c3``, ``none`` or kept reference indices like ``4-7,16-49``.
    Raises :class:`UnsupportedCLIPError` for ResNet CLIPs, attention- or mean-pooled towers and other models.
    """
    return SpectralCLIPWrapper(model, band)


def _class_in(obj: Any, module: str, name: str) -> bool:
    """isinstance against ``module.name`` only when that library is already imported (never import it)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls is not None and isinstance(obj, cls)


def _unsupported(model: nn.Module, why: str) -> UnsupportedCLIPError:
    return UnsupportedCLIPError(
        f"spectral_clip cannot filter {type(model).__name__}: {why}; it needs a ViT image tower that pools its "
        "CLS token (clip package ViT models, open_clip ViT models, transformers CLIPModel)"
    )


def _identify(model: nn.Module) -> tuple[str, str, type]:
    """(library, name of the image tower attribute, filtered tower class) or UnsupportedCLIPError."""
    if isinstance(model, SpectralCLIPWrapper):
        raise _unsupported(model, "it is already wrapped (use .model to get the original)")
    if _class_in(model, "transformers", "CLIPModel"):
        return "transformers", "vision_model", _TransformersTower
    visual = getattr(model, "visual", None)
    if visual is None:
        raise _unsupported(model, "it is not a CLIP model of the clip package, open_clip or transformers")
    kind = type(visual).__name__
    if _class_in(model, "clip.model", "CLIP"):
        if not _class_in(visual, "clip.model", "VisionTransformer"):
            raise _unsupported(model, f"its image tower is a {kind} (a ResNet CLIP), which has no token sequence")
        return "clip", "visual", _OpenAITower
    if _class_in(visual, "open_clip.transformer", "VisionTransformer"):
        if visual.attn_pool is not None:
            raise _unsupported(model, "its image tower pools with attention (attn_pool), not at the CLS token")
        if visual.pool_type != "tok":
            raise _unsupported(model, f"its image tower pools by {visual.pool_type!r}, not at the CLS token")
        return "open_clip", "visual", _OpenCLIPTower
    if _class_in(visual, "open_clip.modified_resnet", "ModifiedResNet"):
        raise _unsupported(model, f"its image tower is a {kind} (a ResNet CLIP), which has no token sequence")
    raise _unsupported(model, f"its image tower is a {kind}")
