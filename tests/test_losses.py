"""The loss module against the formulas of docs/method.md, on hand-made tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from spectralstyle.method.clip_model import SpectralCLIP, clip_input
from spectralstyle.method.losses import (
    CLIPStyleLoss,
    content_loss,
    directional_loss,
    thresholded_mean,
    tv_loss,
)
from spectralstyle.method.vgg import load_vgg_content


def test_tv_loss_by_hand():
    img = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).view(1, 1, 2, 2)
    # horizontal diffs: (0-1), (2-4) -> norm sqrt(1+4); vertical: (0-2), (1-4) -> sqrt(4+9)
    # diagonal (x[1:, :-1] - x[:-1, 1:]): 2-1 -> 1; anti (x[:-1,:-1]-x[1:,1:]): 0-4 -> 4
    expected = math.sqrt(5) + math.sqrt(13) + 1 + 4
    assert tv_loss(img).item() == pytest.approx(expected)


def test_directional_loss_by_hand():
    source = torch.tensor([[1.0, 0.0, 0.0]])
    text_dir = torch.tensor([[0.0, 1.0, 0.0]])
    aligned = torch.tensor([[1.0, 1.0, 0.0]])  # normalised minus source points along +y (and -x)
    opposite = torch.tensor([[1.0, -1.0, 0.0]])
    same = torch.tensor([[2.0, 0.0, 0.01]])
    losses = directional_loss(torch.cat([aligned, opposite, same]), source, text_dir)
    n = F.normalize(aligned, dim=1) - source
    expected0 = 1 - (n / n.norm() * text_dir).sum()
    assert losses[0].item() == pytest.approx(expected0.item(), abs=1e-6)
    assert losses[1].item() == pytest.approx(2 - expected0.item(), abs=1e-6)  # mirrored direction
    assert losses[2].item() == pytest.approx(1.0, abs=1e-3)  # orthogonal change


def test_threshold_zeroes_small_entries():
    losses = torch.tensor([0.2, 0.69, 0.7, 1.3])
    assert thresholded_mean(losses, 0.7).item() == pytest.approx((0.7 + 1.3) / 4)


def test_content_loss_is_sum_of_mses():
    a = [torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 3, 3)]
    b = [torch.zeros(1, 2, 2, 2), torch.full((1, 1, 3, 3), 2.0)]
    assert content_loss(a, b).item() == pytest.approx(1.0 + 4.0)


def test_weighted_total_and_zero_at_start(narrow_clip):
    torch.manual_seed(0)
    vgg = load_vgg_content("random")
    loss = CLIPStyleLoss(SpectralCLIP(narrow_clip, "c2"), vgg, {"patch": 2.0, "global": 3.0, "content": 5.0, "tv": 7.0})
    content = torch.rand(1, 3, 64, 64)
    loss.prepare(content, "pop art")
    crops = torch.rand(3, 3, 224, 224)
    terms = loss(content, crops)
    assert terms["content"].item() == pytest.approx(0.0, abs=1e-10)  # output == content
    expected = 2 * terms["patch"] + 3 * terms["global"] + 5 * terms["content"] + 7 * terms["tv"]
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["tv"].item() == pytest.approx(tv_loss(content).item())
    # the global term is the directional loss of the resized whole image
    feats = loss.encoder.encode_image(clip_input(content))
    glob = directional_loss(feats, loss.source_features, loss.text_direction)
    assert terms["global"].item() == pytest.approx(glob.item(), abs=1e-5)


def test_terms_of_weight_zero_are_not_computed(narrow_clip, monkeypatch):
    torch.manual_seed(0)
    vgg = load_vgg_content("random")
    weights = {"patch": 2.0, "global": 3.0, "content": 0.0, "tv": 7.0}
    loss = CLIPStyleLoss(SpectralCLIP(narrow_clip, "c2"), vgg, weights)
    content = torch.rand(1, 3, 64, 64)
    loss.prepare(content, "pop art")
    output, crops = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 224, 224)
    full = CLIPStyleLoss(SpectralCLIP(narrow_clip, "c2"), vgg, {**weights, "content": 5.0})
    full.prepare(content, "pop art")
    expected = full(output, crops)
    monkeypatch.setattr(CLIPStyleLoss, "content_term", lambda self, step: pytest.fail("weight 0: not computed"))
    terms = loss(output, crops)
    assert list(terms.terms) == ["patch", "global", "tv"] and loss.active_terms == ("patch", "global", "tv")
    by_hand = 2 * expected["patch"] + 3 * expected["global"] + 7 * expected["tv"]
    assert terms.total.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_text_features_are_cached(narrow_clip):
    cache = {}
    loss = CLIPStyleLoss(SpectralCLIP(narrow_clip, "none"), load_vgg_content("random"), text_cache=cache)
    first = loss.text_features("pop art")
    assert set(cache) == {"pop art"} and loss.text_features("pop art") is first


def test_every_loss_term_has_its_weight_and_its_method():
    """A term is one name in settings.LOSS_TERMS, one setting lambda_<name>, one method <name>_term."""
    import dataclasses

    from spectralstyle.settings import LOSS_TERMS, TransferConfig, loss_weights

    lambdas = {f.name.removeprefix("lambda_") for f in dataclasses.fields(TransferConfig)
               if f.name.startswith("lambda_")}
    assert set(LOSS_TERMS) == lambdas
    assert all(callable(getattr(CLIPStyleLoss, f"{name}_term", None)) for name in LOSS_TERMS)
    assert loss_weights(TransferConfig(lambda_tv=1.0))["tv"] == 1.0
