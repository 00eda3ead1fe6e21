"""evaluate and analyze follow the results' records for the weights: random-weights results are scored
with no --weights flag and no download attempt (issue 19), with an empty HOME and downloads allowed.

Every socket connection of the process is recorded (loopback ones reach a 127.0.0.1 server standing in
for OpenAI's and Hugging Face's hosts, others are refused), so a download attempt anywhere on the real
code path fails the test; the same setup with ``--weights pretrained`` shows that the trap does catch one.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.evaluation.inputs import scoring_models
from spectralstyle.media.files import write_json
from spectralstyle.record import RunRecord
from weights_env import FileServer, isolate


def random_result(folder, content) -> None:
    """A transfer result's files as transfer writes them, made with --weights random."""
    Image.new("RGB", (64, 48), (180, 60, 90)).save(folder / "photo_pop-art_c2.png")
    write_json({"content": str(content.resolve()), "text": "pop art", "band": "c2", "status": "finished",
                "config_hash": "0" * 16, "steps_done": 1,
                "config": {"weights": "random", "clip_model": "ViT-B/32", "steps": 1, "size": [64, 48], "seed": 3,
                           "precision": "fp32", "band": "c2"}}, folder / "photo_pop-art_c2.json")


@pytest.fixture()
def no_network(tmp_path, monkeypatch):
    """Empty HOME and caches, SPECTRALSTYLE_OFFLINE unset, the download hosts on 127.0.0.1, every connect recorded."""
    isolate(tmp_path, monkeypatch)
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE", raising=False)
    connects: list[object] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        connects.append(address)
        if isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost"):
            return real_connect(sock, address)
        raise ConnectionRefusedError(f"test: no network ({address})")

    with FileServer({}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setattr("clip.clip._MODELS", {"ViT-B/32": f"{server.url}/clip/{'0' * 64}/ViT-B-32.pt"})
        monkeypatch.setattr(socket.socket, "connect", connect)
        yield connects


def test_random_weights_results_are_evaluated_and_analysed_without_flag_or_download(tmp_path, content_image,
                                                                                   no_network):
    results = tmp_path / "results"
    results.mkdir()
    random_result(results, content_image)
    out = tmp_path / "eval"
    run = CliRunner().invoke(app, ["evaluate", str(results), "--device", "cpu", "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert no_network == []  # not one connection: nothing was downloaded or even tried
    page = (out / "report.html").read_text()
    assert "random weights" in page and "seed 3" in page and "scored with CLIP ViT-B/32, random weights" in page
    [row] = csv.DictReader((out / "metrics.csv").open())
    assert row["ssim"] and row["vgg_content_distance"] and row["weights"] == "random"  # random VGG too, no download
    assert run.stdout.splitlines()[:2] == [str(out / "report.html"), str(out / "metrics.csv")]  # the files, on stdout
    assert all(Path(line).is_file() for line in run.stdout.splitlines()) and str(out / "report.json") in run.stdout
    run = CliRunner().invoke(app, ["analyze", str(results), "--text", "pop art", "--device", "cpu",
                                   "--out", str(tmp_path / "analysis"), "--json"])
    assert run.exit_code == 0, run.output
    assert no_network == [] and (tmp_path / "analysis" / "per_image.csv").is_file()
    summary = json.loads(run.stdout)  # --json: one object on stdout, the files listed in it
    assert summary["command"] == "analyze" and summary["images"] == 1
    assert str(tmp_path / "analysis" / "per_image.csv") in summary["files"]


@pytest.mark.parametrize("flags,message", [
    (["--weights", "maybe"], "--weights"), (["--min-confidence", "2"], "--min-confidence"),
    (["--device", "tpu"], "unknown device")])
@pytest.mark.parametrize("command", ["evaluate", "analyze"])
def test_evaluate_and_analyze_options_are_the_declared_settings(tmp_path, command, flags, message):
    """Checked by the settings declarations before any file is read: one line, exit 2, nothing written."""
    extra = ["--text", "pop art"] if command == "analyze" else []
    run = CliRunner().invoke(app, [command, str(tmp_path), *extra, *flags, "--out", str(tmp_path / "o")])
    assert run.exit_code == 2 and message in run.output and "Traceback" not in run.output, run.output
    assert not (tmp_path / "o").exists()


def test_the_trap_catches_a_download_attempt(tmp_path, content_image, no_network):
    results = tmp_path / "results"
    results.mkdir()
    random_result(results, content_image)
    run = CliRunner().invoke(app, ["evaluate", str(results), "--weights", "pretrained", "--device", "cpu",
                                   "--out", str(tmp_path / "eval")])
    assert run.exit_code == 2 and no_network  # pretrained weights were asked for: a download was attempted


def test_scoring_models_follow_the_records():
    random = RunRecord(config={"weights": "random", "clip_model": "ViT-B/16"})
    pretrained = RunRecord(config={"weights": "pretrained"})
    assert scoring_models([random, None]).weights == "random" and scoring_models([random]).clip_model == "ViT-B/16"
    assert scoring_models([random], weights="pretrained").weights == "pretrained"  # given wins
    assert scoring_models([random], clip_weights="my.pt").weights == "pretrained"  # an own CLIP file is pretrained
    mixed = scoring_models([random, pretrained])
    assert mixed.weights == "pretrained" and "different weights" in mixed.note
    assert scoring_models([None]).weights == "pretrained" and scoring_models([None]).note is None
