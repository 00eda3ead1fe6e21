"""No weights file runs code: crafted pickles and TorchScript archives through every flag that loads one."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Tuple

import pytest
import torch
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.errors import WeightsMissingError
from spectralstyle.method.clip_model import load_clip
from spectralstyle.method.vqgan import VQGANConfig, VQGANDecoderModel, load_vqgan_checkpoint
from spectralstyle.weights.safeload import Placeholder, read_weights

runner = CliRunner()


class CreatesFile:
    """Unpickling this object would create ``path`` (``open(path, "w")`` through ``__reduce__``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


class TrainingCallback:
    """A class that only exists in the training code (as Lightning callbacks do); its __setstate__ must not run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()


def crafted(path: Path, marker: Path, legacy: bool) -> Path:
    torch.save({"weight": torch.ones(3), "payload": CreatesFile(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_restricted_unpickler_keeps_tensors_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "created"
    data = read_weights(crafted(tmp_path / "crafted.pt", marker, legacy), "test file")
    assert torch.equal(data["weight"], torch.ones(3))
    assert isinstance(data["payload"], Placeholder) and data["payload"].qualname == "open"
    assert not marker.exists()
    with pytest.raises(Exception):  # the file is a real exploit: plain unpickling would run it
        torch.load(tmp_path / "crafted.pt", weights_only=True)


def tiny_clip_file(path: Path) -> Path:
    """A small valid CLIP (64 px, 2 layers) so the --vgg-weights case reaches VGG without building ViT-B/32."""
    from clip.model import CLIP

    torch.save(CLIP(32, 64, 1, 64, 32, 77, 49408, 64, 1, 1).state_dict(), path)
    return path


FLAGS = ["--clip-weights", "--vgg-weights", "--vqgan-checkpoint", "apply"]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("flag", FLAGS)
def test_crafted_checkpoint_through_cli_creates_nothing(tmp_path, content_image, flag, legacy):
    marker = tmp_path / "created"
    bad = crafted(tmp_path / "crafted.ckpt", marker, legacy)
    out = ["--out", str(tmp_path / "out")]
    tiny = ["--weights", "random", "--steps", "1", "--size", "32x32", "--device", "cpu"]
    if flag == "apply":
        args = ["apply", str(bad), str(content_image), *out, "--device", "cpu"]
    elif flag == "--vqgan-checkpoint":
        args = ["generate", "a cat", "--generator", "vqgan", "--vqgan-checkpoint", str(bad), *tiny, *out]
    else:
        clip = ["--clip-weights", str(tiny_clip_file(tmp_path / "clip.pt"))] if flag == "--vgg-weights" else []
        args = ["transfer", str(content_image), "pop art", *tiny, "--crops", "2", "--crop-size", "16", *clip,
                flag, str(bad), *out]
    res = runner.invoke(app, args)
    assert not marker.exists()
    assert res.exit_code == 2, res.output
    # the status line while models load is progress, not an error; the error is one line
    lines = [line for line in res.output.splitlines() if line.strip() and not line.startswith("loading ")]
    assert len(lines) == 1 and lines[0].startswith("error:") and "crafted.ckpt" in lines[0], lines
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


class WritesFileOnLoad(torch.nn.Module):
    """TorchScript whose __setstate__ creates a file through torch.from_file when torch.jit.load runs it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.scale = torch.ones(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.path, self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        self.scale = torch.from_file(state[0], True, 4)
        self.scale.fill_(1.0)
        self.training = state[2]


def test_crafted_torchscript_clip_weights_creates_nothing(tmp_path, content_image):
    marker = tmp_path / "written_by_setstate"
    archive = tmp_path / "ViT-B-32.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(WritesFileOnLoad(str(marker))), archive)
    res = runner.invoke(app, ["transfer", str(content_image), "pop art", "--clip-weights", str(archive),
                              "--weights", "random", "--steps", "1", "--size", "32x32", "--crops", "2", "--crop-size",
                              "16", "--out", str(tmp_path / "out"), "--device", "cpu"])  # VGG random: CLIP is read
    assert not marker.exists()
    errors = [line for line in res.output.strip().splitlines() if not line.startswith("loading ")]  # status line
    assert res.exit_code == 2 and len(errors) == 1 and errors[0].startswith("error:"), res.output
    assert "ViT-B-32.pt" in res.output, res.output  # the refusal names the archive, not another missing file
    with warnings.catch_warnings():  # the archive is a real exploit: torch.jit.load writes the file
        warnings.simplefilter("ignore")
        torch.jit.load(archive)
    assert marker.exists()


def test_lightning_checkpoint_loads_its_tensors_only(tmp_path):
    cfg = VQGANConfig(embed_dim=8, n_embed=16, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                      z_channels=8, resolution=16)
    model = VQGANDecoderModel(cfg)
    marker = tmp_path / "callback_ran"
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": model.state_dict(), "epoch": 7,
                "callbacks": {"TrainingCallback": TrainingCallback(marker)},
                "hyper_parameters": {"config": TrainingCallback(marker)}}, path)
    with pytest.raises(Exception):  # weights_only refuses it, so it exercises the restricted unpickler
        torch.load(path, weights_only=True)
    loaded = load_vqgan_checkpoint(path, cfg)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert not marker.exists()


def test_damaged_file_is_named_and_not_to_be_deleted(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({"visual.conv1.weight": torch.zeros(64, 3, 32, 32)}, whole)
    damaged = tmp_path / "ViT-B-32.pt"
    damaged.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(WeightsMissingError) as info:
        load_clip(str(damaged))
    message = str(info.value)
    assert str(damaged) in message and "not a readable CLIP checkpoint" in message
    assert "delete" not in message.lower() and "\n" not in message


def test_safetensors_vgg_weights(tmp_path):
    from safetensors.torch import save_file

    from spectralstyle.method.vgg import build_vgg19

    reference = build_vgg19("random")
    path = tmp_path / "vgg19.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in reference.state_dict().items()}, path)
    loaded = build_vgg19("pretrained", str(path))
    assert len(reference.state_dict()) == 32  # 16 convolutions, weight and bias
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in reference.state_dict().items())


def test_vgg_feature_layers_are_torchvisions():
    """Our features-only VGG19 has torchvision's ``vgg19().features`` keys, shapes and layers, so its files load."""
    from torchvision.models import vgg19

    from spectralstyle.method.vgg import vgg19_features

    with torch.device("meta"):  # shapes only: nothing allocated or initialised
        full = vgg19().features
    ours = vgg19_features()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}
    assert [type(m) for m in ours] == [type(m) for m in full] and len(ours) == 37
    conv = ours[0]
    assert conv.bias.abs().sum() == 0 and 0.5 < conv.weight.std() * (64 * 9 / 2) ** 0.5 < 1.5  # kaiming fan_out
