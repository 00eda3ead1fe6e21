"""`spectralstyle weights` and the missing-weights path of `transfer`, with empty caches and real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.method import weights_check
from spectralstyle.weights import resolve
from spectralstyle.weights import sources as weights
from weights_env import isolate, sha256

runner = CliRunner()


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_acceptance_offline_without_weights(roots, content_image, tmp_path):
    """transfer: exit 2 with one line naming the Hub repos; list: 0 with both missing; verify: 1."""
    exe = Path(sys.executable).with_name("spectralstyle")
    proc = subprocess.run([str(exe), "transfer", str(content_image), "pop art", "--steps", "1", "--size", "64x64",
                           "--crop-size", "32",
                           "--device", "cpu", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no pretrained weights for CLIP ViT-B/32 and VGG19")
    assert "spectralstyle weights download" in lines[0] and "--weights random" in lines[0]
    assert "spectralstyle weights list" in lines[0] and len(lines[0]) < 1000
    listed = invoke("weights", "list", "--json")
    assert listed.exit_code == 0
    models = {m["model"]: m for m in json.loads(listed.stdout)["models"]}
    assert not models["clip-vit-b-32"]["found"] and not models["vgg19"]["found"]
    table = invoke("weights", "list")
    assert table.exit_code == 0 and "missing" in table.stdout and "VGG19" in table.stdout
    verified = invoke("weights", "verify")
    assert verified.exit_code == 1 and "missing" in verified.stdout
    downloaded = invoke("weights", "download")
    assert downloaded.exit_code == 1 and "SPECTRALSTYLE_OFFLINE is set" in downloaded.stderr
    for result in (listed, table, verified, downloaded):
        assert "Traceback" not in result.output and (result.exception is None
                                                     or isinstance(result.exception, SystemExit))


def test_user_errors_exit_2(roots, tmp_path):
    unknown = invoke("weights", "verify", "clip-vit-x-99")
    assert unknown.exit_code == 2 and "unknown model" in unknown.stderr
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not weights")
    imported = invoke("weights", "import", junk)
    assert imported.exit_code == 2 and len(imported.stderr.strip().splitlines()) == 1
    assert "is not a readable weights file" in imported.stderr  # told from its first bytes, once
    assert invoke("weights", "import", tmp_path / "absent.pt").exit_code == 2
    assert list(roots["cache"].iterdir()) == []


def test_list_and_verify_a_real_clip(roots, random_clip):
    """A random ViT-B/32 saved with OpenAI's key names in the cache: verify loads it and checks its shapes."""
    path = roots["cache"] / "ViT-B-32.pt"
    torch.save({k: v.half() for k, v in random_clip.state_dict().items()}, path)
    models = {m["model"]: m for m in json.loads(invoke("weights", "list", "--json").stdout)["models"]}
    assert models["clip-vit-b-32"]["source"] == "spectralstyle cache"
    assert models["clip-vit-b-32"]["size_bytes"] == path.stat().st_size
    verified = invoke("weights", "verify", "clip")
    assert verified.exit_code == 0, verified.output
    assert "shapes of CLIP ViT-B/32" in verified.stdout and "no published digest" in verified.stdout


def _vgg_features_file(path: Path) -> str:
    """A random VGG19 feature stack saved as torchvision keys; returns its SHA-256 prefix."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["E"]).state_dict().items()}, path)
    return sha256(path.read_bytes())[:8]


def test_import_and_verify_vgg_check_shapes_and_torchvision_hash(roots, tmp_path, monkeypatch):
    elsewhere = tmp_path / "vgg19.pth"
    prefix = _vgg_features_file(elsewhere)
    monkeypatch.setattr(weights, "VGG19_FILE", f"vgg19-{prefix}.pth")
    monkeypatch.setattr(weights_check, "VGG19_SHA256_PREFIX", prefix)
    imported = invoke("weights", "import", elsewhere)
    assert imported.exit_code == 0 and "as VGG19" in imported.stderr, imported.output
    assert (roots["cache"] / f"vgg19-{prefix}.pth").read_bytes() == elsewhere.read_bytes()
    assert "already there" in invoke("weights", "import", elsewhere).stderr
    ok = invoke("weights", "verify", "vgg19")
    assert ok.exit_code == 0 and "sha256 ok" in ok.stdout, ok.output
    monkeypatch.setattr(weights_check, "VGG19_SHA256_PREFIX", "00000000")
    wrong = invoke("weights", "verify", "vgg19")
    assert wrong.exit_code == 1 and "not the published file" in wrong.stdout
    cut = tmp_path / "cut.pth"
    torch.save({k: v for k, v in torch.load(elsewhere, weights_only=True).items() if k != "features.34.weight"}, cut)
    refused = invoke("weights", "import", cut, "--as", "vgg19")
    assert refused.exit_code == 2 and "does not match VGG19" in refused.stderr


def test_download_to_a_shared_folder_copies_what_is_found(roots, tmp_path, monkeypatch):
    data = b"stand-in for OpenAI's ViT-B-32.pt"
    monkeypatch.setattr("clip.clip._MODELS", {"ViT-B/32": f"http://127.0.0.1:9/clip/{sha256(data)}/ViT-B-32.pt"})
    clip_file = roots["home"] / ".cache" / "clip" / "ViT-B-32.pt"
    clip_file.parent.mkdir(parents=True)
    clip_file.write_bytes(data)
    shared = tmp_path / "shared"
    result = invoke("weights", "download", "clip", "--to", shared)
    assert result.exit_code == 0, result.output
    assert (shared / "ViT-B-32.pt").read_bytes() == data
    assert "copied to" in result.stderr
    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(shared))
    clip_file.unlink()
    assert resolve.locate("clip-vit-b-32").found.path == shared / "ViT-B-32.pt"
