"""Where pretrained weights come from: an ordered list of places per model, the first hit wins.

Users already hold these files in the caches of the tools they use, and GPU nodes often have no
network, so every model is looked for locally first, in this order, and downloaded only when none of
them has it (unless ``SPECTRALSTYLE_OFFLINE`` or ``HF_HUB_OFFLINE`` is set):

- CLIP: ``--clip-weights PATH`` -> the spectralstyle cache -> the ``clip`` package's cache (checked
  with the SHA-256 in OpenAI's URL, as that package does) -> the Hugging Face cache (timm's copy of
  OpenAI's weights in open_clip's format, then transformers' ``openai/clip-vit-*``) -> a pinned, hashed
  download from the Hub through ``huggingface_hub`` (ViT-B/32 only: the only pinned revision known)
  -> OpenAI's URL (SHA-256 in the URL).
- VGG19: ``--vgg-weights`` -> the spectralstyle cache -> torchvision's cache -> a download into
  torchvision's cache with its hash check, so other tools share the file.
- VQGAN: ``--vqgan-checkpoint`` -> the spectralstyle cache -> a download; the size and SHA-256 of the
  first download are recorded beside it and checked on every later use.

``resolve.py`` looks through these places for the models a run needs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from spectralstyle.errors import WeightsMissingError
from spectralstyle.weights.download import download, sha256_of
from spectralstyle.weights.network import (
    check_reachable,
)
from spectralstyle.weights.records import check_record, record_path, write_record

CACHE_ENV = "SPECTRALSTYLE_CACHE"
OFFLINE_ENV = "SPECTRALSTYLE_OFFLINE"
HF_OFFLINE_ENV = "HF_HUB_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30
HF_ENDPOINT = "https://huggingface.co"

# A public provenance record of timm's copy of OpenAI's ViT-B/32 (open_clip key names).
CLIP_HUB_REPO = "timm/vit_base_patch32_clip_224.openai"
CLIP_HUB_REVISION = "a6f597a30f7b82c51704746581f9a4e41421e878"
CLIP_HUB_FILE = "open_clip_model.safetensors"
CLIP_HUB_SHA256 = "e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31"

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
VQGAN_FILE = "vqgan_imagenet_f16_16384.ckpt"
VQGAN_URL = "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/?p=%2Fckpts%2Flast.ckpt&dl=1"


@dataclass(frozen=True)
class ClipRepos:
    """Where one CLIP architecture lives outside OpenAI: timm's open_clip copy and transformers' repo."""

    name: str  # OpenAI's name, e.g. ViT-B/32
    timm_repo: str
    transformers_repo: str
    hub_revision: str = ""  # pinned revision for a download; empty: not downloaded from the Hub
    hub_sha256: str = ""


CLIP_REPOS = {
    "clip-vit-b-32": ClipRepos("ViT-B/32", CLIP_HUB_REPO, "openai/clip-vit-base-patch32", CLIP_HUB_REVISION,
                               CLIP_HUB_SHA256),
    "clip-vit-b-16": ClipRepos("ViT-B/16", "timm/vit_base_patch16_clip_224.openai", "openai/clip-vit-base-patch16"),
    "clip-vit-l-14": ClipRepos("ViT-L/14", "timm/vit_large_patch14_clip_224.openai", "openai/clip-vit-large-patch14"),
}
MODEL_KEYS = (*CLIP_REPOS, "vgg19", "vqgan-f16-16384")
ALIASES = {"clip": "clip-vit-b-32", "vgg": "vgg19", "vqgan": "vqgan-f16-16384",
           "vqgan_imagenet_f16_16384": "vqgan-f16-16384",
           **{repos.name.lower(): key for key, repos in CLIP_REPOS.items()}}
TITLES = {**{key: f"CLIP {repos.name}" for key, repos in CLIP_REPOS.items()}, "vgg19": "VGG19",
          "vqgan-f16-16384": "VQGAN f16_16384"}
FLAGS = {**{key: "--clip-weights" for key in CLIP_REPOS}, "vgg19": "--vgg-weights",
         "vqgan-f16-16384": "--vqgan-checkpoint"}


def model_key(name: str) -> str:
    """The catalogue key of a model name as users write it (clip, ViT-B/32, vgg19, vqgan, ...)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in MODEL_KEYS:
        raise WeightsMissingError(f"unknown model {name!r}; use one of {', '.join(MODEL_KEYS)}")
    return key


