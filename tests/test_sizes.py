"""Working and output sizes (issue 19, item 1): --size N keeps the photo's aspect ratio, --size WxH is exact,
--output-size gives the photo's own size by default. Pure functions: no model runs here."""

from __future__ import annotations

import pytest
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import TransferConfig, resolve_config, resolve_settings
from spectralstyle.sizes import NATIVE_CAP, fit_working_size, output_dimensions


@pytest.mark.parametrize("content, box, expected", [
    ((160, 120), (64, 64), (64, 48)),   # the acceptance size
    ((120, 160), (64, 64), (48, 64)),   # portrait
    ((4000, 3000), (512, 512), (512, 384)),
    ((1920, 1080), (512, 512), (512, 288)),
    ((5000, 100), (512, 512), (512, 16)),  # never below 16 px
    ((50, 40), (512, 512), (512, 408)),  # a long side of N, also above the photo's own (the paper upscales too)
])
def test_long_side_n_follows_the_aspect_in_multiples_of_8(content, box, expected):
    size = fit_working_size(content, box)
    assert size == expected and all(side % 8 == 0 for side in size)
    aspect = content[0] / content[1]
    assert abs(size[0] / size[1] - aspect) <= 8 / min(size) * aspect or min(size) == 16  # within one rounding step


def test_size_n_resolves_per_photo_and_again_to_the_same():
    config = resolve_config(size="64", crop_size=32)
    long_side = config.for_content((160, 120))
    assert (long_side.width, long_side.height, long_side.keep_aspect) == (64, 48, True)
    assert long_side.for_content((160, 120)) == long_side  # idempotent: run_job may resolve again (same hash)
    assert config.for_content((120, 160)).size == (48, 64) and config.for_content((64, 64)) == config
    # the exact size stays exact whatever the photo's shape
    assert resolve_config(size="64x64", crop_size=32).for_content((160, 120)).size == (64, 64)


def test_output_sizes():
    assert output_dimensions("auto", (160, 120), (64, 48)) == ((160, 120), None)
    assert output_dimensions("working", (160, 120), (64, 48)) == ((64, 48), None)
    assert output_dimensions("native", (160, 120), (64, 48)) == ((160, 120), None)
    assert output_dimensions("80", (160, 120), (64, 48)) == ((80, 60), None)
    size, note = output_dimensions("auto", (6000, 4000), (512, 344))
    assert size == (NATIVE_CAP, 2731) and "--output-size native" in note and "6000x4000" in note
    assert output_dimensions("native", (6000, 4000), (512, 344)) == ((6000, 4000), None)  # explicit: no cap
    assert TransferConfig().output_note((6000, 4000)) == note and TransferConfig().output_note((4096, 10)) is None


@pytest.mark.parametrize("changes, message", [
    ({"output_size": "big"}, "--output-size must be auto, native, working or a long side"),
    ({"output_size": "0"}, "--output-size must be"),
    ({"size": "64x"}, "is neither N"),
])
def test_bad_sizes_are_one_line(changes, message):
    with pytest.raises(SpectralStyleError, match=message):
        resolve_config(**changes)


def test_a_long_thin_photo_whose_short_side_is_below_the_crop_size_runs_with_crops_of_its_short_side():
    assert TransferConfig().for_content((4000, 300)).crop_size == 40
    assert "crops of 40 px, the short side of the 512x40 working size" in TransferConfig().crop_note(
        TransferConfig().for_content((4000, 300)))


def test_presets_default_keeps_the_aspect_paper_is_the_exact_square(tmp_path):
    default, paper = TransferConfig(), resolve_settings(TransferConfig, "paper")
    assert (default.width, default.height, default.keep_aspect, default.output_size) == (512, 512, True, "auto")
    assert (paper.width, paper.height, paper.keep_aspect, paper.output_size) == (512, 512, False, "working")
    assert paper.replace(keep_aspect=True, output_size="auto") == default  # nothing else differs from the defaults
    assert paper.for_content((640, 480)) == paper
    assert default.for_content((640, 480)).size == (512, 384)
    quick = resolve_settings(TransferConfig, "quick")
    assert quick.keep_aspect and quick.for_content((640, 480)).size == (256, 192)
    yaml = tmp_path / "old.yaml"
    yaml.write_text("width: 48\nheight: 40\n")  # width and height one by one stay exact
    assert resolve_settings(TransferConfig, yaml, crop_size=32).for_content((160, 120)).size == (48, 40)


def test_flag_beats_the_yaml_size(tmp_path):
    yaml = tmp_path / "square.yaml"
    yaml.write_text("size: 64x64\ncrop_size: 32\n")
    assert resolve_settings(TransferConfig, yaml, size="64").for_content((160, 120)).size == (64, 48)
    assert resolve_settings(TransferConfig, yaml).for_content((160, 120)).size == (64, 64)


def test_oriented_size_turns_exif_rotated_photos(tmp_path):
    from spectralstyle.media.images import open_rgb, oriented_size

    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (160, 120), "red").save(path, exif=exif)
    assert oriented_size(path) == open_rgb(path).size == (120, 160)


def test_crops_that_fit_the_size_box_but_not_the_photo_shrink_to_its_short_side():
    """`demo --size 128` on the 512x341 sample: a 128x88 working size, so the default 128-px crops become 88
    (with a note, and in the record), and the same photo gives the same settings again."""
    box = resolve_settings(TransferConfig, size="128")
    fitted = box.for_content((512, 341))
    assert (fitted.size, fitted.crop_size) == ((128, 88), 88) and fitted.for_content((512, 341)) == fitted
    assert box.crop_note(fitted) == ("crops of 88 px, the short side of the 128x88 working size (128 does not "
                                         "fit; a larger --size keeps them)")
    assert box.crop_note(box.for_content((512, 512))) is None and box.for_content((512, 512)).crop_size == 128
    assert TransferConfig().for_content((512, 341)).digest() == TransferConfig().for_content((512, 341)).replace(
        crop_size=128).digest()  # crops that fit are untouched: the hashes of earlier results stay
    with pytest.raises(SpectralStyleError, match="crop size 128 is larger than the short side of the working size "
                                                 "128x88"):
        resolve_settings(TransferConfig, size="128x88")  # an exact size keeps the crops asked for, or says why not
