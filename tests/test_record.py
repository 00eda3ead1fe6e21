"""The run record (spectralstyle.record): one typed record with its JSON and PNG-chunk forms, and the one
reader that naming, batch, evaluate and analyze use. Pure Python, no models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from spectralstyle.media.files import write_json
from spectralstyle.media.images import METADATA_KEY, read_png_metadata, save_png
from spectralstyle.record import (
    PNG_TEXT_KEY,
    RecordError,
    RunRecord,
    find_record,
    png_record,
    read_record,
    sidecar_path,
)
from spectralstyle.runs.naming import FOREIGN, existing_record, free_stem

TRANSFER_SIDECAR = {  # the keys a transfer sidecar has had since before the record existed
    "content": "/data/photo.jpg", "text": "pop art", "band": "c2", "config_hash": "ab" * 8,
    "config": {"steps": 2, "size": [64, 48], "seed": 7, "precision": "fp32", "weights": "random",
               "clip_model": "ViT-B/16", "band": "c2"},
    "environment": {"torch": "2.x"}, "started": "2026-01-01T00:00:00+00:00", "run_control": {"checkpoint_every": 0},
    "losses": [{"step": 1, "total": 1.5}], "steps_done": 2, "wall_time_s": 0.5, "status": "finished",
    "output": "/out/photo_pop-art_c2.png", "resumed_from_step": None,
}


def test_an_old_sidecar_reads_into_typed_fields_and_writes_back_unchanged():
    record = RunRecord.from_dict(TRANSFER_SIDECAR)
    assert (record.text, record.band, record.content, record.status) == ("pop art", "c2", "/data/photo.jpg", "finished")
    assert record.kind is None and record.steps_done == 2 and record.extra["run_control"] == {"checkpoint_every": 0}
    assert record.to_dict() == TRANSFER_SIDECAR  # every key, including an explicit null in extra
    assert json.loads(record.to_json()) == TRANSFER_SIDECAR
    assert RunRecord.from_json(record.to_json()) == record


def test_generation_keeps_its_explicit_null_content_and_unset_fields_stay_out():
    record = RunRecord(kind="generation", text="a lighthouse", band="c1", extra={"generator": "fourier"})
    data = record.to_dict()
    assert "content" in data and data["content"] is None  # generate's sidecars always said "content": null
    assert "model" not in data and "losses" not in data and data["generator"] == "fourier"


def test_png_chunk_round_trip_is_what_save_png_embeds(tmp_path):
    record = RunRecord.from_dict(TRANSFER_SIDECAR)
    key, text = record.to_png_text()
    assert key == PNG_TEXT_KEY == METADATA_KEY
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "r.png", record.to_dict())
    assert Image.open(path).info[METADATA_KEY] == text  # byte for byte the chunk save_png writes
    assert png_record(path) == record and read_png_metadata(path) == TRANSFER_SIDECAR


@pytest.mark.parametrize("chunk", ["[]", "3", "not json", ""])
def test_a_chunk_that_is_not_an_object_is_no_record(tmp_path, chunk):
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_TEXT_KEY, chunk)
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png", pnginfo=info)
    assert png_record(tmp_path / "x.png") is None and find_record(tmp_path / "x.png") is None


def test_the_sidecar_wins_over_the_chunk_and_names_its_source(tmp_path):
    image = save_png(Image.new("RGB", (8, 8)), tmp_path / "r.png", {"text": "from the chunk"})
    assert find_record(image)[0].text == "from the chunk"
    write_json({"text": "from the sidecar"}, tmp_path / "r.json")
    record, source = find_record(image)
    assert record.text == "from the sidecar" and source == f"sidecar {tmp_path / 'r.json'}"


@pytest.mark.parametrize("text, why", [("[]", "is not a JSON object (it is a list)"), ("{", "is not valid JSON"),
                                       ("null", "is not a JSON object (it is null)")])
def test_a_bad_sidecar_is_one_line_or_no_record(tmp_path, text, why):
    image = save_png(Image.new("RGB", (8, 8)), tmp_path / "r.png", {"text": "t"})
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(RecordError, match=re.escape(why)) as caught:
        find_record(image)
    assert "\n" not in str(caught.value) and str(tmp_path / "r.json") in str(caught.value)
    assert read_record(image) is None  # the tolerant form: no record, no traceback


def test_sidecars_of_models_and_videos():
    assert sidecar_path(Path("o/pop-art_c2.stylenet.pt")) == Path("o/pop-art_c2.json")
    assert sidecar_path(Path("o/clip_pop-art_c2.mp4")) == Path("o/clip_pop-art_c2.json")


def test_naming_treats_a_list_sidecar_as_foreign_and_moves_aside(tmp_path, content_image):
    save_png(Image.new("RGB", (8, 8)), tmp_path / "photo_pop-art_c2.png", {"text": "x"})
    (tmp_path / "photo_pop-art_c2.json").write_text("[]")
    assert existing_record(tmp_path, "photo_pop-art_c2") is FOREIGN
    stem = free_stem(tmp_path, "photo_pop-art_c2", content_image, "pop art", "c" * 16)
    assert stem == "photo_pop-art_c2_cccccccc"
    assert existing_record(tmp_path, "nothing_here") is None


def test_weights_and_key_settings_from_the_record_or_the_trained_model():
    record = RunRecord.from_dict(TRANSFER_SIDECAR)
    assert record.weights == "random" and record.random_weights and record.clip_model == "ViT-B/16"
    assert record.key_settings() == {"steps": "2", "size": "64x48", "band": "c2", "seed": "7",
                                     "precision": "fp32", "weights": "random"}
    interrupted = RunRecord.from_dict({**TRANSFER_SIDECAR, "steps_done": 1, "config": {**TRANSFER_SIDECAR["config"],
                                                                                       "steps": 5}})
    assert interrupted.key_settings()["steps"] == "1/5"
    today = {**TRANSFER_SIDECAR, "config": {"width": 512, "height": 384, "steps": 2}}  # no "size" key any more
    assert RunRecord.from_dict(today).key_settings()["size"] == "512x384"
    assert RunRecord.from_dict({**today, "working_size": [96, 64]}).key_settings()["size"] == "96x64"
    trained = {"config": {"weights": "pretrained"}}
    applied = RunRecord.from_dict({"applied_model": "m.stylenet.pt", "trained_with": trained})
    assert applied.weights == "pretrained" and not applied.random_weights
    assert RunRecord().weights is None and RunRecord().key_settings() == {}


def test_batch_reruns_a_finished_job_whose_sidecar_is_not_an_object(tmp_path, content_image):
    from spectralstyle.batch.runner import FINISHED, Job, job_action
    from spectralstyle.settings import TransferConfig

    config = TransferConfig(steps=1)
    job = Job("j1", content_image, content_image.name, "pop art", "c2", config, stem="photo_pop-art_c2")
    save_png(Image.new("RGB", (8, 8)), tmp_path / "photo_pop-art_c2.png", {"config_hash": config.digest()})
    write_json({"config_hash": config.digest()}, tmp_path / "photo_pop-art_c2.json")
    state = {"status": FINISHED, "config_hash": config.digest()}
    assert job_action(job, tmp_path, state) == ("skip", "finished")
    (tmp_path / "photo_pop-art_c2.json").write_text("[]")
    assert job_action(job, tmp_path, state) == ("run", "sidecar unreadable")  # not an AttributeError traceback
