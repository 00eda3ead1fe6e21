"""CLIP loading (pretrained, local file or random) and the SpectralCLIP image encoder.

The encoder is split into small steps in the style of open_clip's transformer: ``embed`` (patchify,
class token, positions, ln_pre), ``tokens`` (through the last block, before ln_post), ``pool`` (the
spectrally filtered CLS token) and ``project`` (ln_post and the 512-d projection).
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from spectralstyle.errors import SpectralStyleError, shorten
from spectralstyle.method.spectral import DEFAULT_BAND, SpectralFilter
from spectralstyle.seeding import repeatable_init
from spectralstyle.weights.clip_formats import CLIP_ARCHITECTURES, load_clip_weights
from spectralstyle.weights.resolve import fetch_model, local_file
from spectralstyle.weights.sources import clip_key

with warnings.catch_warnings():  # clip-anytorch imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    import clip
    from clip import clip as _clip_impl
    from clip.model import CLIP

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224
CONTEXT_LENGTH = 77
from spectralstyle.settings import WEIGHT_MODES  # noqa: E402  (one list of weight modes)


def _random_clip(name: str) -> CLIP:
    if name not in CLIP_ARCHITECTURES:
        raise SpectralStyleError(f"random weights are available for {', '.join(CLIP_ARCHITECTURES)}, not {name!r}")
    with repeatable_init():
        return CLIP(image_resolution=224, context_length=CONTEXT_LENGTH, vocab_size=49408, **CLIP_ARCHITECTURES[name])


def load_clip(name_or_path: str = "ViT-B/32", device: str | torch.device = "cpu", weights: str = "pretrained") -> CLIP:
    """A frozen CLIP model in eval mode and float32 on ``device``.

    ``weights="pretrained"``: ``name_or_path`` is a local checkpoint file or folder, or a model name
    looked for in every known place (``weights.py``) and downloaded once when none has it.
    ``weights="random"``: the named architecture, randomly (but repeatably)
    initialised, with no file or network access.
    """
    if weights not in WEIGHT_MODES:
        raise SpectralStyleError(f"unknown weights mode {weights!r}; use one of {', '.join(WEIGHT_MODES)}")
    if weights == "random":
        model = _random_clip(name_or_path)
    elif name_or_path in _clip_impl._MODELS:
        model = load_clip_weights(fetch_model(clip_key(name_or_path)))
    elif Path(name_or_path).expanduser().exists() or os.sep in name_or_path or name_or_path.endswith(".pt"):
        model = load_clip_weights(local_file(name_or_path, "CLIP", folder_ok=True))
    else:
        raise SpectralStyleError(
            f"unknown CLIP model {name_or_path!r}; use a checkpoint path or one of {', '.join(clip.available_models())}"
        )
    model.requires_grad_(False)
    return model.eval().float().to(device)


def clip_input(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> bicubic 224x224 (unless already 224) and CLIP mean/std normalisation."""
    if tuple(image.shape[-2:]) != (CLIP_SIZE, CLIP_SIZE):
        image = torch.nn.functional.interpolate(image, size=CLIP_SIZE, mode="bicubic", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image - mean) / std


