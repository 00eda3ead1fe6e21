"""Writes that fail (full disks, torch's writer), files in the way, planted links and what killed runs left."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
import torch
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media import files
from spectralstyle.media.files import TEMP_MARK, atomic_path, ensure_writable_dir, open_for_append

TORCH_FULL_DISK = "[enforce fail at inline_container.cc:603] . unexpected pos 3145728 vs 3145664"


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 3 MB tmpfs (root only; skipped elsewhere, the stand-in tests below cover the same rule)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_torch_save_on_a_full_disk_is_one_line_naming_the_file(tiny_disk):
    target = tiny_disk / ".checkpoints" / "photo_pop-art_c2.pt"
    with pytest.raises(SpectralStyleError) as info:
        with atomic_path(target) as tmp:
            torch.save({"w": torch.zeros(2_000_000)}, tmp)  # 8 MB into 3 MB
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert list(target.parent.iterdir()) == []  # no partial file, no stray temporary


@pytest.mark.parametrize("failure", [RuntimeError(TORCH_FULL_DISK), OSError(errno.ENOSPC, "No space left on device")])
def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, failure):
    """The stand-in for a full disk: the writer raises what torch's writer or the OS raise when the disk is full."""
    target = tmp_path / "result.png"
    with pytest.raises(SpectralStyleError) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise failure
    assert str(target) in str(info.value) and "could not write" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_other_runtime_errors_pass_through(tmp_path):
    """An error of the work inside the block (out of memory, a bug) is not a write failure."""
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        with atomic_path(tmp_path / "x.mp4"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_the_way_is_one_line_before_writing(tmp_path):
    (tmp_path / "result.png").mkdir()
    with pytest.raises(SpectralStyleError, match="is a folder"):
        with atomic_path(tmp_path / "result.png"):
            raise AssertionError("the block must not run")


def test_a_checkpoint_folder_is_refused_before_the_work(tmp_path):
    from spectralstyle.runs.checkpoints import Checkpointer

    (tmp_path / ".checkpoints" / "key.pt").mkdir(parents=True)  # checkpoints are named by run key
    with pytest.raises(SpectralStyleError, match="is a folder where this run's checkpoint should be"):
        Checkpointer(tmp_path, "photo_pop-art_c2", "hash", "key")


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = files._host()
    ckpt = tmp_path / ".checkpoints"
    ckpt.mkdir()
    stale = ckpt / f".photo.pt{TEMP_MARK}{host}-{dead.pid}-abcd1234.tmp.pt"
    alive = ckpt / f".other.pt{TEMP_MARK}{host}-{os.getpid()}-abcd1234.tmp.pt"
    foreign = tmp_path / f".x.png{TEMP_MARK}othernode-{dead.pid}-abcd1234.tmp.png"  # another host, fresh
    old_style = ckpt / ".photo.pt.k3j4h5g6.tmp.pt"
    kept = tmp_path / "photo_pop-art_c2.png"
    for path in (stale, alive, foreign, old_style, kept):
        path.write_bytes(b"x")
    os.utime(old_style, (0, 0))  # untouched for decades: stale whoever wrote it
    ensure_writable_dir(tmp_path)  # what every run does first
    assert not stale.exists() and not old_style.exists()
    assert alive.exists() and foreign.exists() and kept.exists()


def test_the_log_file_is_not_opened_through_a_symlink(tmp_path):
    from spectralstyle.cli.common import setup_log_file

    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "spectralstyle.log").symlink_to(outside)
    with pytest.raises(SpectralStyleError, match="symbolic link"):
        setup_log_file(out)
    assert outside.read_text() == "keep\n"
    with open_for_append(tmp_path / "plain.log") as f:  # a plain file is appended to as before
        f.write("line\n")
    assert (tmp_path / "plain.log").read_text() == "line\n"


def test_images_are_checked_from_their_header(tmp_path):
    from spectralstyle.media.images import check_image

    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path)
    assert check_image(path) == ((64, 48), "RGB")
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:-30])  # the last chunks cut off
    damaged = tmp_path / "damaged.png"
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the image data: its CRC no longer matches
    damaged.write_bytes(bytes(data))
    for bad in (cut, damaged, tmp_path / "missing.png"):
        with pytest.raises(SpectralStyleError) as info:
            check_image(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_generate_and_train_check_free_space(tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from spectralstyle.cli.app import app

    image = tmp_path / "a.png"
    Image.new("RGB", (64, 48)).save(image)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    for args in (["generate", "a red apple", "--size", "64x64", "--steps", "1"],
                 ["train", "pop art", "--images", str(image), "--size", "64x48", "--crop-size", "32", "--steps", "1"]):
        flags = ["--weights", "random", "--device", "cpu", "--out", str(tmp_path / "o")]
        result = CliRunner().invoke(app, [*args, *flags])
        assert result.exit_code == 2 and "not enough free space" in result.stderr, result.output
    assert not list((tmp_path / "o").glob("*.png"))


def test_train_on_a_disk_full_at_the_model_leaves_no_preview(tmp_path, monkeypatch):
    """The model's torch.save fails as on a full disk (torch's own error text): one line, no preview, no sidecar."""
    from typer.testing import CliRunner

    from spectralstyle.cli.app import app
    from spectralstyle.runs import outputs

    image = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (120, 40, 200)).save(image)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format", "").startswith("spectralstyle-stylenet"):
            real_save(obj, f, *args, **kwargs)  # the bytes are written, then the writer fails at the end
            raise RuntimeError(TORCH_FULL_DISK)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(outputs.torch, "save", full_disk)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["train", "pop art", "--images", str(image), "--size", "64x48", "--crops", "2",
                                      "--crop-size", "32", "--steps", "1", "--preview", "1", "--weights", "random",
                                      "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # beside the progress bar
    assert len(errors) == 1 and "could not write" in errors[0] and ".stylenet.pt" in errors[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["spectralstyle.log"]
    assert not [p for p in out.rglob("*.tmp*")]
