"""Where weights are looked for: every place in order, the first hit wins, one message when none has them.

Files here are small stand-ins (the lookup reads names and digests, not tensors); loading real files is
tested in test_cli_weights.py. Every test runs with an empty HOME, TORCH_HOME, HF_HOME and cache.
"""

from __future__ import annotations

import pytest

from spectralstyle.errors import WeightsMissingError
from spectralstyle.weights import resolve
from spectralstyle.weights import sources as weights
from spectralstyle.weights.resolve import Request, locate, require
from spectralstyle.weights.sources import CLIP_HUB_REPO, CLIP_HUB_REVISION
from weights_env import hf_snapshot, isolate, sha256

CLIP_BYTES = b"stand-in for ViT-B-32.pt"


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    roots = isolate(tmp_path, monkeypatch)
    # OpenAI's URL carries the file's SHA-256; point it at the stand-in's digest (nothing is downloaded here)
    monkeypatch.setattr("clip.clip._MODELS", {"ViT-B/32": f"http://127.0.0.1:9/clip/{sha256(CLIP_BYTES)}/ViT-B-32.pt",
                                              "ViT-B/16": "http://127.0.0.1:9/clip/00/ViT-B-16.pt",
                                              "ViT-L/14": "http://127.0.0.1:9/clip/00/ViT-L-14.pt"})
    return roots


def _fill_every_clip_place(roots) -> dict[str, object]:
    cache_file = roots["cache"] / "ViT-B-32.pt"
    cache_file.write_bytes(b"imported state dict")
    clip_file = roots["home"] / ".cache" / "clip" / "ViT-B-32.pt"
    clip_file.parent.mkdir(parents=True)
    clip_file.write_bytes(CLIP_BYTES)
    timm = hf_snapshot(roots["hf"], CLIP_HUB_REPO, CLIP_HUB_REVISION,
                       {"open_clip_pytorch_model.bin": b"open_clip pickle"})
    hf = hf_snapshot(roots["hf"], "openai/clip-vit-base-patch32", "c" * 40,
                     {"config.json": b"{}", "model.safetensors": b"transformers weights"})
    return {"spectralstyle cache": cache_file, "clip package cache": clip_file,
            f"Hugging Face cache {CLIP_HUB_REPO}": timm / "open_clip_pytorch_model.bin",
            "Hugging Face cache openai/clip-vit-base-patch32": hf}


def test_clip_places_in_order_first_hit_wins(roots):
    expected = _fill_every_clip_place(roots)
    for source, path in expected.items():  # remove the winner each time: the next place wins
        found = locate("clip-vit-b-32").found
        assert found is not None and (found.source, found.path) == (source, path)
        if path.is_dir():
            break
        path.unlink()
    assert locate("clip-vit-b-32").found.verified == ""  # a transformers folder has no published digest


def test_clip_package_cache_is_checked_with_the_sha256_of_its_url(roots):
    clip_file = roots["home"] / ".cache" / "clip" / "ViT-B-32.pt"
    clip_file.parent.mkdir(parents=True)
    clip_file.write_bytes(CLIP_BYTES)
    assert locate("clip-vit-b-32").found.verified == "sha256"
    clip_file.write_bytes(b"damaged")
    lookup = locate("clip-vit-b-32")
    assert lookup.found is None
    assert "SHA-256" in lookup.places[1].status and "not used" in lookup.places[1].status


def test_hub_safetensors_in_cache_must_have_the_pinned_digest(roots, monkeypatch):
    hf_snapshot(roots["hf"], CLIP_HUB_REPO, CLIP_HUB_REVISION, {"open_clip_model.safetensors": b"not the pinned file"})
    lookup = locate("clip-vit-b-32")
    assert lookup.found is None and weights.CLIP_HUB_SHA256 in lookup.places[2].status


def test_explicit_path_wins_and_a_missing_one_does_not_fall_back(roots, tmp_path):
    _fill_every_clip_place(roots)
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"x")
    assert locate("clip-vit-b-32", str(mine)).found.path == mine
    with pytest.raises(WeightsMissingError, match="--clip-weights .*does not exist"):
        require(Request("clip-vit-b-32", str(tmp_path / "absent.pt")))


def test_vgg_spectralstyle_cache_then_torchvision_cache(roots):
    torch_file = roots["torch"] / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    torch_file.parent.mkdir(parents=True)
    torch_file.write_bytes(b"vgg")
    assert locate("vgg19").found.source == "torchvision cache"
    (roots["cache"] / "vgg19-dcbb9e9d.pth").write_bytes(b"vgg")
    assert locate("vgg19").found.source == "spectralstyle cache"


