"""Finding the weights a run needs in the places of ``sources.py``, and the one message when some are missing.

``require`` resolves several models at once (CLIP and VGG19 for ``transfer``, CLIP and VQGAN for
``generate --generator vqgan``), so one short message names every missing model and the two ways out;
the full list of places and their statuses is what ``spectralstyle weights list`` shows.
"""

from __future__ import annotations

import os
import re
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

from spectralstyle.errors import MESSAGE_LIMIT, WeightsMissingError
from spectralstyle.weights.download import ChecksumMismatch
from spectralstyle.weights.network import NetworkUnreachable, check_reachable, network_down
from spectralstyle.weights.sources import (
    ALIASES,
    CACHE_ENV,
    FLAGS,
    TITLES,
    Found,
    HubChecksumError,
    Place,
    clip_key,
    offline_reason,
    places,
)


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
        if place.remote and (offline or not network or network_down()):
            place.status = (f"skipped: {offline}" if offline else "not tried (no download)" if not network
                            else f"skipped: no network ({network_down()})")
            continue
        try:
            lookup.found = place.look(place)
        except HubChecksumError:
            raise
        except ChecksumMismatch as exc:
            place.status = f"could not be downloaded: SHA-256 {exc.actual} is not the published {exc.expected}"
        except NetworkUnreachable as exc:
            place.status = f"could not be downloaded: no network ({exc})"
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            place.status = f"could not be downloaded: {_one_line(getattr(exc, 'reason', exc))}"
        except WeightsMissingError:
            raise
        except Exception as exc:  # huggingface_hub's many network errors
            place.status = f"could not be downloaded: {exc.__class__.__name__}: {_one_line(exc)}"
    return lookup


_UNREACHABLE = re.compile(r"^no network \(([^\s:()]+(?::\d+)?): .*\)$")


