"""Any published form of CLIP ViT weights -> OpenAI's key names -> a float32 ``clip.model.CLIP``.

Accepted (files are read by ``safeload``, so none of them runs code):

- OpenAI's TorchScript ``ViT-B-32.pt`` (and B/16, L/14): its tensors read as data, never ``torch.jit.load``;
- a state dict (``.pt``, ``.bin``, ``.safetensors``) with OpenAI's key names, which open_clip's copy of
  OpenAI's weights also uses (``open_clip_model.safetensors``); a ``state_dict`` wrapper and a
  ``module.`` prefix (DataParallel) are tolerated;
- a transformers ``CLIPModel``: its ``save_pretrained`` folder, or its ``model.safetensors`` /
  ``pytorch_model.bin`` alone. Its separate q/k/v projections are concatenated into
  ``nn.MultiheadAttention``'s ``in_proj``, its Linear projections transposed into CLIP's matrices.

The architecture is read off the tensor shapes as ``clip.model.build_model`` does, but the weights
stay in float32 (``build_model`` rounds them to float16).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch

from spectralstyle.errors import WeightsMissingError
from spectralstyle.weights.safeload import (
    Placeholder,
    flatten_module_tree,
    read_weights,
    tensors_only,
)

with warnings.catch_warnings():  # clip-anytorch imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    from clip.model import CLIP

WHAT = "CLIP checkpoint"
# Files looked for in a folder, in order: open_clip's copy of OpenAI's weights, then transformers' files.
FOLDER_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin")
# Non-tensor entries OpenAI's TorchScript archives keep beside the weights (build_model drops them too).
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
QUICK_GELU = "quick_gelu"
# Architecture hyper-parameters of OpenAI's ViT checkpoints: for random initialisation without files, and to
# tell which of them a loaded file is.
CLIP_ARCHITECTURES: dict[str, dict[str, int]] = {
    "ViT-B/32": dict(embed_dim=512, vision_layers=12, vision_width=768, vision_patch_size=32,
                     transformer_width=512, transformer_heads=8, transformer_layers=12),
    "ViT-B/16": dict(embed_dim=512, vision_layers=12, vision_width=768, vision_patch_size=16,
                     transformer_width=512, transformer_heads=8, transformer_layers=12),
    "ViT-L/14": dict(embed_dim=768, vision_layers=24, vision_width=1024, vision_patch_size=14,
                     transformer_width=768, transformer_heads=12, transformer_layers=12),
}

_HF_LAYER = re.compile(r"^(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER_PARTS = {
    "self_attn.out_proj.weight": "attn.out_proj.weight", "self_attn.out_proj.bias": "attn.out_proj.bias",
    "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias",
}
_HF_SINGLE = {
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",  # transformers' spelling
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "logit_scale": "logit_scale",
}
_HF_TRANSPOSED = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}
_HF_DROPPED = ("vision_model.embeddings.position_ids", "text_model.embeddings.position_ids")


def _weights_file_in(folder: Path) -> Path:
    for name in FOLDER_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsMissingError(f"{folder} holds no CLIP weights: expected one of {', '.join(FOLDER_FILES)} "
                              "(an open_clip or transformers model folder)")


def _unwrap(data: object, path: Path) -> dict[str, torch.Tensor]:
    """The flat tensor dict of what a file held: a TorchScript module tree, a wrapped or a bare state dict."""
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    state = flatten_module_tree(data) if isinstance(data, Placeholder) else tensors_only(data)
    if not state:
        raise WeightsMissingError(f"{path} holds no tensors by name (expected a CLIP state dict or OpenAI's "
                                  "TorchScript checkpoint)")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def from_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``CLIPModel`` names -> OpenAI names: q/k/v joined into in_proj, projections transposed."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in _HF_DROPPED:
            continue
        if key in _HF_SINGLE:
            out[_HF_SINGLE[key]] = value
        elif key in _HF_TRANSPOSED:
            out[_HF_TRANSPOSED[key]] = value.t().contiguous()
        elif match := _HF_LAYER.match(key):
            tower, index, rest = match.groups()
            prefix = f"{'visual.' if tower == 'vision' else ''}transformer.resblocks.{index}."
            projection = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
            if projection:
                qkv.setdefault((prefix, projection.group(2)), {})[projection.group(1)] = value
            else:
                out[prefix + _HF_LAYER_PARTS.get(rest, f"unknown.{rest}")] = value
        else:
            out[f"unknown.{key}"] = value  # reported by the strict key check
    for (prefix, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            out[f"{prefix}attn.in_proj_{kind}.incomplete"] = next(iter(parts.values()))
            continue
        out[f"{prefix}attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def to_openai_names(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Recognise the naming scheme by its keys and convert it; one clear line for the schemes we do not read."""
    if "visual.conv1.weight" in state:  # OpenAI's, and open_clip's copy of OpenAI's weights
        return {k: v for k, v in state.items() if k not in OPENAI_EXTRA_KEYS}
    if "vision_model.embeddings.patch_embedding.weight" in state:
        return from_transformers(state)
    if "patch_embed.proj.weight" in state or any(k.startswith("blocks.0.") for k in state):
        raise WeightsMissingError(
            f"{path} is timm's image-only ViT (no text tower, other key names); use open_clip's file of the same "
            "Hugging Face repo instead: open_clip_model.safetensors (or open_clip_pytorch_model.bin)")
    if "visual.layer1.0.conv1.weight" in state:
        raise WeightsMissingError(f"{path} is a ResNet CLIP; this tool needs a ViT CLIP (ViT-B/32, ViT-B/16, ViT-L/14)")
    example = next(iter(state))
    raise WeightsMissingError(f"{path} does not look like CLIP weights (first key {example!r}; expected OpenAI, "
                              "open_clip or transformers CLIPModel key names)")


