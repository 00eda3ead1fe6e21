"""Generators: the Fourier image, the VQGAN decoder under taming-transformers' names, and its loader."""

from __future__ import annotations

import pytest
import torch
import yaml

from spectralstyle.errors import SpectralStyleError, WeightsMissingError
from spectralstyle.method.generators import FourierGenerator, color_matrix
from spectralstyle.method.vqgan import (
    VQGANConfig,
    VQGANDecoderModel,
    VQGANGenerator,
    load_vqgan,
    load_vqgan_checkpoint,
    random_vqgan,
    vector_quantize,
)

# Names as they appear in taming-transformers' vqgan_imagenet_f16_16384 checkpoint.
TAMING_KEYS = [
    "decoder.conv_in.weight", "decoder.mid.block_1.norm1.weight", "decoder.mid.attn_1.q.weight",
    "decoder.mid.attn_1.proj_out.bias", "decoder.mid.block_2.conv2.weight", "decoder.up.4.block.2.conv1.weight",
    "decoder.up.4.attn.2.k.weight", "decoder.up.4.upsample.conv.weight", "decoder.up.3.block.0.nin_shortcut.weight",
    "decoder.up.1.block.0.nin_shortcut.weight", "decoder.up.1.upsample.conv.weight", "decoder.up.0.block.2.norm2.bias",
    "decoder.norm_out.weight", "decoder.conv_out.weight", "quantize.embedding.weight", "post_quant_conv.weight",
]


@pytest.fixture(scope="module")
def vqgan():
    return random_vqgan()


def small_config() -> VQGANConfig:
    return VQGANConfig(embed_dim=8, n_embed=16, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                       z_channels=8, resolution=16)


