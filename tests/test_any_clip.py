"""spectral_clip(model, band): SpectralCLIP on clip, open_clip and transformers models, checked against
the libraries' own encoders (band none) and an independent DCT (torch_dct) of the hooked final token
sequence (c1, c2), with random weights."""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path

import pytest
import torch
import torch_dct

from spectralstyle.method.any_clip import UnsupportedCLIPError, spectral_clip
from spectralstyle.method.clip_model import SpectralCLIP

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import open_clip
    import transformers

# the reference kept frequencies of the paper's presets, written out here (not read from bands.py)
KEPT = {"c1": set(range(4, 8)) | set(range(16, 50)), "c2": set(range(4, 50)), "none": set(range(50))}


def kept_mask(band: str, n: int) -> torch.Tensor:
    """Frequency k of n tokens is kept when reference index floor(k * 50 / n) is kept (docs/method.md)."""
    return torch.tensor([int(k * 50 / n) in KEPT[band] for k in range(n)], dtype=torch.float64)


def dct_filtered_cls(tokens: torch.Tensor, band: str) -> torch.Tensor:
    """Token 0 of DCT-II -> mask -> inverse DCT along the token axis, in float64 with torch_dct: [B, D]."""
    seq = tokens.detach().double().transpose(1, 2)  # [B, D, N]: torch_dct transforms the last axis
    filtered = torch_dct.idct(torch_dct.dct(seq, norm="ortho") * kept_mask(band, seq.shape[-1]), norm="ortho")
    return filtered[..., 0].float()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).norm() / b.detach().norm())


class Capture:
    """Forward hook keeping the output of a module (the final transformer block's token sequence)."""

    def __init__(self, module: torch.nn.Module, pick=lambda out: out) -> None:
        self.value = None
        self.handle = module.register_forward_hook(lambda mod, inp, out: setattr(self, "value", pick(out)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture(scope="module")
def oc_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return open_clip.create_model("ViT-B-32-quickgelu").eval()


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    return transformers.CLIPModel(transformers.CLIPConfig()).eval()  # the defaults are ViT-B/32


@pytest.fixture(scope="module")
def images():
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def oc_plain(oc_model, images):
    with torch.no_grad():
        return oc_model.encode_image(images)


def tiny_open_clip(**vision) -> torch.nn.Module:
    """An open_clip CLIP of a few thousand parameters; ViT towers unless ``layers`` is a ResNet tuple."""
    torch.manual_seed(0)
    cfg = dict(layers=2, width=64, head_width=32, image_size=224, patch_size=32) | vision
    text = open_clip.CLIPTextCfg(layers=1, width=32, heads=2, context_length=16, vocab_size=100)
    return open_clip.CLIP(embed_dim=32, vision_cfg=open_clip.CLIPVisionCfg(**cfg), text_cfg=text).eval()


def tiny_transformers() -> torch.nn.Module:
    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, patch_size=32)
    return transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=vision,
                                                          projection_dim=32)).eval()


def tiny_openai_clip(**vision) -> torch.nn.Module:
    """A ``clip`` package CLIP: a 64 px ViT (17 tokens) unless ``vision_layers`` is a ResNet tuple."""
    from clip.model import CLIP

    torch.manual_seed(0)
    cfg = dict(image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=16) | vision
    return CLIP(embed_dim=32, context_length=77, vocab_size=49408, transformer_width=32, transformer_heads=2,
                transformer_layers=1, **cfg).eval()


def test_open_clip_band_none_is_open_clips_own_encode_image(oc_model, images, oc_plain):
    with torch.no_grad():
        ours = spectral_clip(oc_model, "none").encode_image(images)
    assert rel_err(ours, oc_plain) < 1e-6


@pytest.mark.parametrize("band", ["c1", "c2"])
def test_open_clip_bands_match_an_independent_dct(oc_model, images, oc_plain, band):
    wrapped = spectral_clip(oc_model, band)
    v = oc_model.visual
    with torch.no_grad(), Capture(v.transformer) as tokens:
        ours = wrapped.encode_image(images)
    assert tokens.value.shape == (1, 50, 768)
    reference = v.ln_post(dct_filtered_cls(tokens.value, band)) @ v.proj
    assert rel_err(ours, reference) < 1e-4
    assert rel_err(ours, oc_plain) > 1e-2  # the filter changes the embedding


def test_transformers_band_none_is_get_image_features(hf_model, images):
    with torch.no_grad():
        ours = spectral_clip(hf_model, "none").encode_image(images)  # through get_image_features
        theirs = hf_model.get_image_features(pixel_values=images).pooler_output
    assert rel_err(ours, theirs) < 1e-6


@pytest.mark.parametrize("band", ["c1", "c2"])
def test_transformers_bands_match_an_independent_dct(hf_model, images, band):
    wrapped = spectral_clip(hf_model, band)
    vm = hf_model.vision_model
    with torch.no_grad(), Capture(vm.encoder, lambda out: out.last_hidden_state) as tokens:
        features = wrapped.get_image_features(pixel_values=images).pooler_output
    with torch.no_grad():
        reference = hf_model.visual_projection(vm.post_layernorm(dct_filtered_cls(tokens.value, band)))
    assert rel_err(features, reference) < 1e-4


