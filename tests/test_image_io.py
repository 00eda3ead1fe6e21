"""Reading images the way users have them: 16-bit, rotated by EXIF, in folders with hidden files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import ensure_writable_dir
from spectralstyle.media.images import list_images, load_image, open_rgb, slugify


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert image.mean().item() == pytest.approx(0.5, abs=0.01)  # PIL's own convert gives 1.0 everywhere
    assert image.min().item() == 0.0 and image.max().item() == 1.0


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 40), (200, 10, 10))
    img.paste((10, 200, 10), (0, 0, 30, 40))  # left half green
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write portrait photos
    path = tmp_path / "portrait.jpg"
    img.save(path, exif=exif)
    shown = open_rgb(path)
    assert shown.size == (40, 60)
    r, g, _ = shown.getpixel((20, 5))
    assert g > r  # the green half is on top once rotated


def test_list_images_skips_hidden_files_and_takes_gifs(tmp_path):
    for name in ("b.jpg", "._b.jpg", ".hidden.png", "c.gif", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["b.jpg", "c.gif"]


def test_output_folder_checks(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SpectralStyleError, match="not a folder"):
        ensure_writable_dir(afile)
    with pytest.raises(SpectralStyleError, match="not a folder"):
        ensure_writable_dir(afile / "sub")
    assert ensure_writable_dir(tmp_path / "new" / "deep").is_dir()


def test_slugs_keep_different_prompts_apart():
    assert slugify("Pop Art!") == "pop-art" and slugify("Café crème") == "cafe-creme"  # accents fold, no hash
    lossy = [slugify(t) for t in ("Ukiyo-e 浮世絵", "Ukiyo-e", "🎨🔥", "🌊", "!!!", "???")]
    assert len(set(lossy)) == len(lossy)
    assert lossy[0].startswith("ukiyo-e-") and lossy[1] == "ukiyo-e" and lossy[2].startswith("text-")
    assert slugify("🎨🔥") == slugify("🎨🔥")  # stable
