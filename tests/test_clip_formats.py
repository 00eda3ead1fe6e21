"""CLIP weights in every accepted format load into our CLIP and give the same features as the
independent implementations that wrote them (transformers, open_clip, TorchScript), not our own inverse."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from spectralstyle.errors import WeightsMissingError
from spectralstyle.method.clip_model import load_clip
from spectralstyle.weights.safeload import flatten_module_tree, read_weights

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip
    from clip.model import CLIP

RELATIVE_TOLERANCE = 1e-4
TEXTS = ["a photo of a cat", "pop art, bright colours"]


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).norm() / reference.norm()).item()


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3)), clip.tokenize(TEXTS)


def features(model: CLIP, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    images, tokens = inputs
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def _pooled(output) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@pytest.fixture(scope="module")
def transformers_clip(tmp_path_factory, inputs):
    """A random transformers CLIPModel with ViT-B/32's configuration, saved with save_pretrained, and its features."""
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12,
                         max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                           patch_size=32, image_size=224, hidden_act="quick_gelu"),
        projection_dim=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        model = transformers.CLIPModel(config).eval()
        with torch.no_grad():  # transformers initialises some weights to constants; make every tensor count
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    folder = tmp_path_factory.mktemp("hf") / "clip-vit-base-patch32"
    model.save_pretrained(folder)
    images, tokens = inputs
    with torch.no_grad():
        image = _pooled(model.get_image_features(pixel_values=images))
        text = _pooled(model.get_text_features(input_ids=tokens))
    return folder, image, text


@pytest.mark.parametrize("which", ["folder", "model.safetensors"])
def test_transformers_clip_matches_transformers_features(transformers_clip, inputs, which):
    folder, image_ref, text_ref = transformers_clip
    ours = load_clip(str(folder if which == "folder" else folder / "model.safetensors"))
    image, text = features(ours, inputs)
    assert relative_error(image, image_ref) < RELATIVE_TOLERANCE
    assert relative_error(text, text_ref) < RELATIVE_TOLERANCE
    assert ours.visual.conv1.weight.dtype == torch.float32


@pytest.mark.parametrize("which", ["folder", "model.safetensors"])
def test_transfer_runs_with_a_transformers_folder(transformers_clip, content_image, tmp_path, which):
    """The issue's acceptance: `transfer --clip-weights DIR` (a save_pretrained folder) and DIR/model.safetensors."""
    from typer.testing import CliRunner

    from spectralstyle.cli.app import app

    folder = transformers_clip[0]
    weights = folder if which == "folder" else folder / "model.safetensors"
    result = CliRunner().invoke(app, ["transfer", str(content_image), "pop art", "--clip-weights", str(weights),
                                      "--weights", "random", "--steps", "1", "--size", "32x32", "--crops", "2",
                                      "--crop-size", "16", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    record = __import__("json").loads((tmp_path / "out" / "photo_pop-art_c2.json").read_text())
    assert record["config"]["clip_weights"] == str(weights)


@pytest.fixture(scope="module")
def open_clip_model(tmp_path_factory, inputs):
    """A random open_clip ViT-B-32 (QuickGELU), its state dict as .bin and .safetensors, and its features."""
    open_clip = pytest.importorskip("open_clip")
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12)
        model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    folder = tmp_path_factory.mktemp("open_clip")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    save_file(state, folder / "open_clip_model.safetensors")
    images, tokens = inputs
    with torch.no_grad():
        return folder, model.encode_image(images), model.encode_text(tokens)


@pytest.mark.parametrize("name", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
def test_open_clip_state_dict_matches_open_clip_features(open_clip_model, inputs, name):
    folder, image_ref, text_ref = open_clip_model
    image, text = features(load_clip(str(folder / name)), inputs)
    assert relative_error(image, image_ref) < RELATIVE_TOLERANCE
    assert relative_error(text, text_ref) < RELATIVE_TOLERANCE


def small_clip(seed: int = 0) -> CLIP:
    """A CLIP small enough to trace quickly (64-wide towers, 2 layers, 64x64 images)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIP(embed_dim=32, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=32,
                    context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                    transformer_layers=2).eval()


def test_torchscript_archive_read_as_data_equals_state_dict(tmp_path):
    """OpenAI's checkpoints are traced TorchScript; we read their tensors without torch.jit.load."""
    model = small_clip()
    images, tokens = torch.randn(1, 3, 64, 64), clip.tokenize(["a cat"])
    path = tmp_path / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, (images, tokens), check_trace=False), path)
    state = flatten_module_tree(read_weights(path, "CLIP checkpoint"))
    expected = model.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    loaded = load_clip(str(path))
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), model.encode_image(images))
        assert torch.equal(loaded.encode_text(tokens), model.encode_text(tokens))