def build_clip(state: dict[str, torch.Tensor], path: Path) -> CLIP:
    """A float32 CLIP with the architecture the tensor shapes imply, weights matched key for key."""
    try:
        vision_width, _, vision_patch_size, _ = state["visual.conv1.weight"].shape
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_layers = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
        transformer_width = state["ln_final.weight"].shape[0]
        shape = dict(
            embed_dim=state["text_projection"].shape[1], image_resolution=vision_patch_size * grid,
            vision_layers=vision_layers, vision_width=vision_width, vision_patch_size=vision_patch_size,
            context_length=state["positional_embedding"].shape[0], vocab_size=state["token_embedding.weight"].shape[0],
            transformer_width=transformer_width, transformer_heads=transformer_width // 64,
            transformer_layers=len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}),
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise WeightsMissingError(f"{path} lacks CLIP tensors needed to infer the architecture ({exc})") from None
    with torch.device("meta"):  # no random initialisation of weights that are overwritten anyway
        model = CLIP(**shape)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [f"{len(names)} {label} (first: {', '.join(names[:3])})"
                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise WeightsMissingError(f"{path} does not match a CLIP ViT: keys {'; '.join(parts)}")
    for name, value in state.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise WeightsMissingError(f"{path} does not match a CLIP ViT: {name} has shape {tuple(value.shape)}, "
                                      f"expected {tuple(expected[name].shape)}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    for block in (*model.transformer.resblocks, *model.visual.transformer.resblocks):
        if block.attn_mask is not None:  # a plain attribute, so still on the meta device
            block.attn_mask = torch.empty(shape["context_length"], shape["context_length"]).fill_(
                float("-inf")).triu_(1)
    return model.float()


def check_activation(folder: Path) -> None:
    """Refuse a transformers folder whose config.json says GELU: our CLIP has OpenAI's QuickGELU, and
    weights trained with GELU (LAION's, for example) would load without error but give wrong features."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise WeightsMissingError(f"{config_file} is not readable JSON ({exc.__class__.__name__})") from None
    for tower in ("vision_config", "text_config"):
        act = config.get(tower, {}).get("hidden_act", QUICK_GELU) if isinstance(config.get(tower), dict) else QUICK_GELU
        if act != QUICK_GELU:
            raise WeightsMissingError(f"{folder} is a CLIP with {tower.split('_')[0]} activation {act!r}; this tool's "
                                      f"CLIP uses {QUICK_GELU!r} as OpenAI's weights do")


def clip_from_data(data: object, path: Path) -> CLIP:
    """A float32 CLIP from what ``read_weights`` returned for ``path`` (read once, tried as several kinds)."""
    return build_clip(to_openai_names(_unwrap(data, path), path), path)


def read_clip_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """OpenAI-named CLIP tensors from a file or model folder of any accepted format, and the file read."""
    if path.is_dir():
        check_activation(path)
    file = _weights_file_in(path) if path.is_dir() else path
    return to_openai_names(_unwrap(read_weights(file, WHAT), file), file), file


def load_clip_weights(path: str | Path) -> CLIP:
    """A float32 CLIP from a user-given file or folder (any format in this module's docstring)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsMissingError(f"CLIP weights file {path} does not exist")
    return build_clip(*read_clip_state_dict(path))