@lru_cache(maxsize=1)
def imagenet_templates() -> tuple[str, ...]:
    """The 79 prompt templates of CLIPstyler ("a bad photo of a {}.", ...)."""
    text = resources.files("spectralstyle").joinpath("data/imagenet_templates.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def tokenize_templated(text: str, what: str = "the style text") -> torch.Tensor:
    """CLIP tokens of ``text`` in every template; a clear error (naming ``what``) when empty or too long."""
    if not text or not text.strip():
        raise SpectralStyleError(f"{what} is empty")
    prompts = [t.format(text.strip()) for t in imagenet_templates()]
    longest = max(prompts, key=lambda p: len(_clip_impl._tokenizer.encode(p)))
    n_tokens = len(_clip_impl._tokenizer.encode(longest)) + 2  # start and end tokens
    if n_tokens > CONTEXT_LENGTH:
        raise SpectralStyleError(
            f"{what} {shorten(repr(text))} is too long for CLIP: {n_tokens} tokens with the longest template, the "
            f"limit is {CONTEXT_LENGTH}"
        )
    return clip.tokenize(prompts)


def encode_text(model: CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)``, computed only up to the longest end-of-text token.

    CLIP's text transformer is causal and reads the embedding at the end-of-text token, so the padding
    after it never influences the result; prompts of ~10 tokens then cost ~1/7 of the 77-token pass.
    """
    eot = tokens.argmax(dim=-1)  # the end-of-text token has the largest id
    length = int(eot.max()) + 1
    x = model.token_embedding(tokens[:, :length]).type(model.dtype)
    x = (x + model.positional_embedding[:length].type(model.dtype)).permute(1, 0, 2)
    for block in model.transformer.resblocks:
        mask = block.attn_mask[:length, :length].to(dtype=x.dtype, device=x.device)
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2)).type(model.dtype)
    return x[torch.arange(x.shape[0], device=x.device), eot] @ model.text_projection


@torch.no_grad()
def encode_templated_text(model: CLIP, text: str) -> torch.Tensor:
    """Mean of the text embeddings over all templates, L2-normalised [1, D] (CLIPstyler's recipe)."""
    device = next(model.parameters()).device
    features = encode_text(model, tokenize_templated(text).to(device)).float().mean(dim=0, keepdim=True)
    return features / features.norm(dim=-1, keepdim=True)


class _PatchConv(torch.autograd.Function):
    """CLIP's patch convolution (stride = kernel, no padding or bias) with a fast input gradient.

    The forward is ``conv2d`` itself. With frozen weights only the input gradient is needed, and for
    non-overlapping patches it is one matrix product and a reshape; on CPU oneDNN's transposed
    convolution for a 32x32 stride-32 kernel is about 4x slower than that.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(weight)
        ctx.input_shape, ctx.input_dtype = x.shape, x.dtype
        return torch.nn.functional.conv2d(x, weight, stride=weight.shape[-1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        b, c, h, w = ctx.input_shape
        p = weight.shape[-1]
        gh, gw = grad.shape[-2:]
        # under autocast the forward ran in bf16/fp16, so ``grad`` may be in a lower precision than ``weight``
        patches = grad.flatten(2).transpose(1, 2) @ weight.reshape(weight.shape[0], -1).to(grad.dtype)
        grad_x = patches.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * p, gw * p)
        if (gh * p, gw * p) != (h, w):  # pixels beyond the last whole patch get no gradient
            grad_x = torch.nn.functional.pad(grad_x, (0, w - gw * p, 0, h - gh * p))
        return grad_x.to(ctx.input_dtype), None


def patch_embed(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``; when its weights are frozen and it tiles the image, with the fast input gradient."""
    plain = (conv.weight.requires_grad or conv.bias is not None or conv.padding != (0, 0)
             or conv.stride != conv.kernel_size or conv.dilation != (1, 1) or conv.groups != 1)
    return conv(x) if plain else _PatchConv.apply(x, conv.weight)


class SpectralCLIP(nn.Module):
    """CLIP's image encoder with the spectral filter applied to the last block's token sequence."""

    def __init__(self, clip_model: CLIP, bands: str = DEFAULT_BAND) -> None:
        super().__init__()
        self.clip = clip_model
        self.visual = clip_model.visual
        grid = self.visual.input_resolution // self.visual.conv1.kernel_size[0]
        self.num_tokens = grid * grid + 1
        self.filter = SpectralFilter(bands, self.num_tokens).to(self.visual.conv1.weight.device)

    @property
    def bands(self) -> str:
        return self.filter.bands

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embedding, class token, positions and ln_pre: [B, 3, H, W] -> [B, N, D]."""
        v = self.visual
        x = patch_embed(v.conv1, x.to(self.dtype)).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Token sequence after the last transformer block, before ln_post: [B, N, D]."""
        h = self.embed(x).permute(1, 0, 2)  # CLIP's transformer is sequence-first
        return self.visual.transformer(h).permute(1, 0, 2)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The filtered CLS token [B, D]: one precomputed weighted sum over the tokens."""
        return self.filter.filtered_cls(tokens)

    def project(self, cls: torch.Tensor) -> torch.Tensor:
        """ln_post and the output projection: [B, D] -> [B, E]."""
        x = self.visual.ln_post(cls)
        return x @ self.visual.proj if self.visual.proj is not None else x

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP-normalised images [B, 3, 224, 224] -> filtered, projected embeddings [B, E]."""
        return self.project(self.pool(self.tokens(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_image(x)


def encode_source(encoder: SpectralCLIP, pixels: torch.Tensor, source_encoder: str = "plain") -> torch.Tensor:
    """The embedding of the content (source) image that style directions start from.

    ``"plain"``: unfiltered CLIP, as the authors' code does, although it mixes the filtered and the
    unfiltered embedding spaces (docs/method.md, section 2); ``"filtered"``: the SpectralCLIP encoder
    itself. This is the one place where that rule is written.
    """
    if source_encoder == "filtered":
        return encoder.encode_image(pixels)
    if source_encoder != "plain":
        raise ValueError(f"unknown source encoder {source_encoder!r}")
    return encoder.clip.encode_image(pixels)