@pytest.mark.parametrize("layout", ["bare", "wrapped", "folder"])
def test_state_dict_keeps_float32_and_infers_architecture(tmp_path, layout):
    """A bare state dict, one in a {"state_dict": ...} wrapper with DataParallel's module. prefix, a folder."""
    model = small_clip(seed=4)
    state = model.state_dict()
    path = tmp_path / "small.pt"
    if layout == "wrapped":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    else:
        torch.save(state, path if layout == "bare" else tmp_path / "open_clip_pytorch_model.bin")
    loaded = load_clip(str(tmp_path if layout == "folder" else path))
    assert loaded.visual.input_resolution == 64 and loaded.visual.proj.dtype == torch.float32
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    assert not any(t.is_meta for t in loaded.state_dict().values())


def test_foreign_key_names_are_one_clear_line(tmp_path):
    from safetensors.torch import save_file

    timm = tmp_path / "model.safetensors"
    save_file({"patch_embed.proj.weight": torch.zeros(2, 3, 32, 32), "blocks.0.attn.qkv.weight": torch.zeros(6, 2)},
              timm)
    with pytest.raises(WeightsMissingError, match="open_clip_model.safetensors"):
        load_clip(str(timm))
    state = small_clip().state_dict()
    del state["visual.ln_post.weight"]
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(WeightsMissingError, match=r"keys 1 missing \(first: visual\.ln_post\.weight\)"):
        load_clip(str(partial))
    gelu = tmp_path / "laion"
    gelu.mkdir()
    (gelu / "config.json").write_text('{"vision_config": {"hidden_act": "gelu"}, '
                                      '"text_config": {"hidden_act": "gelu"}}')
    with pytest.raises(WeightsMissingError, match="activation 'gelu'"):
        load_clip(str(gelu))
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(WeightsMissingError, match="holds no CLIP weights"):
        load_clip(str(empty))


@pytest.mark.parametrize("name,patch,width,layers,text_width",
                         [("ViT-B/16", 16, 768, 12, 512), ("ViT-L/14", 14, 1024, 24, 768)])
def test_architecture_inferred_for_b16_and_l14(name, patch, width, layers, text_width):
    """Shapes alone (meta tensors, nothing allocated) give ViT-B/16's and ViT-L/14's architecture."""
    from spectralstyle.weights.clip_formats import CLIP_ARCHITECTURES, build_clip

    with torch.device("meta"):
        state = CLIP(image_resolution=224, context_length=77, vocab_size=49408, **CLIP_ARCHITECTURES[name]).state_dict()
    model = build_clip(dict(state), Path(name))
    assert model.visual.conv1.kernel_size == (patch, patch) and model.visual.input_resolution == 224
    assert model.visual.conv1.out_channels == width and len(model.visual.transformer.resblocks) == layers
    assert model.visual.transformer.resblocks[0].attn.num_heads == width // 64
    assert (model.ln_final.weight.shape == (text_width,)
            and model.transformer.resblocks[0].attn.num_heads == text_width // 64)
