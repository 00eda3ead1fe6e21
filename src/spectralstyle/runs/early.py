"""Checks that need neither torch nor a model, run before either is imported, so that a mistake (a missing
image, an empty text, an unwritable ``--out``) is one line within a second instead of after seconds of
imports. The thorough checks (decoding, CLIP's tokenizer) follow later, still before any model loads.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from spectralstyle.errors import SpectralStyleError, shorten
from spectralstyle.settings import MAX_TEXT_CHARS, MAX_TEXT_WORDS


def check_image_file(path: Path, folder_hint: str = "") -> None:
    """``path`` is an existing image file whose header PIL reads (nothing is decoded)."""
    p = Path(path)
    if p.is_dir():
        raise SpectralStyleError(f"{p} is a folder, not an image{folder_hint}")
    if not p.exists():
        raise SpectralStyleError(f"image {p} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # too large: the full check says so
            with Image.open(p):
                pass
    except Image.DecompressionBombError:
        return  # named with its size by the full check (media.images.open_rgb)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SpectralStyleError(f"{p} is not a readable image ({exc.__class__.__name__})") from None


def is_image(path: Path) -> bool:
    """Whether ``path`` is an image file whose header PIL reads (``check_image_file`` passes)."""
    try:
        check_image_file(path)
    except SpectralStyleError:
        return False
    return True


def check_text(text: str, what: str = "the style text", length: bool = True) -> None:
    """Not empty, and (``length``) not plainly longer than CLIP's 77 tokens (each word is at least one token)."""
    if not text or not text.strip():
        raise SpectralStyleError(f"{what} is empty")
    if not length:
        return
    words = len(text.split())
    if words > MAX_TEXT_WORDS or len(text) > MAX_TEXT_CHARS:
        raise SpectralStyleError(f"{what} {shorten(repr(text))} is too long for CLIP: {words} words, {len(text)} "
                                 f"characters (CLIP reads 77 tokens, about {MAX_TEXT_WORDS} words with a template)")


def check_prompt(spec: str) -> None:
    """A ``generate`` prompt ('a|b:0.5'): not empty, and no part plainly longer than CLIP reads (a 100 kB part
    is refused here, before CLIP's tokenizer would spend seconds on it)."""
    check_text(spec, "the prompt", length=False)
    for part in spec.split("|"):
        if len(part) > MAX_TEXT_CHARS:
            raise SpectralStyleError(f"prompt {shorten(repr(part))} is too long for CLIP: {len(part)} characters "
                                     f"(CLIP reads 77 tokens, about {MAX_TEXT_WORDS} words)")


def check_out_dir(out: Path) -> Path:
    """``out`` is a writable folder, or can be created as one; nothing is created yet (a run that fails its
    later checks leaves no empty folder). The real write probe follows when the run starts writing."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SpectralStyleError(f"output folder {folder} is not a folder (a file is in the way)")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpectralStyleError(f"cannot create output folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" ({existing} is not writable)"
        raise SpectralStyleError(f"cannot write in output folder {folder}: permission denied{where}")
    return folder
