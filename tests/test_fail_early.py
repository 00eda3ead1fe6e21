"""Fail before the work, with one line: huge images, a full disk, contrast 0, typos in configs; and the
messages a user reads (float and tiny inputs, interrupted batches, out of memory in apply)."""

from __future__ import annotations

import errno
import io
import os
import signal
import struct
import subprocess
import time
import zlib
from collections import namedtuple

import numpy as np
import pytest
import torch
import typer
from PIL import Image

from spectralstyle.cli.common import one_line_errors
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import atomic_path, open_rgb
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.runs import preflight
from spectralstyle.runs.outputs import save_stylenet
from test_batch import BIN, TINY, invoke, make_images


def png_header_only(path, width, height):
    """A PNG that declares ``width`` x ``height`` (1-bit grey) and holds no pixel data: huge, yet 45 bytes."""
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert errors == [lines[-1]] and lines[-1].startswith("error: "), result.output  # one line, the last
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture()
def no_model_loading(monkeypatch):
    """These checks must fire before any model is loaded."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the check")
    monkeypatch.setattr("spectralstyle.runs.models.Models.load", refuse)


def test_images_over_pil_limit_are_read_and_over_a_gigapixel_one_line(tmp_path, no_model_loading):
    # 15000x15000 (225 MP) was a DecompressionBombError traceback; now its size is accepted, and this
    # header-only file fails as what it is, an unreadable image
    big = png_header_only(tmp_path / "big.png", 15000, 15000)
    line = one_line_error(invoke("transfer", big, "pop art", "--out", tmp_path / "out", *TINY), "not a readable image")
    assert "Decompression" not in line
    huge = png_header_only(tmp_path / "huge.png", 40000, 40000)  # 1.6 GP: beyond what the tool scales down
    one_line_error(invoke("transfer", huge, "pop art", "--out", tmp_path / "out", *TINY), "1,600 megapixels",
                   "gigapixel")
    between = png_header_only(tmp_path / "between.png", 40000, 30000)  # PIL's warning zone (1-2x its limit)
    with pytest.raises(Exception, match="1,200 megapixels"):
        open_rgb(between)


@pytest.mark.parametrize("command", ["transfer", "batch"])
def test_contrast_zero_is_refused(tmp_path, command, content_image, no_model_loading):
    target = [content_image, "pop art"] if command == "transfer" else [content_image.parent, "--text", "pop art"]
    result = invoke(command, *target, "--out", tmp_path / "out", *TINY, "--contrast", "0")
    one_line_error(result, "contrast must be positive", "flat grey")


def test_unknown_config_key_suggests_the_nearest(tmp_path, content_image, no_model_loading):
    config = tmp_path / "settings.yaml"
    config.write_text("crop-size: 32\nstepz: 2\ncolour: red\n")
    line = one_line_error(invoke("transfer", content_image, "pop art", "--config", config, *TINY))
    assert "colour, crop-size (did you mean crop_size?), stepz (did you mean steps?)" in line


def test_not_enough_disk_space_fails_before_loading_models(tmp_path, content_image, monkeypatch, no_model_loading):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1_000_000, 1_000_000))
    out = tmp_path / "out"
    one_line_error(invoke("transfer", content_image, "pop art", "--out", out, *TINY), f"free space in {out}",
                   "976.6 KB free")
    photos = make_images(tmp_path / "photos", ["a.png", "b.png"])
    one_line_error(invoke("batch", photos, "--text", "x", "--out", out, *TINY), "the 2 result(s) to run")
    assert not list(out.glob("*.png"))


def test_checkpoint_estimate_matches_a_real_checkpoint():
    """StyleNet weights + Adam's two moments, float32: what torch.save writes, give or take its framing."""
    net = StyleNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(1, 3, 16, 16)).mean().backward()
    optimizer.step()
    buffer = io.BytesIO()
    torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    assert preflight.checkpoint_bytes() == pytest.approx(buffer.tell(), rel=0.05)


def test_disk_full_error_names_the_file(tmp_path, capsys):
    target = tmp_path / "result.png"
    with pytest.raises(SpectralStyleError) as info:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write on a full disk raises
    assert str(target) in str(info.value) and "No space left on device" in str(info.value)

    def write():
        with atomic_path(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(typer.Exit) as exit_info:
        one_line_errors(write)  # what the app does around every command
    assert exit_info.value.exit_code == 2
    assert f"error: could not write {target}: No space left on device" in " ".join(capsys.readouterr().err.split())
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_float_images_are_scaled_not_black(tmp_path):
    values = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    path = tmp_path / "float.tif"
    Image.fromarray(values, "F").save(path)
    rgb = np.asarray(open_rgb(path))
    expected = np.clip(np.rint(values.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    assert rgb.shape == (24, 32, 3) and (rgb == expected[..., None]).all() and rgb.max() == 255
    hdr = tmp_path / "hdr.tif"
    Image.fromarray(values * 1000 - 200, "F").save(hdr)  # another range: stretched to 0-255
    stretched = np.asarray(open_rgb(hdr))[..., 0]
    assert stretched.min() == 0 and stretched.max() == 255
    notes = preflight.input_notes([path, hdr], (128, 128))
    assert len(notes) == 2  # once per kind, however many inputs: small (24x32 < 128x128 / 8) and float
    assert notes[0].startswith("float.tif (32x24) and 1 more are more than 8x smaller than the working size 128x128")
    assert notes[1].startswith("float.tif and 1 more: 32-bit float pixels")
    assert preflight.input_notes([path], (32, 32)) == [notes[1].replace(" and 1 more", "")]


def test_apply_out_of_memory_names_max_side(tmp_path, content_image, monkeypatch):
    model = tmp_path / "m.stylenet.pt"
    save_stylenet(StyleNet(), model, {"config": {"contrast": 1.5}})

    def out_of_memory(self, image):
        raise MemoryError()  # what the CPU allocator raises for an image too large for RAM

    monkeypatch.setattr(StyleNet, "stylize", out_of_memory)
    line = one_line_error(invoke("apply", model, content_image, "--out", tmp_path / "out"), "--max-side 48")
    assert "--size" not in line and "--crops" not in line


def test_interrupted_batch_says_interrupted_once(tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png"])
    out = tmp_path / "out"
    args = [str(BIN / "spectralstyle"), "batch", str(photos), "--text", "pop art", "--out", str(out), *TINY,
            "--steps", "100000", "--save-every", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob("snapshots/*.png")):  # in the optimisation
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    line = " ".join(stderr.split())
    assert line.count("interrupted at step") == 1 and "interrupted: interrupted" not in line, stderr
    assert "run the same command to resume" in line, stderr
