"""Checking weights files for real: load them, compare shapes and published digests, and place them.

``weights list`` only says where a file is; ``weights verify`` and ``weights import`` use this module
to prove that a file is the model it claims to be, since a file of the right name can still be a
truncated download, another model, or a file a user renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectralstyle.errors import SpectralStyleError, WeightsMissingError
from spectralstyle.media.files import atomic_path, default_file_mode
from spectralstyle.weights.clip_formats import (
    CLIP_ARCHITECTURES,
    clip_from_data,
    load_clip_weights,
)
from spectralstyle.weights.download import sha256_of
from spectralstyle.weights.safeload import Placeholder, read_weights
from spectralstyle.weights.sources import (
    CLIP_REPOS,
    TITLES,
    VGG19_FILE,
    cache_target,
    check_record,
    openai_sha256,
    write_record,
)
from spectralstyle.weights.state_dicts import (
    VQGAN_PREFIXES,
    load_strictly,
    read_vgg19_state,
    vgg19_state_from,
    vqgan_state_from,
)

VGG19_SHA256_PREFIX = VGG19_FILE.split("-")[1].split(".")[0]
STYLENET_FORMAT = "spectralstyle-stylenet"  # the "format" entry of a saved StyleNet (runs/outputs.py)


@dataclass(frozen=True)
class Check:
    """The outcome of loading one file: which model it is, and how its bytes were verified."""

    key: str
    detail: str  # what was checked, for a table cell
    verified: str = ""  # "sha256", "recorded" or "" (no published digest)


def published_digests(key: str) -> list[str]:
    """Full SHA-256 digests (or torchvision's prefix) that the released files of ``key`` have."""
    if key in CLIP_REPOS:
        return [d for d in (openai_sha256(CLIP_REPOS[key].name), CLIP_REPOS[key].hub_sha256) if d]
    return [VGG19_SHA256_PREFIX] if key == "vgg19" else []


def _matches_published(key: str, path: Path) -> bool:
    if path.is_dir():
        return False
    digest = sha256_of(path)
    return any(digest.startswith(d) for d in published_digests(key))


def clip_architecture(model) -> str:
    """Catalogue key of a loaded CLIP by its shapes, or '' when it is none of the known ViTs."""
    visual = model.visual
    for key, repos in CLIP_REPOS.items():
        arch = CLIP_ARCHITECTURES[repos.name]
        patch, width = arch["vision_patch_size"], arch["vision_width"]
        if (tuple(visual.conv1.weight.shape) == (width, 3, patch, patch)
                and len(visual.transformer.resblocks) == arch["vision_layers"]
                and visual.positional_embedding.shape[0] == (224 // patch) ** 2 + 1
                and tuple(model.text_projection.shape) == (arch["transformer_width"], arch["embed_dim"])):
            return key
    return ""


def _clip_check(model, path: Path, key: str | None) -> Check:
    found = clip_architecture(model)
    if not found:
        names = ", ".join(r.name for r in CLIP_REPOS.values())
        raise WeightsMissingError(f"{path} loads as CLIP but its shapes are none of {names}")
    if key and found != key:
        raise WeightsMissingError(f"{path} holds {TITLES[found]}, not {TITLES[key]}")
    verified = "sha256" if _matches_published(found, path) else ""
    return Check(found, f"loads; shapes of {TITLES[found]}", verified)


def check_clip(path: Path, key: str | None = None, data: Any = None) -> Check:
    """``path`` loaded as a CLIP (``data``: what ``read_weights`` already returned for it)."""
    model = load_clip_weights(path) if data is None else clip_from_data(data, path)
    return _clip_check(model, path, key)


def check_vgg(path: Path, data: Any = None) -> Check:
    """VGG19's feature layers (all a run uses) loaded strictly; the classifier is neither built nor needed."""
    from spectralstyle.method.vgg import vgg19_features

    if path.is_dir():
        raise WeightsMissingError(f"{path} is a folder, not a VGG19 state dict file")
    state = read_vgg19_state(path) if data is None else vgg19_state_from(data)
    load_strictly(vgg19_features(), state, path, "VGG19's feature layers")
    if not _matches_published("vgg19", path):
        raise WeightsMissingError(f"{path} loads as VGG19 but its SHA-256 {sha256_of(path)} does not start with "
                                  f"torchvision's {VGG19_SHA256_PREFIX}: not the published file")
    return Check("vgg19", "loads; shapes of VGG19", "sha256")


def check_vqgan(path: Path, data: Any = None) -> Check:
    # The decoder's architecture is the method's (vqgan.py here): its public loader builds and fills it.
    from spectralstyle.method.vqgan import load_vqgan_checkpoint, vqgan_from_state

    verified = check_record(path)
    if data is None:
        load_vqgan_checkpoint(path)
    else:
        vqgan_from_state(vqgan_state_from(data, path), path)
    return Check("vqgan-f16-16384", "loads; decoder keys and shapes match", verified)


def check(key: str, path: Path) -> Check:
    """Load ``path`` as ``key``; WeightsMissingError (one line) when it is not that model."""
    if key in CLIP_REPOS:
        return check_clip(path, key)
    return check_vgg(path) if key == "vgg19" else check_vqgan(path)


def _resemblance(kind: str, data: Any) -> int:
    """How much a file's key names look like ``kind``'s (0: not at all), to give the decisive reason first."""
    state = data.get("state_dict", data) if isinstance(data, dict) else {}
    keys = [str(k) for k in state] if isinstance(state, dict) else []
    if kind == "clip":
        if isinstance(data, Placeholder):
            return 2  # a TorchScript module tree: OpenAI's format
        marks = ("visual.", "vision_model.", "text_model.", "token_embedding", "transformer.resblocks")
    elif kind == "vgg19":
        marks = ("features.",)
    else:
        marks = VQGAN_PREFIXES
    return sum(k.startswith(marks) or any(m in k for m in marks) for k in keys)


def identify(path: Path) -> Check:
    """Which model a file is: read once, then tried as each kind (a folder can only be a CLIP).

    One line when it is none of them, its decisive reason first: a StyleNet of this tool (use ``apply``),
    else the kind whose key names the file resembles most.
    """
    if path.is_dir():
        return check_clip(path)
    data = read_weights(path, "weights file")  # the format is told from the first bytes, once
    if isinstance(data, dict) and str(data.get("format", "")).startswith(STYLENET_FORMAT):
        raise SpectralStyleError(f"{path} is a StyleNet trained by spectralstyle, not pretrained weights: use it with "
                                 f"`spectralstyle apply {path} IMAGE` (nothing to import)")
    checks = {"clip": lambda: check_clip(path, data=data), "vgg19": lambda: check_vgg(path, data),
              "vqgan-f16-16384": lambda: check_vqgan(path, data)}
    reasons = []
    for kind in sorted(checks, key=lambda k: -_resemblance(k, data)):  # stable: clip, vgg19, vqgan on ties
        try:
            return checks[kind]()
        except WeightsMissingError as exc:
            reasons.append(str(exc))
    raise SpectralStyleError(f"{path} is not weights of any known model: {' | '.join(reasons)}")


def place(key: str, source: Path, root: Path | None = None) -> tuple[Path, bool]:
    """Copy ``source`` to where the spectralstyle cache (or ``root``) finds ``key``; (target, copied).

    The copy is written under a temporary name and renamed, and an existing different file is never
    replaced: the user decides what happens to it.
    """
    suffix = "" if source.is_dir() else (".safetensors" if source.suffix == ".safetensors" else ".pt")
    target = cache_target(key, suffix if key in CLIP_REPOS else None, root)
    if target.exists():
        same = target.resolve() == source.resolve() or (
            source.is_file() and target.is_file() and sha256_of(source) == sha256_of(target))
        if not same:
            raise SpectralStyleError(f"{target} already exists and differs from {source}; move it away first")
        return target, False
    if source.is_dir():
        _copy_folder(source, target)
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    if key == "vqgan-f16-16384":
        write_record(target)
    return target, True


def _copy_folder(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staged = tmp / target.name
        shutil.copytree(source, staged)  # symlinks of a Hugging Face snapshot are copied as files
        os.chmod(staged, default_file_mode() | 0o111)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
