"""Nothing overwritten silently: other settings or another image under the same name get their own name."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from spectralstyle.batch.manifest import read_manifest
from spectralstyle.batch.plan import make_plan
from spectralstyle.media.images import read_png_metadata
from test_batch import TINY, invoke, make_images, tiny_config

pytestmark = pytest.mark.usefixtures("shared_random_models")


def sidecars(out):
    return {p.name: json.loads(p.read_text()) for p in out.glob("*.json") if p.name != "manifest.json"}


def test_two_batches_with_other_steps_keep_both_results(tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png"])
    out = tmp_path / "out"
    base = ["batch", photos, "--text", "pop art", "--out", out, *TINY]
    first = invoke(*base)
    assert first.exit_code == 0, first.output
    second = invoke(*base, "--steps", "2")
    assert second.exit_code == 0, second.output
    config2 = tiny_config().replace(steps=2)
    records = sidecars(out)
    assert sorted(records) == ["a_pop-art_c2.json", f"a_pop-art_c2_{config2.digest()[:8]}.json"]
    assert "write beside results of other settings" in second.output
    assert records["a_pop-art_c2.json"]["config"]["steps"] == 1  # the first result is untouched
    assert records[f"a_pop-art_c2_{config2.digest()[:8]}.json"]["config"]["steps"] == 2
    # the name is recorded in the job state and the manifest, and a rerun finds the result there
    plan2 = make_plan(photos, ["pop art"], ["c2"], config2, out)
    state = read_manifest(out)[plan2[0].job_id]
    assert state["stem"] == plan2[0].stem == f"a_pop-art_c2_{config2.digest()[:8]}"
    assert json.loads((out / "manifest.json").read_text())["jobs"][0]["stem"] == state["stem"]
    # the first batch's finished job stays in the manifest: it is the union of every finished job in --out
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"finished": 2}
    again = invoke(*base, "--steps", "2")
    assert again.exit_code == 0 and "1 skipped" in again.output, again.output
    # --overwrite puts the run under the plain name, replacing the other result
    replaced = invoke(*base, "--steps", "3", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "a_pop-art_c2.json").read_text())["config"]["steps"] == 3
    assert len(sidecars(out)) == 2
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"finished": 2, "replaced": 1}


def test_transfer_png_then_jpg_of_the_same_stem_keeps_both(tmp_path, content_image):
    jpg = tmp_path / "photo.jpg"
    Image.open(content_image).convert("RGB").save(jpg)
    out = tmp_path / "out"
    args = ["pop art", "--out", out, *TINY]
    assert invoke("transfer", content_image, *args).exit_code == 0
    second = invoke("transfer", jpg, *args)
    assert second.exit_code == 0, second.output
    contents = sorted(r["content"] for r in sidecars(out).values())
    assert contents == sorted([str(content_image.resolve()), str(jpg.resolve())])
    assert "holds the result of other settings or another image" in second.output
    assert read_png_metadata(out / "photo_pop-art_c2.png")["content"] == str(content_image.resolve())
    assert invoke("transfer", jpg, *args, "--overwrite").exit_code == 0
    assert read_png_metadata(out / "photo_pop-art_c2.png")["content"] == str(jpg.resolve())


def test_batch_into_its_own_content_folder_does_not_eat_its_results(tmp_path):
    photos = make_images(tmp_path / "photos", ["a.png"])
    args = ["batch", photos, "--text", "pop art", "--out", photos, *TINY]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert (photos / "a_pop-art_c2.png").is_file()
    rerun = invoke(*args)
    assert rerun.exit_code == 0, rerun.output
    assert "batch: 1 jobs" in rerun.output and "1 skipped" in rerun.output
    assert "1 image(s)" in rerun.output and "written by spectralstyle" in rerun.output
    assert not list(photos.glob("a_pop-art_c2_pop-art*"))  # no result of a result
    assert [j.name for j in make_plan(photos, ["pop art"], ["c2"], tiny_config())] == ["a.png"]