def test_nothing_anywhere_is_one_short_message_naming_both_models_and_the_ways_out(roots):
    with pytest.raises(WeightsMissingError) as err:
        require(Request("clip-vit-b-32"), Request("vgg19"))
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 1000
    first = msg.split(". ")[0]  # what is missing and the two ways out come first
    assert "CLIP ViT-B/32 and VGG19" in first and "spectralstyle weights download clip-vit-b-32 vgg19" in first
    assert "--weights random" in first
    for part in ("SPECTRALSTYLE_OFFLINE is set", "--clip-weights PATH", "--vgg-weights PATH", "SPECTRALSTYLE_CACHE",
                 "spectralstyle weights list"):
        assert part in msg, part
    assert str(roots["hf"]) not in msg  # the places are what `weights list` shows, not this message


def test_a_found_but_unusable_file_is_named(roots):
    clip_file = roots["home"] / ".cache" / "clip" / "ViT-B-32.pt"
    clip_file.parent.mkdir(parents=True)
    clip_file.write_bytes(b"not OpenAI's file")
    with pytest.raises(WeightsMissingError) as err:
        require(Request("clip-vit-b-32"))
    assert f"{clip_file} is there but its SHA-256" in str(err.value) and len(str(err.value)) < 1000


def test_hf_hub_offline_alone_also_stops_downloads(roots, monkeypatch):
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    called = []
    monkeypatch.setattr(weights, "hf_hub_download", lambda **kw: called.append(kw))
    with pytest.raises(WeightsMissingError, match="HF_HUB_OFFLINE is set"):
        require(Request("clip-vit-b-32"))
    assert called == []


def _hub_stand_in(roots, data: bytes, calls: list):
    """Stands in for huggingface_hub.hf_hub_download: records its arguments, writes the cache entry."""
    def download(**kwargs):
        calls.append(kwargs)
        snap = hf_snapshot(roots["hf"], kwargs["repo_id"], kwargs["revision"], {kwargs["filename"]: data}, main=False)
        return str(snap / kwargs["filename"])
    return download


def test_hub_download_is_pinned_and_hash_checked(roots, monkeypatch):
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    data, calls = b"the pinned safetensors", []
    monkeypatch.setattr(weights, "hf_hub_download", _hub_stand_in(roots, data, calls))
    repos = weights.CLIP_REPOS["clip-vit-b-32"]
    monkeypatch.setitem(weights.CLIP_REPOS, "clip-vit-b-32", weights.ClipRepos(
        repos.name, repos.timm_repo, repos.transformers_repo, repos.hub_revision, sha256(data)))
    (found,) = require(Request("clip-vit-b-32"))
    assert (found.source, found.verified) == (f"Hugging Face Hub {CLIP_HUB_REPO}", "sha256")
    assert calls == [{"repo_id": CLIP_HUB_REPO, "filename": "open_clip_model.safetensors",
                      "revision": CLIP_HUB_REVISION,
                      "cache_dir": roots["hf"] / "hub", "endpoint": "http://127.0.0.1:9"}]
    assert locate("clip-vit-b-32").found.source == f"Hugging Face cache {CLIP_HUB_REPO}"  # next time: no network


def test_hub_download_with_another_digest_is_one_line_naming_both(roots, monkeypatch):
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE")
    data = b"a changed mirror"
    monkeypatch.setattr(weights, "hf_hub_download", _hub_stand_in(roots, data, []))
    with pytest.raises(WeightsMissingError) as err:
        require(Request("clip-vit-b-32"))
    msg = str(err.value)
    assert "\n" not in msg and sha256(data) in msg and weights.CLIP_HUB_SHA256 in msg and "--clip-weights" in msg


def test_vqgan_record_names_a_damaged_file(roots):
    ckpt = roots["cache"] / "vqgan_imagenet_f16_16384.ckpt"
    ckpt.write_bytes(b"first good download")
    weights.write_record(ckpt)
    assert locate("vqgan-f16-16384").found.verified == "recorded"
    ckpt.write_bytes(b"first good download, then damaged")
    with pytest.raises(WeightsMissingError) as err:
        resolve.fetch_model("vqgan-f16-16384")
    assert str(ckpt) in str(err.value) and "damaged" in str(err.value) and "weights download vqgan" in str(err.value)


def test_transfer_models_report_a_missing_clip_path_and_vgg_together(roots, tmp_path):
    from spectralstyle.runs.models import Models
    from spectralstyle.settings import TransferConfig

    absent = tmp_path / "absent.pt"
    with pytest.raises(WeightsMissingError) as err:
        Models.load(TransferConfig(clip_weights=str(absent), device="cpu"))
    msg = str(err.value)
    assert f"--clip-weights {absent} does not exist" in msg and "CLIP ViT-B/32 and VGG19" in msg and "\n" not in msg