def taming_checkpoint(model: VQGANDecoderModel, path, **extra_entries) -> dict:
    """A checkpoint in taming's layout: {"state_dict": ...} with encoder and loss entries that must be ignored."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.update({"encoder.conv_in.weight": torch.randn(4, 3, 3, 3), "quant_conv.weight": torch.randn(2, 2, 1, 1),
                  "loss.discriminator.main.0.weight": torch.randn(2, 3, 4, 4)}, **extra_entries)
    torch.save({"state_dict": state, "epoch": 3, "global_step": 10}, path)
    return state


def test_fourier_image_in_range_and_trainable():
    gen = FourierGenerator(40, 24)
    image = gen()
    assert image.shape == (1, 3, 24, 40) and 0 <= image.min() and image.max() <= 1
    image.mean().backward()
    assert gen.spectrum.grad is not None and gen.spectrum.grad.abs().sum() > 0


def test_fourier_init_from_image_reproduces_it():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 24, 40) * 0.9 + 0.05
    gen = FourierGenerator(40, 24)
    assert (gen() - target).abs().max() > 0.2
    gen.init_from_image(target)
    assert (gen() - target).abs().max() < 1e-4


def test_color_matrix_decorrelates_with_unit_max_column():
    m = color_matrix()
    assert m.norm(dim=0).max() == pytest.approx(1.0)
    assert torch.linalg.matrix_rank(m) == 3


def test_vector_quantize_picks_nearest_code_with_straight_through_gradient():
    torch.manual_seed(0)
    codebook = torch.randn(10, 4)
    z = torch.randn(1, 4, 2, 3, requires_grad=True)
    q = vector_quantize(z, codebook)
    flat = z.detach().movedim(1, -1).reshape(-1, 4)
    nearest = codebook[torch.cdist(flat, codebook).argmin(1)]
    assert torch.allclose(q.detach().movedim(1, -1).reshape(-1, 4), nearest)
    weights = torch.randn_like(q)
    (q * weights).sum().backward()
    assert torch.allclose(z.grad, weights)  # identity gradient through the quantiser


def test_random_vqgan_is_the_real_architecture_with_taming_names(vqgan):
    keys = set(vqgan.state_dict())
    assert set(TAMING_KEYS) <= keys
    assert not any("temb" in k or k.startswith("encoder.") for k in keys)
    assert vqgan.codebook.shape == (16384, 256)
    assert 40e6 < sum(p.numel() for p in vqgan.parameters()) < 60e6
    assert vqgan.cfg.factor == 16


def test_vqgan_generator_decodes_and_trains_latent(vqgan):
    torch.manual_seed(0)
    gen = VQGANGenerator(vqgan, 32, 48)
    assert gen.z.shape == (1, 256, 3, 2)
    image = gen()
    assert image.shape == (1, 3, 48, 32) and 0 <= image.min() and image.max() <= 1
    (image * torch.linspace(-1, 1, 32)).sum().backward()
    assert gen.z.grad is not None and gen.z.grad.abs().sum() > 0
    assert all(p.grad is None for p in vqgan.parameters())  # the decoder stays frozen
    with pytest.raises(SpectralStyleError, match="multiples of 16"):
        VQGANGenerator(vqgan, 40, 32)


def test_loader_reads_taming_checkpoint_and_ignores_encoder(vqgan, tmp_path):
    path = tmp_path / "last.ckpt"
    with torch.random.fork_rng():
        torch.manual_seed(5)
        source = VQGANDecoderModel(VQGANConfig())  # different weights from the fixture
    state = taming_checkpoint(source, path)
    loaded = load_vqgan(str(path), weights="random")  # an explicit file wins over --weights random
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert not torch.equal(loaded.codebook, vqgan.codebook)


def test_loader_uses_taming_yaml_beside_checkpoint(tmp_path):
    cfg = small_config()
    model = VQGANDecoderModel(cfg)
    path = tmp_path / "small.ckpt"
    taming_checkpoint(model, path)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 8, "n_embed": 16, "ddconfig": {"double_z": False, "z_channels": 8, "resolution": 16,
                                                 "in_channels": 3,
                                                 "out_ch": 3, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                                                 "attn_resolutions": [8], "dropout": 0.0}}}}))
    loaded = load_vqgan_checkpoint(path)
    assert loaded.cfg == cfg
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert VQGANGenerator(loaded, 16, 32)().shape == (1, 3, 32, 16)


def test_loader_rejects_wrong_keys_and_shapes(tmp_path):
    model = VQGANDecoderModel(small_config())
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(small_config().to_dict()))
    extra = tmp_path / "extra.ckpt"
    taming_checkpoint(model, extra, **{"decoder.up.9.block.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(WeightsMissingError, match=r"1 unexpected \(first: decoder\.up\.9\.block\.0\.conv1\.weight\)"):
        load_vqgan_checkpoint(extra)
    renamed = tmp_path / "renamed.ckpt"
    state = {k.replace("quantize.embedding", "quantize.embed"): v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, renamed)
    with pytest.raises(WeightsMissingError, match="missing.*quantize.embedding.weight"):
        load_vqgan_checkpoint(renamed)
    with pytest.raises(WeightsMissingError, match="size mismatch"):
        load_vqgan_checkpoint(_bad_shape(tmp_path, model))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMissingError, match="not a readable VQGAN checkpoint"):
        load_vqgan_checkpoint(junk)


def _bad_shape(tmp_path, model):
    path = tmp_path / "shape.ckpt"
    state = dict(model.state_dict())
    state["post_quant_conv.weight"] = torch.zeros(8, 4, 1, 1)
    torch.save({"state_dict": state}, path)
    return path


def test_missing_pretrained_vqgan_offline_names_the_model_and_the_ways_out():
    with pytest.raises(WeightsMissingError) as info:
        load_vqgan(None, weights="pretrained")
    message = str(info.value)
    # what is missing and the ways out; the places looked in are `weights list`'s (one short message)
    for part in ("VQGAN", "spectralstyle weights download", "--vqgan-checkpoint", "spectralstyle weights list"):
        assert part in message, message
    with pytest.raises(WeightsMissingError, match="does not exist"):
        load_vqgan("/nonexistent/last.ckpt")