def _one_line(reason: object) -> str:
    text = " ".join(str(reason).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _download_state(lookups: list[Lookup]) -> str:
    """Why downloads did not help, in a few words: off, no network, or the first failure."""
    offline = offline_reason()
    if offline:
        return f"downloads are off ({offline})"
    if network_down():
        return f"no network ({network_down()})"
    failed = [p.status for lookup in lookups for p in lookup.places if p.remote and "could not" in p.status]
    if not failed:
        return ""
    reason = _one_line(failed[0]).removeprefix("could not be downloaded: ")
    reason = _UNREACHABLE.sub(r"no network (\1 unreachable)", reason)  # the details: `weights list`
    return f"downloading failed: {reason}"


def missing_message(lookups: list[Lookup]) -> str:
    """One line under 1,000 characters: what is missing and the two ways out first, then why (downloads off,
    no network, a file found but not used) and where the full list of places is (``weights list``)."""
    names = " and ".join(TITLES[lookup.key] for lookup in lookups)
    keys = " ".join(lookup.key for lookup in lookups)
    flags = " / ".join(dict.fromkeys(f"{FLAGS[lookup.key]} PATH" for lookup in lookups))
    details = [f"{FLAGS[lookup.key]} {_one_line(lookup.explicit_status)[:160]}" for lookup in lookups
               if lookup.explicit is not None]
    details += [f"{p.source}: {_one_line(p.status)[:160]}" for lookup in lookups for p in lookup.places
                if not p.remote and p.status not in ("empty", "not needed") and not p.status.startswith("not used")]
    head = (f"no pretrained weights for {names} here: run `spectralstyle weights download {keys}` where there is "
            f"network (--to DIR, then {CACHE_ENV}=DIR here), or use --weights random to run without them. ")
    tail = ("".join(f"{d}. " for d in details[:3])
            + f"Or pass {flags}; `spectralstyle weights list` shows every place looked in")
    state = _download_state(lookups)
    room = MESSAGE_LIMIT - len(head) - len(tail) - 2  # the why is cut to fit, not the ways out
    if state and len(state) > room:
        state = state[:max(room - 4, 20)].rsplit(" ", 1)[0] + " ..."  # at a word, so nothing reads garbled
    return head + (f"{state[0].upper()}{state[1:]}{'' if state.endswith('...') else '.'} " if state else "") + tail


def require(*requests: Request) -> list[Found]:
    """The weights of every request (downloading what may be downloaded), or one error listing all missing."""
    lookups = [locate(r.key, r.explicit, network=True) for r in requests]
    missing = [lookup for lookup in lookups if lookup.found is None]
    if missing:
        raise WeightsMissingError(missing_message(missing))
    return [lookup.found for lookup in lookups]  # type: ignore[misc]


def _answers(place: Place) -> bool:
    try:
        check_reachable(place.url)
    except NetworkUnreachable as exc:
        place.status = f"could not be downloaded: no network ({exc})"
        return False
    return True


def require_or_downloadable(*requests: Request) -> None:
    """Return when every request is found here or has a download server that answers (the download itself is
    left to ``require``, after the cheaper checks of a run); else the one message. Downloads nothing."""
    lookups = [locate(r.key, r.explicit, network=False) for r in requests]
    missing = [lookup for lookup in lookups if lookup.found is None]
    helpable = not offline_reason() and all(lookup.explicit is None for lookup in missing)
    if missing and not (helpable and all(any(_answers(p) for p in lookup.places if p.remote) for lookup in missing)):
        raise WeightsMissingError(missing_message(missing))


def fetch_model(key: str, explicit: str | None = None) -> Path:
    """Path of one model's weights (see ``require``)."""
    return require(Request(key, explicit))[0].path


def local_file(path: str | os.PathLike, what: str, folder_ok: bool = False) -> Path:
    """A user-given weights path, checked to exist (a folder only where ``folder_ok``)."""
    p = Path(path).expanduser()
    if not (p.is_file() or (folder_ok and p.is_dir())):
        raise WeightsMissingError(f"{what} weights {'path' if folder_ok else 'file'} {p} does not exist")
    return p


def _clip_request(clip_source: str, clip_mode: str, clip_name: str) -> Request | None:
    """What a run's CLIP needs looked up: a model name, or a given path that does not exist (None: nothing)."""
    if clip_mode != "pretrained":
        return None
    if clip_source.lower() in ALIASES:
        return Request(clip_key(clip_source))
    if not Path(clip_source).expanduser().exists():
        return Request(clip_key(clip_name) if clip_name.lower() in ALIASES else "clip-vit-b-32", clip_source)
    return None


def resolve_model_files(clip_source: str, clip_mode: str, vgg_path: str | None, vgg_mode: str,
                        clip_name: str = "ViT-B/32", check_only: bool = False) -> tuple[str | None, str | None]:
    """Paths of the CLIP and VGG19 weights a run loads (None where random or a given path is loaded as is).

    A CLIP model name in pretrained mode and VGG19 without ``--vgg-weights`` are looked for together,
    and a given path that does not exist is reported with them, so a machine missing both gets one
    message naming both. ``clip_name`` labels a missing ``--clip-weights`` path. ``check_only``: only
    ``require_or_downloadable`` (nothing downloaded, (None, None) returned).
    """
    requests, slots = [], []
    clip = _clip_request(clip_source, clip_mode, clip_name)
    if clip is not None:
        requests.append(clip)
        slots.append("clip")
    if vgg_mode == "pretrained" or vgg_path:
        if not vgg_path:
            requests.append(Request("vgg19"))
            slots.append("vgg")
        elif not Path(vgg_path).expanduser().is_file():
            requests.append(Request("vgg19", vgg_path))
            slots.append("vgg")
    if check_only:
        require_or_downloadable(*requests)
        return None, None
    found = dict(zip(slots, (str(f.path) for f in require(*requests)))) if requests else {}
    return found.get("clip"), found.get("vgg")


def require_generate_files(clip_source: str, clip_mode: str, clip_name: str, vqgan_checkpoint: str | None,
                           vqgan_mode: str | None, check_only: bool = False) -> None:
    """CLIP and, for ``--generator vqgan`` (``vqgan_mode`` not None), the VQGAN checkpoint, looked for together
    so that one message names both when both are missing. A given checkpoint path is checked to exist."""
    requests = [r for r in (_clip_request(clip_source, clip_mode, clip_name),) if r is not None]
    if vqgan_mode is not None:
        if vqgan_checkpoint and vqgan_checkpoint.lower() not in ALIASES:
            if not Path(vqgan_checkpoint).expanduser().is_file():
                requests.append(Request("vqgan-f16-16384", vqgan_checkpoint))
        elif vqgan_mode == "pretrained":
            requests.append(Request("vqgan-f16-16384"))
    if requests:
        (require_or_downloadable if check_only else require)(*requests)


def require_run_files(config: object) -> None:
    """The weights a transfer-like ``config`` needs (CLIP, VGG19): found here, or a download server answers.
    Before torch is imported, so a machine without them and without network gets its message in seconds;
    the same lookup as ``runs.models.Models.load``, which downloads."""
    clip_weights, clip_model = getattr(config, "clip_weights", None), getattr(config, "clip_model", "ViT-B/32")
    weights = getattr(config, "weights", "pretrained")
    resolve_model_files(clip_weights or clip_model, "pretrained" if clip_weights else weights,
                        getattr(config, "vgg_weights", None), weights, clip_model, check_only=True)
