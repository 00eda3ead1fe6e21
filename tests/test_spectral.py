import pytest
import torch
import torch_dct

from spectralstyle.method.spectral import (
    BAND_PRESETS,
    SpectralFilter,
    band_label,
    parse_bands,
    projection_matrix,
)


def kept(spec, n=50):
    return torch.nonzero(parse_bands(spec, n)).flatten().tolist()


def test_presets_match_spec_table():
    assert kept("c1") == list(range(4, 8)) + list(range(16, 50))
    assert kept("c2") == list(range(4, 50))
    assert kept("c3") == list(range(2, 50))
    assert kept("none") == list(range(50))
    assert kept("C2") == kept("c2")


def test_custom_specs():
    assert kept("4-7,16-49") == kept("c1")
    assert kept("0, 3, 10-11") == [0, 3, 10, 11]


@pytest.mark.parametrize("bad", ["", "c4", "4-", "5-3", "0-50", "abc", "1,,2", "-1-4", "4_7"])
def test_bad_specs_rejected(bad):
    with pytest.raises(ValueError):
        parse_bands(bad)


@pytest.mark.parametrize("spec", ["c1", "c2", "c3", "none", "0-2,9-30"])
def test_projection_is_orthogonal_projection(spec):
    keep = parse_bands(spec)
    p = projection_matrix(keep)
    assert torch.allclose(p, p.T, atol=1e-12)
    assert torch.allclose(p @ p, p, atol=1e-12)
    assert torch.linalg.matrix_rank(p).item() == int(keep.sum())


@pytest.mark.parametrize("spec", ["c1", "c2", "c3", "none", "1-5,20-40"])
def test_filter_matches_torch_dct(spec):
    """The formulation of docs/method.md: unnormalised DCT-II, mask, exact inverse along the token axis."""
    torch.manual_seed(0)
    x = torch.randn(3, 50, 768, dtype=torch.float64)
    mask = parse_bands(spec).to(torch.float64)
    expected = torch_dct.idct(torch_dct.dct(x.transpose(1, 2)) * mask).transpose(1, 2)
    f = SpectralFilter(spec).double()
    f.projection = projection_matrix(f.keep)  # compare in float64
    assert torch.allclose(f(x), expected, atol=1e-10)
    assert torch.allclose(f.filtered_cls(x), expected[:, 0], atol=1e-10)


def test_vit_b16_rule_scales_cut_points():
    # c2 removes reference indices 0-3, i.e. relative frequency < 4/50: on 197 tokens, k < 15.76
    keep = parse_bands("c2", 197)
    assert keep.shape == (197,)
    assert torch.nonzero(~keep).flatten().tolist() == list(range(16))
    assert parse_bands("none", 197).all()
    # relative cut is preserved for every preset
    for name in BAND_PRESETS:
        for n in (50, 197, 257):
            ref_removed = (~parse_bands(name)).float().mean()
            removed = (~parse_bands(name, n)).float().mean()
            assert abs(removed - ref_removed) < 2.0 / 50


def test_filter_rejects_wrong_token_count():
    with pytest.raises(ValueError, match="expects tokens"):
        SpectralFilter("c2")(torch.randn(1, 49, 8))


def test_band_label():
    assert band_label("C2") == "c2"
    assert band_label("4-9, 16-49") == "4-9_16-49"
    assert band_label("4-7, 16-49") == "c1"  # the same frequencies as a preset get its name
    assert band_label("0-49") == "none" and band_label("2-49") == "c3"
