"""Multi-prompt parsing ('a|b:0.5|c:-1'), CLIP token limits and prompt encoding."""

from __future__ import annotations

import pytest
import torch

from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.prompts import Prompt, encode_prompts, parse_prompts, tokenize_prompts


def test_single_prompt_defaults_to_weight_one():
    assert parse_prompts("  a lighthouse in a storm ") == [Prompt("a lighthouse in a storm", 1.0)]


def test_weights_and_negative_prompts():
    assert parse_prompts("a lighthouse|storm clouds:0.5|written text:-1") == [
        Prompt("a lighthouse", 1.0), Prompt("storm clouds", 0.5), Prompt("written text", -1.0)]


def test_only_the_last_colon_is_a_weight():
    assert parse_prompts("time: midnight:2") == [Prompt("time: midnight", 2.0)]
    assert parse_prompts("a cat : 1e-1") == [Prompt("a cat", 0.1)]


@pytest.mark.parametrize("spec,message", [
    ("", "empty"),
    ("   ", "empty"),
    ("a||b", "empty prompt"),
    ("a|:0.5", "empty prompt"),
    ("a cat:heavy", "bad prompt weight 'heavy'"),
    ("a cat:", "bad prompt weight ''"),
    ("a cat:nan", "finite"),
    ("a cat:inf", "finite"),
    ("a cat:-1", "positive weight"),
    ("a cat:0|text:-2", "positive weight"),
    ("very " * 80, "too long for CLIP"),
    ("ok|" + "very " * 80 + ":0.5", "too long for CLIP"),
])
def test_bad_prompts_raise_one_clear_error(spec, message):
    with pytest.raises(SpectralStyleError, match=message.replace("(", r"\(")) as info:
        parse_prompts(spec)
    assert "\n" not in str(info.value)


def test_token_limit_boundary():
    # 'a' + ' a' * 74 = 75 word tokens + start/end = 77 tokens: exactly fits; one more does not.
    fits = "a" + " a" * 74
    assert tokenize_prompts(parse_prompts(fits)).shape == (1, 77)
    with pytest.raises(SpectralStyleError, match="78 tokens, the limit is 77"):
        parse_prompts(fits + " a")


def test_encode_prompts_without_templates(random_clip):
    prompts = parse_prompts("pop art|text:-0.5")
    features, weights = encode_prompts(random_clip, prompts)
    assert features.shape == (2, 512)
    assert torch.allclose(features.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert weights.tolist() == [1.0, -0.5]
    import clip

    with torch.no_grad():  # each prompt is encoded as written: plain clip.tokenize, no templates
        direct = random_clip.encode_text(clip.tokenize(["pop art"])).float()
    assert torch.allclose(features[0], direct[0] / direct[0].norm(), atol=1e-5)
