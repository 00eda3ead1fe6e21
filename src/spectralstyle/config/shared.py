"""The pieces several settings declarations share: rules of single values (checked before torch is
imported), bounds, and the declarations used by more than one settings class (band, seed, weights,
device, the result controls). ``settings.py`` declares the settings with them."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Literal

from spectralstyle.bands import DEFAULT_BAND, Band
from spectralstyle.config.fields import setting

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

MAX_SEED = 2**63 - 1  # torch.manual_seed's range, with room for derived seeds
MAX_STEPS = 10**7  # a bound, so that a typo like 99999999999999999999999 is named as a bad --steps
MIN_TRANSFER_SIDE = 16  # VGG's relu5_2 needs 16 px; the StyleNet bottleneck needs 2x2 pixels
MAX_TEXT_WORDS = 60  # CLIP reads 77 tokens, templates take about 10; a word is at least one token
MAX_TEXT_CHARS = 77 * 32  # CLIP's longest token is 32 characters: a longer text is certainly too long


# --- rules of single settings (pure Python: they run before torch is imported) -----------------------
def _band_rule(value: str) -> str | None:
    try:
        Band.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _seed_rule(value: int) -> str | None:
    return None if 0 <= value <= MAX_SEED else f"seed must be between 0 and {MAX_SEED}, got {value}"


def device_rule(value: str) -> str | None:
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (whether the device exists is known only to torch)."""
    name = value.strip().lower()
    if name in DEVICE_CHOICES or re.fullmatch(r"cuda:\d{1,4}", name):
        return None
    from spectralstyle.errors import shorten

    return f"unknown device {shorten(repr(value))}; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)"


def text_rule(name: str) -> Any:
    """A text that CLIP must read: not empty, and not plainly longer than CLIP's 77 tokens."""
    def rule(value: str) -> str | None:
        if not value.strip():
            return f"{name} must not be empty"
        words = len(value.split())
        if words > MAX_TEXT_WORDS or len(value) > MAX_TEXT_CHARS:
            return (f"{name} is too long for CLIP: {words} words, {len(value)} characters (CLIP reads 77 tokens, "
                    f"about {MAX_TEXT_WORDS} words with a template)")
        return None
    return rule


def weights_file_rule(name: str, folders: bool) -> Any:
    """Weights of your own given as a folder where only a file will do: named now, not after minutes.

    Whether the file exists is checked where it is read (a sidecar may name a file of another machine)."""
    def rule(value: str) -> str | None:
        if not folders and Path(value).expanduser().is_dir():
            return (f"--{name.replace('_', '-')} {value} is a folder, not a weights file; give the file itself "
                    "(.pth or .safetensors)")
        return None
    return rule


# --- the settings shared by several commands (declared once, used by several classes) -----------------
def band_setting() -> Any:
    return setting(DEFAULT_BAND, "Kept frequencies: c1, c2, c3, none (plain CLIP), or indices like '4-7,16-49'.",
                   short="-b", rule=_band_rule)


def seed_setting() -> Any:
    return setting(1234, "Random seed; the same seed repeats a run on the same device.", minimum=0, maximum=MAX_SEED,
                   rule=_seed_rule)


def steps_setting(default: int, help: str) -> Any:
    return setting(default, help, minimum=1, maximum=MAX_STEPS)


def weights_setting() -> Any:
    return setting("pretrained", "pretrained (found or downloaded once, then cached) or random (no files; for tests).",
                   what="weights mode")


def clip_model_setting() -> Any:
    return setting("ViT-B/32", "CLIP architecture: ViT-B/32 (the method's), ViT-B/16 or ViT-L/14.")


CLIP_WEIGHTS_HELP = ("CLIP weights of your own: OpenAI's .pt, an OpenAI/open_clip/transformers state dict (.pt, .bin, "
                     ".safetensors) or a transformers/open_clip model folder; default: the first place that has "
                     "them (see `spectralstyle weights list`).")
VGG_WEIGHTS_HELP = ("torchvision VGG19 state dict of your own (.pth or .safetensors); default: the first place that "
                    "has it (see `spectralstyle weights list`).")


def clip_weights_setting() -> Any:
    return setting(None, CLIP_WEIGHTS_HELP, rule=weights_file_rule("clip_weights", folders=True))


def vgg_weights_setting() -> Any:
    return setting(None, VGG_WEIGHTS_HELP, rule=weights_file_rule("vgg_weights", folders=False))


def device_setting(default: str | None = "auto") -> Any:
    return setting(default, "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.", rule=device_rule)


def save_every_setting() -> Any:
    return setting(0, "Write a snapshot every N steps (0 = never).", minimum=0, note="(0: no snapshots)")


def contrast_setting(default: float | None, help: str) -> Any:
    return setting(default, help, minimum=0, exclusive_minimum=True,
                   note="(1 = unchanged; 0 would be a flat grey picture)")


PreserveColor = Literal["off", "luminance", "histogram"]
PRESERVE_COLOR_MODES: tuple[str, ...] = typing.get_args(PreserveColor)
AVOID_TEXT_PROMPT = "written text, letters, words"
AVOID_TEXT_WEIGHT = -0.5
"""``--avoid-text`` adds this negative prompt (pixray's ``textoff`` idea, on top of the band)."""


# --- the controls of a result (transfer, batch, train, video and apply): declared once, neutral by default ---
def preserve_color_setting() -> Any:
    return setting("off", "Keep the photo's colours: luminance (the style's brightness on the photo's chroma, "
                   "YCbCr; also the flag given alone) or histogram (the result's colour histogram matched to the "
                   "photo's).", what="colour mode", neutral=True, bare="luminance")


def mask_setting() -> Any:
    return setting(None, "Grey-level image (any size, resized to the photo): white = style, black = photo, "
                   "grey blends.", neutral=True, what="mask", reads_file=True)


def mask_feather_setting() -> Any:
    return setting(0.0, "Soften the mask's edge over about this many pixels (0 = as drawn).", minimum=0, neutral=True)


def invert_mask_setting() -> Any:
    return setting(False, "Style where the mask is black instead of white.", neutral=True)


def strength_setting() -> Any:
    return setting(1.0, "Blend of photo (0) and stylised result (1).", minimum=0, maximum=1, neutral=True)


def min_confidence_setting() -> Any:
    return setting(0.6, "Ignore OCR boxes read with lower confidence (0-1).", minimum=0, maximum=1)
