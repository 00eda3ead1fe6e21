"""The VQGAN generator: a frozen VQGAN decoder (taming-transformers, Esser et al. 2021) whose latent ``z``
is optimised through straight-through vector quantisation, as in VQGAN+CLIP.

The decoder's modules carry taming's names, so the ``decoder.*``, ``quantize.*`` and ``post_quant_conv.*``
entries of a real checkpoint load with strict key matching (``weights.state_dicts``); the encoder is
never built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.generators import Generator
from spectralstyle.seeding import repeatable_init
from spectralstyle.settings import read_yaml_mapping
from spectralstyle.weights.resolve import fetch_model, local_file
from spectralstyle.weights.state_dicts import load_strictly, read_vqgan_state

VQGAN_DEFAULT_NAME = "vqgan_imagenet_f16_16384"
VQGAN_FILES = {VQGAN_DEFAULT_NAME: "vqgan-f16-16384"}  # names --vqgan-checkpoint accepts -> weights.py keys


# --- VQGAN decoder with taming-transformers' module names ------------------------------------------


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def Normalize(channels: int) -> nn.GroupNorm:  # noqa: N802 - taming's name
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResnetBlock(nn.Module):
    """GroupNorm-swish-conv twice with a 1x1 shortcut when the width changes (no time embedding)."""

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the spatial positions, with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = Normalize(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, height, width = x.shape
        q = self.q(h).reshape(b, c, -1).transpose(1, 2)  # b, hw, c
        k = self.k(h).reshape(b, c, -1)  # b, c, hw
        v = self.v(h).reshape(b, c, -1)
        weights = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)  # b, hw(q), hw(k)
        out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, height, width)
        return x + self.proj_out(out)


@dataclass(frozen=True)
class VQGANConfig:
    """Decoder and codebook hyper-parameters (taming's ``ddconfig`` plus embed_dim and n_embed)."""

    embed_dim: int = 256
    n_embed: int = 16384
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    z_channels: int = 256
    resolution: int = 256
    out_ch: int = 3
    dropout: float = 0.0

    @property
    def factor(self) -> int:
        """Output pixels per latent position along each side (16 for f16 models)."""
        return 2 ** (len(self.ch_mult) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "VQGAN config") -> "VQGANConfig":
        """From taming's model YAML (model.params.{embed_dim, n_embed, ddconfig}) or a flat mapping."""
        params = data.get("model", {}).get("params", data) if isinstance(data.get("model"), dict) else data
        flat = {**params.get("ddconfig", {}), **{k: v for k, v in params.items() if k != "ddconfig"}}
        names = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in flat.items() if k in names}
        try:
            return cls(**values)
        except TypeError as exc:
            raise SpectralStyleError(f"{source} is not a VQGAN configuration ({exc})") from None


class Decoder(nn.Module):
    """taming-transformers' VQGAN decoder: conv_in, mid (res-attn-res), up levels, norm_out, conv_out."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.num_resolutions = len(cfg.ch_mult)
        self.num_res_blocks = cfg.num_res_blocks
        block_in = cfg.ch * cfg.ch_mult[-1]
        curr_res = cfg.resolution // cfg.factor
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, kernel_size=3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, cfg.dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in, cfg.dropout)
        self.up = nn.ModuleList()
        for level in reversed(range(self.num_resolutions)):
            up = nn.Module()
            up.block, up.attn = nn.ModuleList(), nn.ModuleList()
            block_out = cfg.ch * cfg.ch_mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                up.block.append(ResnetBlock(block_in, block_out, cfg.dropout))
                block_in = block_out
                if curr_res in cfg.attn_resolutions:
                    up.attn.append(AttnBlock(block_in))
            if level != 0:
                up.upsample = Upsample(block_in)
                curr_res *= 2
            self.up.insert(0, up)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(range(self.num_resolutions)):
            up = self.up[level]
            for i, block in enumerate(up.block):
                h = block(h)
                if len(up.attn) > 0:
                    h = up.attn[i](h)
            if level != 0:
                h = up.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class Codebook(nn.Module):
    """taming's ``quantize`` module as far as decoding needs it: the code vectors."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)  # taming's init


class VQGANDecoderModel(nn.Module):
    """The decoding half of a taming VQModel; its state-dict keys equal the checkpoint's."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.decoder = Decoder(cfg)
        self.quantize = Codebook(cfg.n_embed, cfg.embed_dim)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, kernel_size=1)

    @property
    def codebook(self) -> torch.Tensor:
        return self.quantize.embedding.weight

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latent [B, embed_dim, h, w] -> image [B, 3, 16h, 16w] in about [-1, 1]."""
        return self.decoder(self.post_quant_conv(z_q))


