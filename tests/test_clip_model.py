import pytest
import torch
import torch_dct

from spectralstyle.errors import SpectralStyleError, WeightsMissingError
from spectralstyle.method.clip_model import (
    SpectralCLIP,
    encode_templated_text,
    encode_text,
    load_clip,
    tokenize_templated,
)
from spectralstyle.method.spectral import parse_bands


def reference_filtered_embedding(model, x, spec):
    """Independent computation in the shape of the authors' code: torch-dct along the token axis."""
    v = model.visual
    h = v.conv1(x).reshape(x.shape[0], v.conv1.out_channels, -1).permute(0, 2, 1)
    cls = v.class_embedding + torch.zeros(x.shape[0], 1, h.shape[-1])
    h = v.ln_pre(torch.cat([cls, h], dim=1) + v.positional_embedding)
    h = v.transformer(h.permute(1, 0, 2)).permute(1, 0, 2)
    mask = parse_bands(spec).float().view(1, 1, -1).expand(1, h.shape[-1], -1)
    filtered = torch_dct.idct(torch_dct.dct(h.permute(0, 2, 1)) * mask).permute(0, 2, 1)
    return v.ln_post(filtered[:, 0, :]) @ v.proj


@pytest.mark.parametrize("spec", ["c1", "c2", "c3", "2-5,12-40"])
def test_spectral_clip_parity_with_torch_dct(random_clip, spec):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        ours = SpectralCLIP(random_clip, spec).encode_image(x)
        ref = reference_filtered_embedding(random_clip, x, spec)
    assert ours.shape == (4, 512)
    assert (ours - ref).abs().max().item() < 1e-4
    # the filter really changes the embedding (the test could fail)
    plain = random_clip.encode_image(x)
    assert (ours - plain).abs().max().item() > 1e-2


def test_none_equals_plain_clip(random_clip):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(SpectralCLIP(random_clip, "none").encode_image(x), random_clip.encode_image(x), atol=1e-6)


def test_tokens_shape_and_gradients(random_clip):
    enc = SpectralCLIP(random_clip, "c2")
    x = torch.randn(1, 3, 224, 224, requires_grad=True)
    assert enc.tokens(x).shape == (1, 50, 768)
    enc.encode_image(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in random_clip.parameters())  # CLIP is frozen


def test_bf16_close_to_fp32(random_clip):
    enc = SpectralCLIP(random_clip, "c2")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = enc.encode_image(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc.encode_image(x).float()
    cos = torch.nn.functional.cosine_similarity(ref, low)
    assert cos.min() > 0.97


@pytest.mark.parametrize("size", [(224, 224), (230, 241)])
def test_fast_patch_gradient_equals_conv_gradient(random_clip, size):
    """The matmul input gradient of the frozen patch conv equals conv2d's own, also past the last whole patch."""
    from spectralstyle.method.clip_model import patch_embed

    conv = random_clip.visual.conv1
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    g = torch.randn(2, conv.out_channels, size[0] // 32, size[1] // 32, generator=torch.Generator().manual_seed(2))
    (patch_embed(conv, x) * g).sum().backward()
    fast = x.grad.clone()
    x.grad = None
    (torch.nn.functional.conv2d(x, conv.weight.detach(), stride=32) * g).sum().backward()
    assert torch.allclose(fast, x.grad, atol=1e-5)
    assert fast[..., size[0] // 32 * 32:, :].abs().sum() == 0  # the cropped-off border gets no gradient


def test_bf16_autocast_gradient_through_patch_conv(narrow_clip):
    """Under autocast the forward runs in bf16; the input gradient comes back in the input's dtype, close to fp32."""
    enc = SpectralCLIP(narrow_clip, "c2")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3), requires_grad=True)
    enc.encode_image(x).square().sum().backward()
    ref = x.grad.clone()
    x.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = enc.encode_image(x).float().square().sum()
    loss.backward()  # outside autocast, as in the training loop
    assert x.grad.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(ref.flatten(), x.grad.flatten(), dim=0) > 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_cuda(random_clip, dtype):
    model = load_clip("ViT-B/32", device="cuda", weights="random")
    enc = SpectralCLIP(model, "c2")
    x = torch.randn(2, 3, 224, 224, device="cuda")
    with torch.no_grad():
        ref = enc.encode_image(x)
        with torch.autocast("cuda", dtype=dtype):
            low = enc.encode_image(x).float()
    assert torch.nn.functional.cosine_similarity(ref, low).min() > 0.97


@pytest.mark.unmemoised
def test_random_weights_are_repeatable():
    a = load_clip("ViT-B/32", weights="random")
    torch.manual_seed(99)
    b = load_clip("ViT-B/32", weights="random")
    assert torch.equal(a.visual.proj, b.visual.proj)


def test_offline_without_weights_is_short_and_points_to_the_places(tmp_path, monkeypatch):
    """The places (files, URLs) are what `spectralstyle weights list` shows; the message says how to get out."""
    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(tmp_path))
    with pytest.raises(WeightsMissingError) as err:
        load_clip("ViT-B/32", weights="pretrained")
    msg = str(err.value)
    assert "CLIP ViT-B/32" in msg and "spectralstyle weights list" in msg and "--weights random" in msg
    assert "\n" not in msg and len(msg) < 1000