def test_clip_package_is_spectralclip_exactly():
    model = tiny_openai_clip()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for band in ("none", "c1", "c2"):
            ours = spectral_clip(model, band).encode_image(x)
            assert rel_err(ours, SpectralCLIP(model, band).encode_image(x)) < 1e-6, band
        assert rel_err(spectral_clip(model, "none").encode_image(x), model.encode_image(x)) < 1e-6
        logits_per_image, _ = spectral_clip(model, "c2")(x, torch.zeros(1, 77, dtype=torch.long))
    assert logits_per_image.shape == (2, 1)


@pytest.mark.parametrize("patch, tokens", [(16, 197), (14, 257)])  # ViT-B/16 and ViT-L/14 at 224 px
def test_token_counts_follow_the_band_rule(patch, tokens, images):
    model = tiny_open_clip(patch_size=patch)
    wrapped = spectral_clip(model, "c2")
    with torch.no_grad(), Capture(model.visual.transformer) as seq:
        ours = wrapped.encode_image(images[:1])
    assert seq.value.shape[1] == tokens
    assert torch.equal(wrapped.filter_for(tokens).keep, kept_mask("c2", tokens).bool())
    assert int(wrapped.filter_for(tokens).keep.sum()) == tokens - (16 if patch == 16 else 21)
    reference = model.visual.ln_post(dct_filtered_cls(seq.value, "c2")) @ model.visual.proj
    assert rel_err(ours, reference) < 1e-4


def test_gradients_flow_to_the_image(images):
    cases = [(tiny_open_clip(), images), (tiny_transformers(), images), (tiny_openai_clip(), images[..., :64, :64])]
    for model, x in cases:
        x = x.clone().requires_grad_(True)
        spectral_clip(model, "c2").encode_image(x).square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, type(model)


def test_forward_text_and_attributes_pass_through(images):
    oc_model, hf_model = tiny_open_clip(), tiny_transformers()
    wrapped = spectral_clip(oc_model, "c2")
    text = torch.randint(1, 99, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        image_features, text_features, scale = wrapped(images, text)
        assert rel_err(image_features, torch.nn.functional.normalize(wrapped.encode_image(images), dim=-1)) < 1e-6
        assert torch.equal(text_features, oc_model.encode_text(text, normalize=True))
    assert wrapped.logit_scale is oc_model.logit_scale and wrapped.visual.conv1 is oc_model.visual.conv1
    assert wrapped.model is oc_model and oc_model.visual.__class__.__name__ == "VisionTransformer"  # unmodified
    assert sum(p.numel() for p in wrapped.parameters()) == sum(p.numel() for p in oc_model.parameters())
    copied = copy.deepcopy(wrapped)  # a copy's filtered tower reads the copy's weights
    assert copied.visual.model is copied.model.visual and copied.visual.conv1 is not oc_model.visual.conv1
    with torch.no_grad():
        assert torch.equal(copied.encode_image(images), wrapped.encode_image(images))

    hf = spectral_clip(hf_model, "c2")
    ids = torch.tensor([[49406, 320, 2368, 49407]])
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=images)
        filtered = hf.encode_image(images)
        assert rel_err(out.image_embeds, filtered / filtered.norm(dim=-1, keepdim=True)) < 1e-6
        assert torch.equal(hf.get_text_features(input_ids=ids).pooler_output,
                           hf_model.get_text_features(input_ids=ids).pooler_output)
    assert hf.config is hf_model.config and hf.logit_scale is hf_model.logit_scale


def test_resnet_and_attention_pooled_towers_get_one_clear_error():
    resnets = [tiny_openai_clip(vision_layers=(1, 1, 1, 1), vision_width=8, vision_patch_size=None),
               tiny_open_clip(layers=(1, 1, 1, 1), width=8, image_size=64)]
    for model in resnets:
        with pytest.raises(UnsupportedCLIPError, match="ResNet CLIP") as info:
            spectral_clip(model)
        assert "\n" not in str(info.value)
    with pytest.raises(UnsupportedCLIPError, match="attention"):
        spectral_clip(tiny_open_clip(attentional_pool=True, attn_pooler_queries=4, attn_pooler_heads=2))
    with pytest.raises(UnsupportedCLIPError, match="not a CLIP model"):
        spectral_clip(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown band"):
        spectral_clip(tiny_open_clip(), "c9")


def test_package_exposes_spectral_clip_lazily():
    import spectralstyle
    from spectralstyle.method import any_clip

    assert spectralstyle.spectral_clip is any_clip.spectral_clip


def test_the_docs_example_runs():
    text = (Path(__file__).parents[1] / "docs" / "spectral_clip.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/spectral_clip.md has no python example"
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(blocks[0], "docs/spectral_clip.md", "exec"), namespace)
    assert namespace["losses"][-1] < namespace["losses"][0]  # the filtered CLIP guided the optimisation
