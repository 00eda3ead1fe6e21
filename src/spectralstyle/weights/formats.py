"""What kind of weights file a path holds, told from its first (and, for a zip, last) bytes only.

Why not ask the readers: ``tarfile.is_tarfile`` reads a file of zeros to its end looking for a member
(300 MB: 30 s, a 100 GB sparse file: hours), and ``torch.load`` reports a truncated file in words
that suggest unsafe loading. An interrupted download that preallocated its file leaves zeros, an
interrupted one that did not leaves a cut file, and a failed one may leave an HTML error page; each
of these is named here in one line, in well under a second, before any reader runs.

Kinds: ``safetensors`` (8-byte little-endian header length, then a JSON object), ``zip`` (``PK\\3\\4``,
``torch.save`` since 1.6 and ``torch.jit.save``; TorchScript is told apart later by its records),
``pickle`` (protocol 2-5, the legacy ``torch.save`` format) and ``tar`` (torch's pre-0.4 format).
"""

from __future__ import annotations

import json
from pathlib import Path

from spectralstyle.errors import WeightsMissingError

HEAD_BYTES = 4096
ZIP_MAGIC = b"PK\x03\x04"  # torch.serialization._is_zipfile tests these bytes
ZIP_END_MAGIC = b"PK\x05\x06"  # end of central directory record; zip64 files keep one too
ZIP_END_SEARCH = 65536 + 22  # the record is within the last 64 KiB + its own size (the comment's limit)
PICKLE_PROTO = 0x80
SAFETENSORS_MAX_HEADER = 100_000_000  # safetensors' own limit
TAR_MAGIC_OFFSET = 257
SAFETENSORS, ZIP, PICKLE, TAR = "safetensors", "zip", "pickle", "tar"


def incomplete(path: Path, why: str, what: str) -> WeightsMissingError:
    """The one line for a file that an interrupted or failed download left behind (never "delete it":
    the user decides what happens to a file they named)."""
    return WeightsMissingError(f"{path} is not a readable {what}: an incomplete download ({why}); download it "
                               "again (`spectralstyle weights download` on a machine with network) or give the whole "
                               "file")


def _safetensors_end(path: Path, head: bytes, size: int, what: str) -> int | None:
    """The size a safetensors file declares (header + tensors), None when ``head`` does not start one."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    length = int.from_bytes(head[:8], "little")
    if length > SAFETENSORS_MAX_HEADER:
        return None
    if 8 + length > size:
        raise incomplete(path, f"a safetensors header of {length} bytes in a file of {size}", what)
    with open(path, "rb") as f:
        f.seek(8)
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise incomplete(path, "its safetensors header is not complete JSON", what) from None
    if not isinstance(header, dict):
        return None
    ends = [entry.get("data_offsets", [0, 0])[-1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)]
    return 8 + length + max((e for e in ends if isinstance(e, int)), default=0)


def _has_zip_end(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(max(0, size - ZIP_END_SEARCH))
        return ZIP_END_MAGIC in f.read()


def sniff(path: Path, what: str = "weights file") -> str:
    """The kind of weights file ``path`` is (one of SAFETENSORS, ZIP, PICKLE, TAR), from a few KiB of it.

    Raises a one-line WeightsMissingError for an empty, zero-filled, cut or foreign file.
    """
    size = path.stat().st_size
    if size == 0:
        raise incomplete(path, "the file is empty", what)
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not any(head):
        why = f"its first {len(head):,} bytes are all zero, as a preallocated download leaves them"
        raise incomplete(path, why, what)
    if head.startswith(ZIP_MAGIC):
        if not _has_zip_end(path, size):
            raise incomplete(path, f"a zip archive of {size:,} bytes without its end record: cut short", what)
        return ZIP
    end = _safetensors_end(path, head, size, what)
    if end is not None:
        if end > size:
            raise incomplete(path, f"its safetensors header declares {end:,} bytes, the file has {size:,}", what)
        return SAFETENSORS
    if path.suffix == ".safetensors":
        raise WeightsMissingError(f"{path} is not a readable {what}: named .safetensors, it does not start with a "
                                  "safetensors header")
    if head[0] == PICKLE_PROTO and len(head) > 1 and 2 <= head[1] <= 5:
        return PICKLE
    if head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar":
        return TAR
    start = head.lstrip()[:15].lower()
    if start.startswith((b"<!doctype", b"<html", b"<?xml", b"{", b"error", b"not found")):
        raise incomplete(path, "it holds a text or web page, not weights: the download saved an error page", what)
    raise WeightsMissingError(f"{path} is not a readable {what}: no weights format starts with its bytes "
                              f"{head[:8].hex(' ')} (expected safetensors, a torch zip or a torch pickle)")


def check_given_files(config: object) -> None:
    """Sniff the weights files a config names (``clip_weights``, ``vgg_weights``, ``vqgan_checkpoint``)
    before torch is even imported, so a zero-filled or cut file is one line in well under a second.
    Folders and names of known models are left to the loaders; missing paths to the lookup."""
    for name, what in (("clip_weights", "CLIP checkpoint"), ("vgg_weights", "VGG19 state dict"),
                       ("vqgan_checkpoint", "VQGAN checkpoint")):
        value = getattr(config, name, None)
        if value and Path(value).expanduser().is_file():
            sniff(Path(value).expanduser(), what)
