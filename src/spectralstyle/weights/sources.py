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

``require`` resolves several models at once, so one message lists every missing model and every
place it was looked for, with how to fill each.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from spectralstyle.errors import WeightsMissingError
from spectralstyle.media.files import write_json
from spectralstyle.weights.download import ChecksumMismatch, download, sha256_of

CACHE_ENV = "SPECTRALSTYLE_CACHE"
OFFLINE_ENV = "SPECTRALSTYLE_OFFLINE"
HF_OFFLINE_ENV = "HF_HUB_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30

# A public provenance record of timm's copy of OpenAI's ViT-B/32 (open_clip key names).
CLIP_HUB_REPO = "timm/vit_base_patch32_clip_224.openai"
CLIP_HUB_REVISION = "a6f597a30f7b82c51704746581f9a4e41421e878"
CLIP_HUB_FILE = "open_clip_model.safetensors"
CLIP_HUB_SHA256 = "e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31"

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
VQGAN_FILE = "vqgan_imagenet_f16_16384.ckpt"
VQGAN_URL = "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/?p=%2Fckpts%2Flast.ckpt&dl=1"
RECORD_SUFFIX = ".record.json"


@dataclass(frozen=True)
class ClipRepos:
    """Where one CLIP architecture lives outside OpenAI: timm's open_clip copy and transformers' repo."""

    name: str  # OpenAI's name, e.g. ViT-B/32
    timm_repo: str
    transformers_repo: str
    hub_revision: str = ""  # pinned revision for a download; empty: not downloaded from the Hub
    hub_sha256: str = ""


CLIP_REPOS = {
    "clip-vit-b-32": ClipRepos("ViT-B/32", CLIP_HUB_REPO, "openai/clip-vit-base-patch32", CLIP_HUB_REVISION, CLIP_HUB_SHA256),
    "clip-vit-b-16": ClipRepos("ViT-B/16", "timm/vit_base_patch16_clip_224.openai", "openai/clip-vit-base-patch16"),
    "clip-vit-l-14": ClipRepos("ViT-L/14", "timm/vit_large_patch14_clip_224.openai", "openai/clip-vit-large-patch14"),
}
MODEL_KEYS = (*CLIP_REPOS, "vgg19", "vqgan-f16-16384")
ALIASES = {"clip": "clip-vit-b-32", "vgg": "vgg19", "vqgan": "vqgan-f16-16384", "vqgan_imagenet_f16_16384": "vqgan-f16-16384",
           **{repos.name.lower(): key for key, repos in CLIP_REPOS.items()}}