def vector_quantize(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Nearest code per position, with a straight-through gradient: z + (quantize(z) - z).detach()."""
    flat = z.movedim(1, -1)
    d = flat.pow(2).sum(-1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.T
    quantized = codebook[d.argmin(-1)]
    return (flat + (quantized - flat).detach()).movedim(-1, 1)


class _ClampWithGrad(torch.autograd.Function):
    """Clamp whose gradient still flows where it would move the value back into range (VQGAN+CLIP)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        inward = grad * (x - x.clamp(ctx.lo, ctx.hi)) >= 0
        return grad * inward, None, None


class VQGANGenerator(Generator):
    """Learnable latent z [1, embed_dim, H/16, W/16], started from random codebook entries."""

    def __init__(self, model: VQGANDecoderModel, width: int, height: int) -> None:
        super().__init__()
        f = model.cfg.factor
        if width % f or height % f:
            raise SpectralStyleError(f"size {width}x{height}: the VQGAN generator needs multiples of {f}")
        self.model = model.requires_grad_(False).eval()
        codebook = model.codebook.detach()
        codes = torch.randint(codebook.shape[0], ((height // f) * (width // f),), device=codebook.device)
        z = codebook[codes].view(height // f, width // f, -1).permute(2, 0, 1).unsqueeze(0)
        self.z = nn.Parameter(z.clone())
        self.register_buffer("z_min", codebook.min(0).values.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("z_max", codebook.max(0).values.view(1, -1, 1, 1), persistent=False)

    def forward(self) -> torch.Tensor:
        image = self.model.decode(vector_quantize(self.z, self.model.codebook))
        return _ClampWithGrad.apply(image.add(1).div(2), 0.0, 1.0)

    @torch.no_grad()
    def after_step(self) -> None:
        self.z.copy_(torch.maximum(torch.minimum(self.z, self.z_max), self.z_min))


# --- loading VQGAN weights --------------------------------------------------------------------------


def random_vqgan(cfg: VQGANConfig | None = None) -> VQGANDecoderModel:
    """The real architecture, randomly but repeatably initialised (global RNG untouched)."""
    with repeatable_init():
        return VQGANDecoderModel(cfg or VQGANConfig())


def config_beside(checkpoint: Path) -> VQGANConfig:
    """The config in ``<checkpoint>.yaml`` or ``model.yaml`` beside the checkpoint, else the f16_16384 defaults."""
    for candidate in (checkpoint.with_suffix(".yaml"), checkpoint.parent / "model.yaml"):
        if candidate.is_file():
            return VQGANConfig.from_mapping(read_yaml_mapping(candidate, "VQGAN config"), str(candidate))
    return VQGANConfig()


def vqgan_from_state(state: dict[str, torch.Tensor], path: Path, cfg: VQGANConfig | None = None) -> VQGANDecoderModel:
    """The decoder model of ``cfg`` (default: the config beside ``path``) with ``state`` loaded strictly."""
    cfg = cfg or config_beside(path)
    hint = f"; put the model's YAML config beside it as {path.with_suffix('.yaml').name} or model.yaml"
    return load_strictly(VQGANDecoderModel(cfg), state, path, "the VQGAN decoder configuration",
                         hint)  # type: ignore[return-value]


def load_vqgan_checkpoint(path: Path, cfg: VQGANConfig | None = None) -> VQGANDecoderModel:
    """Decoder, codebook and post_quant_conv of a taming checkpoint, keys matched strictly."""
    return vqgan_from_state(read_vqgan_state(path), path, cfg)


def load_vqgan(checkpoint: str | None, weights: str = "pretrained",
               device: str | torch.device = "cpu") -> VQGANDecoderModel:
    """A frozen VQGAN decoder: a local checkpoint, a known name (downloaded once and cached), or random.

    An explicit file path is always loaded; otherwise ``weights="random"`` builds the real
    architecture with random weights and no file access.
    """
    path = resolve_vqgan_file(checkpoint, weights)
    model = random_vqgan() if path is None else load_vqgan_checkpoint(path)
    return model.requires_grad_(False).eval().to(device)


def resolve_vqgan_file(checkpoint: str | None, weights: str) -> Path | None:
    """The checkpoint a run will read (fetched if needed), so missing files fail before any work."""
    if checkpoint and checkpoint not in VQGAN_FILES:
        return local_file(checkpoint, "VQGAN")
    if weights == "random":
        return None
    return fetch_model(VQGAN_FILES[checkpoint or VQGAN_DEFAULT_NAME])