def clip_key(name: str) -> str:
    """Catalogue key of an OpenAI CLIP name (ViT-B/32 -> clip-vit-b-32)."""
    return model_key(name)


# --- the places ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "spectralstyle"


def offline_reason() -> str:
    """Why no download may happen (the variable that is set), or '' when downloads are allowed."""
    for var in (OFFLINE_ENV, HF_OFFLINE_ENV):
        if os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no", "off"):
            return f"{var} is set"
    return ""


def hf_cache_dir() -> Path:
    """huggingface_hub's cache, read from the environment now (its own constants are read at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def torch_checkpoints_dir() -> Path:
    """torchvision's download folder, ``torch.hub.get_dir()/checkpoints`` (honours TORCH_HOME). Computed as
    torch.hub does when torch is not imported yet, so a missing-weights run fails before torch loads."""
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    return Path(os.environ.get("TORCH_HOME", os.path.join(xdg, "torch"))).expanduser() / "hub" / "checkpoints"


def clip_package_dir() -> Path:
    """Where ``clip.load`` downloads: ``~/.cache/clip``."""
    return Path("~/.cache/clip").expanduser()


# OpenAI's download table of the ViTs, as the clip package has it (clip.clip._MODELS), used until that
# package is imported anyway (importing it takes seconds: a missing-weights message should not wait for it).
OPENAI_URLS = {name: f"https://openaipublic.azureedge.net/clip/models/{sha}/{name.replace('/', '-')}.pt"
               for name, sha in (
    ("ViT-B/32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
    ("ViT-B/16", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"),
    ("ViT-L/14", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"))}


def openai_url(name: str) -> str:
    """OpenAI's URL of ``name`` from the clip package's table once it is imported (tests point it elsewhere)."""
    clip_impl = sys.modules.get("clip.clip")
    return clip_impl._MODELS[name] if clip_impl is not None else OPENAI_URLS[name]


def openai_sha256(name: str) -> str:
    return openai_url(name).split("/")[-2]


def openai_filename(name: str) -> str:
    return openai_url(name).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Found:
    """A usable weights file or folder, the place it came from, and how it was checked."""

    key: str
    path: Path
    source: str
    verified: str = ""  # "sha256" (matches a published digest), "recorded" (matches its first download), ""


@dataclass
class Place:
    """One place a model is looked for; ``look`` returns a Found or None and may set ``status``."""

    source: str
    where: str
    how: str  # how a user fills this place
    look: Callable[["Place"], Found | None]
    remote: bool = False
    status: str = "empty"
    url: str = ""  # the server a remote place downloads from (asked whether it answers before any download)


def _first_existing(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def _checked(place: Place, key: str, path: Path | None, sha256: str, what: str) -> Found | None:
    """``path`` as a Found if its SHA-256 is the published one; otherwise noted as not used."""
    if path is None:
        return None
    if not sha256:
        return Found(key, path, place.source)
    actual = sha256_of(path)
    if actual == sha256:
        return Found(key, path, place.source, "sha256")
    place.status = f"{path} is there but its SHA-256 {actual} is not {what}'s {sha256}: not used"
    return None


def _cache_names(key: str) -> list[str]:
    """Names accepted in the spectralstyle cache, the first being where imports and downloads go."""
    if key in CLIP_REPOS:
        stem = openai_filename(CLIP_REPOS[key].name).removesuffix(".pt")
        return [f"{stem}.pt", f"{stem}.safetensors", stem]
    return [VGG19_FILE] if key == "vgg19" else [VQGAN_FILE]


def cache_target(key: str, suffix: str | None = None, root: Path | None = None) -> Path:
    """Where a file of ``key`` is placed in the spectralstyle cache (``suffix`` picks .pt/.safetensors/folder)."""
    names = _cache_names(key)
    name = names[0]
    if suffix is not None and key in CLIP_REPOS:
        name = names[1] if suffix == ".safetensors" else names[2] if suffix == "" else names[0]
    return (root or cache_dir()) / name


def _cache_place(key: str) -> Place:
    names = _cache_names(key)
    root = cache_dir()
    where = str(root / names[0]) + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")

    def look(place: Place) -> Found | None:
        path = _first_existing(root / n for n in names)
        return (None if path is None else _recorded(place, key, path) if key == "vqgan-f16-16384"
                else Found(key, path, place.source))

    return Place("spectralstyle cache", where,
                 f"`spectralstyle weights import FILE` or copy the file there ({CACHE_ENV} moves the cache)", look)


def _hf_repo_dir(repo: str) -> Path:
    return hf_cache_dir() / f"models--{repo.replace('/', '--')}"


def _hf_snapshots(repo: str, pinned: str = "") -> list[Path]:
    """Snapshot folders of ``repo`` in the Hugging Face cache: the pinned revision, main, then the rest."""
    root = _hf_repo_dir(repo)
    snaps = root / "snapshots"
    if not snaps.is_dir():
        return []
    preferred = [pinned] if pinned else []
    main = root / "refs" / "main"
    if main.is_file():
        preferred.append(main.read_text().strip())
    rest = sorted((p for p in snaps.iterdir() if p.name not in preferred), key=lambda p: p.name)
    return [snaps / rev for rev in preferred if (snaps / rev).is_dir()] + rest


def _clip_places(key: str) -> list[Place]:
    repos = CLIP_REPOS[key]
    filename, sha = openai_filename(repos.name), openai_sha256(repos.name)
    clip_cache = clip_package_dir() / filename
    places = [_cache_place(key)]
    places.append(Place("clip package cache", str(clip_cache), "`clip.load(...)` on a machine with network fills it",
                        lambda p: _checked(p, key, clip_cache if clip_cache.is_file() else None, sha, "OpenAI")))

    def timm_look(place: Place) -> Found | None:
        for snap in _hf_snapshots(repos.timm_repo, repos.hub_revision):
            for name, digest in (("open_clip_model.safetensors", repos.hub_sha256),
                                 ("open_clip_pytorch_model.bin", "")):
                found = _checked(place, key, snap / name if (snap / name).is_file() else None, digest,
                                 "the pinned file")
                if found:
                    return found
        return None

    places.append(Place(f"Hugging Face cache {repos.timm_repo}",
                        f"{_hf_repo_dir(repos.timm_repo)}/snapshots/*/open_clip_model.safetensors "
                        "(or open_clip_pytorch_model.bin)",
                        f"`huggingface-cli download {repos.timm_repo} open_clip_model.safetensors`", timm_look))

    def transformers_look(place: Place) -> Found | None:
        for snap in _hf_snapshots(repos.transformers_repo):
            if (snap / "config.json").is_file() and any((snap / n).is_file()
                                                         for n in ("model.safetensors", "pytorch_model.bin")):
                return Found(key, snap, place.source)
        return None

    places.append(Place(f"Hugging Face cache {repos.transformers_repo}",
                        f"{_hf_repo_dir(repos.transformers_repo)}/snapshots/* "
                        "(config.json + model.safetensors or pytorch_model.bin)",
                        f"`huggingface-cli download {repos.transformers_repo} config.json model.safetensors`",
                        transformers_look))
    if repos.hub_revision:
        places.append(Place(f"Hugging Face Hub {repos.timm_repo}",
                            f"{CLIP_HUB_FILE} at revision {repos.hub_revision} (SHA-256 checked)",
                            "downloaded into the Hugging Face cache (HF_ENDPOINT, HF_TOKEN honoured)",
                            lambda p: _hub_download(p, key, repos), remote=True,
                            url=os.environ.get("HF_ENDPOINT") or HF_ENDPOINT))
    url = openai_url(repos.name)
    places.append(Place("OpenAI URL", url, f"downloaded into {cache_target(key)}",
                        lambda p: _url_download(p, key, url, cache_target(key), sha), remote=True, url=url))
    return places


def _vgg_places() -> list[Place]:
    torch_file = torch_checkpoints_dir() / VGG19_FILE
    prefix = VGG19_FILE.split("-")[1].split(".")[0]
    return [
        _cache_place("vgg19"),
        Place("torchvision cache", str(torch_file),
              "`torchvision.models.vgg19(weights='IMAGENET1K_V1')` fills it (TORCH_HOME moves it)",
              lambda p: Found("vgg19", torch_file, p.source) if torch_file.is_file() else None),
        Place("torchvision URL", VGG19_URL,
              f"downloaded into {torch_file} (hash prefix {prefix} checked, as torchvision does)",
              lambda p: _url_download(p, "vgg19", VGG19_URL, torch_file, prefix), remote=True, url=VGG19_URL),
    ]


def _vqgan_places() -> list[Place]:
    target = cache_target("vqgan-f16-16384")
    return [
        _cache_place("vqgan-f16-16384"),
        Place("VQGAN URL", VQGAN_URL, f"downloaded into {target}; its size and SHA-256 are recorded beside it",
              lambda p: _vqgan_download(p, target), remote=True, url=VQGAN_URL),
    ]


def places(key: str) -> list[Place]:
    """Every place ``key`` is looked for, in order (fresh objects: statuses are per lookup)."""
    if key in CLIP_REPOS:
        return _clip_places(key)
    return _vgg_places() if key == "vgg19" else _vqgan_places()


def _recorded(place: Place, key: str, path: Path) -> Found:
    return Found(key, path, place.source, check_record(path))


# --- downloads ---------------------------------------------------------------------------------------


def _url_download(place: Place, key: str, url: str, target: Path, sha256: str) -> Found:
    download(url, target, sha256, label=f"{TITLES[key]} {target.name}", timeout=DOWNLOAD_TIMEOUT_S)
    return Found(key, target, place.source, "sha256" if sha256 else "")


def _vqgan_download(place: Place, target: Path, replace: bool = False) -> Found:
    download(VQGAN_URL, target, label=f"VQGAN {target.name}", timeout=DOWNLOAD_TIMEOUT_S, replace=replace)
    if replace or not record_path(target).is_file():
        write_record(target)
    return Found("vqgan-f16-16384", target, place.source, "recorded")


def redownload_vqgan() -> Found:
    """Fetch the VQGAN checkpoint again over a damaged copy (the repair its damage message names)."""
    if offline_reason():
        raise WeightsMissingError(f"cannot download the VQGAN checkpoint: {offline_reason()}")
    place = _vqgan_places()[-1]
    return _vqgan_download(place, cache_target("vqgan-f16-16384"), replace=True)


def hf_hub_download(**kwargs):  # the single call into huggingface_hub, so tests can stand in for it
    """huggingface_hub's download, its per-retry log lines held back: a failure ends in our one message."""
    from huggingface_hub import hf_hub_download as download_from_hub

    check_reachable(kwargs.get("endpoint") or HF_ENDPOINT)  # seconds, not the client's retries
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        return download_from_hub(**kwargs)
    finally:
        hub_log.setLevel(level)


def _hub_download(place: Place, key: str, repos: ClipRepos) -> Found:
    """The pinned file through huggingface_hub (mirrors, tokens, resume, its cache), then its hash."""
    path = Path(hf_hub_download(repo_id=repos.timm_repo, filename=CLIP_HUB_FILE, revision=repos.hub_revision,
                                cache_dir=hf_cache_dir(), endpoint=os.environ.get("HF_ENDPOINT") or None))
    actual = sha256_of(path)
    if actual != repos.hub_sha256:
        raise HubChecksumError(
            f"{CLIP_HUB_FILE} from {repos.timm_repo} at revision {repos.hub_revision} has SHA-256 {actual}, "
            f"not the published {repos.hub_sha256} (a changed mirror or a damaged download: {path}); "
            f"not used; pass --clip-weights PATH with a file you trust"
        )
    return Found(key, path, place.source, "sha256")


class HubChecksumError(WeightsMissingError):
    """The Hub served a file that is not the pinned one: stop, rather than silently try elsewhere."""