TITLES = {**{key: f"CLIP {repos.name}" for key, repos in CLIP_REPOS.items()}, "vgg19": "VGG19", "vqgan-f16-16384": "VQGAN f16_16384"}
FLAGS = {**{key: "--clip-weights" for key in CLIP_REPOS}, "vgg19": "--vgg-weights", "vqgan-f16-16384": "--vqgan-checkpoint"}


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
    """torchvision's download folder, ``torch.hub.get_dir()/checkpoints`` (honours TORCH_HOME)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def clip_package_dir() -> Path:
    """Where ``clip.load`` downloads: ``~/.cache/clip``."""
    return Path("~/.cache/clip").expanduser()


def openai_url(name: str) -> str:
    with warnings.catch_warnings():  # clip-anytorch imports pkg_resources, which warns on import
        warnings.simplefilter("ignore")
        from clip import (
            clip as clip_impl,  # its URL table, read at call time so tests can point it elsewhere
        )

    return clip_impl._MODELS[name]


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
        return None if path is None else _recorded(place, key, path) if key == "vqgan-f16-16384" else Found(key, path, place.source)

    return Place("spectralstyle cache", where, f"`spectralstyle weights import FILE` or copy the file there ({CACHE_ENV} moves the cache)", look)


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
            for name, digest in (("open_clip_model.safetensors", repos.hub_sha256), ("open_clip_pytorch_model.bin", "")):
                found = _checked(place, key, snap / name if (snap / name).is_file() else None, digest, "the pinned file")
                if found:
                    return found
        return None

    places.append(Place(f"Hugging Face cache {repos.timm_repo}", f"{_hf_repo_dir(repos.timm_repo)}/snapshots/*/open_clip_model.safetensors (or open_clip_pytorch_model.bin)",
                        f"`huggingface-cli download {repos.timm_repo} open_clip_model.safetensors`", timm_look))

    def transformers_look(place: Place) -> Found | None:
        for snap in _hf_snapshots(repos.transformers_repo):
            if (snap / "config.json").is_file() and any((snap / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
                return Found(key, snap, place.source)
        return None

    places.append(Place(f"Hugging Face cache {repos.transformers_repo}", f"{_hf_repo_dir(repos.transformers_repo)}/snapshots/* (config.json + model.safetensors or pytorch_model.bin)",
                        f"`huggingface-cli download {repos.transformers_repo} config.json model.safetensors`", transformers_look))
    if repos.hub_revision:
        places.append(Place(f"Hugging Face Hub {repos.timm_repo}", f"{CLIP_HUB_FILE} at revision {repos.hub_revision} (SHA-256 checked)",
                            "downloaded into the Hugging Face cache (HF_ENDPOINT, HF_TOKEN honoured)",
                            lambda p: _hub_download(p, key, repos), remote=True))
    url = openai_url(repos.name)
    places.append(Place("OpenAI URL", url, f"downloaded into {cache_target(key)}",
                        lambda p: _url_download(p, key, url, cache_target(key), sha), remote=True))
    return places


def _vgg_places() -> list[Place]:
    torch_file = torch_checkpoints_dir() / VGG19_FILE
    prefix = VGG19_FILE.split("-")[1].split(".")[0]
    return [
        _cache_place("vgg19"),
        Place("torchvision cache", str(torch_file), "`torchvision.models.vgg19(weights='IMAGENET1K_V1')` fills it (TORCH_HOME moves it)",
              lambda p: Found("vgg19", torch_file, p.source) if torch_file.is_file() else None),
        Place("torchvision URL", VGG19_URL, f"downloaded into {torch_file} (hash prefix {prefix} checked, as torchvision does)",
              lambda p: _url_download(p, "vgg19", VGG19_URL, torch_file, prefix), remote=True),
    ]


def _vqgan_places() -> list[Place]:
    target = cache_target("vqgan-f16-16384")
    return [
        _cache_place("vqgan-f16-16384"),
        Place("VQGAN URL", VQGAN_URL, f"downloaded into {target}; its size and SHA-256 are recorded beside it",
              lambda p: _vqgan_download(p, target), remote=True),
    ]


def places(key: str) -> list[Place]:
    """Every place ``key`` is looked for, in order (fresh objects: statuses are per lookup)."""
    if key in CLIP_REPOS:
        return _clip_places(key)
    return _vgg_places() if key == "vgg19" else _vqgan_places()


# --- records of downloads without a published digest ------------------------------------------------


def record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(path: Path) -> None:
    """Remember size and SHA-256 of a good file, so later damage is noticed."""
    write_json({"size": path.stat().st_size, "sha256": sha256_of(path)}, record_path(path))


def check_record(path: Path) -> str:
    """'' when ``path`` has no record, 'recorded' when it matches; WeightsMissingError naming it when not."""
    record = record_path(path)
    if not record.is_file():
        return ""
    try:
        expected = json.loads(record.read_text())
        size, digest = int(expected["size"]), str(expected["sha256"])
    except (ValueError, KeyError, TypeError):
        raise WeightsMissingError(f"{record} is not a size and SHA-256 record; restore or remove it") from None
    actual_size = path.stat().st_size
    if actual_size != size or sha256_of(path) != digest:
        raise WeightsMissingError(
            f"{path} is damaged: it differs from its first download ({actual_size} bytes now, {size} recorded; "
            f"see {record.name}); `spectralstyle weights download vqgan` fetches it again"
        )
    return "recorded"


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


# --- resolution --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One model a command needs; ``explicit`` is the path of its flag, when given."""

    key: str
    explicit: str | None = None


@dataclass
class Lookup:
    """The outcome for one model: what was found (or not) and every place with its status."""

    key: str
    found: Found | None = None
    places: list[Place] = field(default_factory=list)
    explicit: str | None = None
    explicit_status: str = "not given"