def test_download_failure_is_clear(tmp_path, monkeypatch):
    """With the offline switch off, the real download attempt fails here and must say so in one line."""
    monkeypatch.delenv("SPECTRALSTYLE_OFFLINE")
    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from huggingface_hub.errors import LocalEntryNotFoundError

    def hub_unreachable(**kwargs):  # the Hub is tried first; the real client retries for ~25 s before this
        raise LocalEntryNotFoundError("cannot reach the Hub")

    monkeypatch.setattr("spectralstyle.weights.sources.hf_hub_download", hub_unreachable)
    monkeypatch.setattr("spectralstyle.weights.sources.DOWNLOAD_TIMEOUT_S", 5)
    monkeypatch.setattr(
        "spectralstyle.method.clip_model._clip_impl._MODELS",
        {"ViT-B/32": "http://127.0.0.1:9/clip/models/00ff/ViT-B-32.pt"},
    )
    with pytest.raises(WeightsMissingError, match="Downloading failed"):
        load_clip("ViT-B/32", weights="pretrained")
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("hf", "ViT-B-32.pt.lock")] == []  # no partial file


def test_local_checkpoint_path(tmp_path, random_clip):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMissingError, match="not a readable"):
        load_clip(str(bad))
    with pytest.raises(WeightsMissingError, match="does not exist"):
        load_clip(str(tmp_path / "missing.pt"))
    good = tmp_path / "vit.pt"
    torch.save(random_clip.state_dict(), good)
    loaded = load_clip(str(good))
    # float32 weights stay float32 (clip.load's build_model used to round them to fp16)
    assert loaded.visual.proj.dtype == torch.float32
    assert torch.equal(loaded.visual.proj, random_clip.visual.proj)


def test_unknown_names_and_modes():
    with pytest.raises(SpectralStyleError):
        load_clip("ViT-Q/99", weights="random")
    with pytest.raises(SpectralStyleError):
        load_clip("ViT-B/32", weights="fancy")


def test_text_checks(random_clip):
    with pytest.raises(SpectralStyleError, match="empty"):
        tokenize_templated("   ")
    with pytest.raises(SpectralStyleError, match="too long"):
        tokenize_templated("very " * 80)
    feats = encode_templated_text(random_clip, "pop art")
    assert feats.shape == (1, 512) and abs(feats.norm().item() - 1) < 1e-5


def test_truncated_text_encoder_equals_clip(random_clip):
    tokens = tokenize_templated("pop art")
    with torch.no_grad():
        ours = encode_text(random_clip, tokens[:8])
        full = random_clip.encode_text(tokens[:8])
    assert tokens.argmax(-1).max() < 40  # the shortcut really truncates
    assert (ours - full).abs().max().item() < 1e-5