def locate(key: str, explicit: str | None = None, network: bool = False) -> Lookup:
    """Look for ``key`` in order; downloads only when ``network`` and no offline variable is set."""
    lookup = Lookup(key, places=places(key), explicit=explicit)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.exists():
            lookup.found = Found(key, path, FLAGS[key])
            lookup.explicit_status = "given"
        else:
            lookup.explicit_status = f"{path} does not exist"
        for place in lookup.places:
            place.status = f"not used: {FLAGS[key]} was given"
        return lookup
    offline = offline_reason()
    for place in lookup.places:
        if lookup.found is not None:
            place.status = "not needed"
            continue
        if place.remote and (offline or not network):
            place.status = f"skipped: {offline}" if offline else "not tried (no download)"
            continue
        try:
            lookup.found = place.look(place)
        except HubChecksumError:
            raise
        except ChecksumMismatch as exc:
            place.status = f"could not be downloaded: SHA-256 {exc.actual} is not the published {exc.expected}"
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            place.status = f"could not be downloaded: {_one_line(getattr(exc, 'reason', exc))}"
        except WeightsMissingError:
            raise
        except Exception as exc:  # huggingface_hub's many network errors
            place.status = f"could not be downloaded: {exc.__class__.__name__}: {_one_line(exc)}"
    return lookup


def _one_line(reason: object) -> str:
    text = " ".join(str(reason).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def missing_message(lookups: list[Lookup]) -> str:
    """One line: every missing model, every place tried with its status and how to fill it."""
    parts = []
    for lookup in lookups:
        flag = FLAGS[lookup.key]
        if lookup.explicit is not None:
            parts.append(f"{TITLES[lookup.key]}: {flag} {lookup.explicit_status}")
            continue
        tried = [f"{flag} PATH ({lookup.explicit_status})"]
        tried += [f"{p.source} {p.where} ({p.status}; fill: {p.how})" for p in lookup.places]
        parts.append(f"{TITLES[lookup.key]} was looked for in: " + "; ".join(f"[{i}] {t}" for i, t in enumerate(tried, 1)))
    names = " and ".join(TITLES[l.key] for l in lookups)
    keys = " ".join(l.key for l in lookups)
    flags = ", ".join(dict.fromkeys(f"{FLAGS[l.key]} PATH" for l in lookups))
    return (f"no pretrained weights for {names}. " + ". ".join(parts) + ". "
            f"To fix: put a file in one of these places, or run `spectralstyle weights download {keys} --to DIR` on a "
            f"machine with network and set {CACHE_ENV}=DIR here, or pass {flags}; --weights random runs without any weights")


def require(*requests: Request) -> list[Found]:
    """The weights of every request (downloading what may be downloaded), or one error listing all missing."""
    lookups = [locate(r.key, r.explicit, network=True) for r in requests]
    missing = [lookup for lookup in lookups if lookup.found is None]
    if missing:
        raise WeightsMissingError(missing_message(missing))
    return [lookup.found for lookup in lookups]  # type: ignore[misc]


def fetch_model(key: str, explicit: str | None = None) -> Path:
    """Path of one model's weights (see ``require``)."""
    return require(Request(key, explicit))[0].path


def local_file(path: str | os.PathLike, what: str, folder_ok: bool = False) -> Path:
    """A user-given weights path, checked to exist (a folder only where ``folder_ok``)."""
    p = Path(path).expanduser()
    if not (p.is_file() or (folder_ok and p.is_dir())):
        raise WeightsMissingError(f"{what} weights {'path' if folder_ok else 'file'} {p} does not exist")
    return p


def resolve_model_files(clip_source: str, clip_mode: str, vgg_path: str | None, vgg_mode: str,
                        clip_name: str = "ViT-B/32") -> tuple[str | None, str | None]:
    """Paths of the CLIP and VGG19 weights a run loads (None where random or a given path is loaded as is).

    A CLIP model name in pretrained mode and VGG19 without ``--vgg-weights`` are looked for together,
    and a given path that does not exist is reported with them, so a machine missing both gets one
    message naming both. ``clip_name`` labels a missing ``--clip-weights`` path.
    """
    requests, slots = [], []
    if clip_mode == "pretrained":
        if clip_source.lower() in ALIASES:
            requests.append(Request(clip_key(clip_source)))
            slots.append("clip")
        elif not Path(clip_source).expanduser().exists():
            requests.append(Request(clip_key(clip_name) if clip_name.lower() in ALIASES else "clip-vit-b-32", clip_source))
            slots.append("clip")
    if vgg_mode == "pretrained" or vgg_path:
        if not vgg_path:
            requests.append(Request("vgg19"))
            slots.append("vgg")
        elif not Path(vgg_path).expanduser().is_file():
            requests.append(Request("vgg19", vgg_path))
            slots.append("vgg")
    found = dict(zip(slots, (str(f.path) for f in require(*requests)))) if requests else {}
    return found.get("clip"), found.get("vgg")
