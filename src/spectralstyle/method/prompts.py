"""Weighted multi-prompts as VQGAN+CLIP users write them: ``"a lighthouse|storm:0.5|text:-1"``.

Prompts are separated by ``|``; each may end in ``:WEIGHT`` (default 1). A negative weight pushes
the image away from that prompt. Generation encodes each prompt as it is (``clip.tokenize(prompt)``,
no templates), so each must fit CLIP's 77-token context; transfer and train encode each prompt in
CLIPstyler's templates (``style_prompts`` checks that every one fits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.clip_model import CONTEXT_LENGTH, _clip_impl, encode_text, tokenize_templated
from spectralstyle.settings import AVOID_TEXT_PROMPT, AVOID_TEXT_WEIGHT

SEPARATOR = "|"
WEIGHT_MARK = ":"


@dataclass(frozen=True)
class Prompt:
    text: str
    weight: float = 1.0


def _parse_weight(raw: str, part: str) -> float:
    try:
        weight = float(raw)
    except ValueError:
        raise SpectralStyleError(
            f"bad prompt weight {raw.strip()!r} in {part.strip()!r}: "
            "write TEXT:WEIGHT with a number, e.g. 'a forest:0.5'"
        ) from None
    if not math.isfinite(weight):
        raise SpectralStyleError(f"prompt weight in {part.strip()!r} must be a finite number")
    return weight


def parse_prompts(spec: str) -> list[Prompt]:
    """Split ``spec`` on '|' into prompts with optional ':weight' suffixes; clear errors for bad syntax."""
    if not spec or not spec.strip():
        raise SpectralStyleError("the prompt is empty")
    prompts = []
    for part in spec.split(SEPARATOR):
        text, weight = part, 1.0
        if WEIGHT_MARK in part:
            text, raw = part.rsplit(WEIGHT_MARK, 1)
            weight = _parse_weight(raw, part)
        text = text.strip()
        if not text:
            raise SpectralStyleError(f"empty prompt in {spec!r}: every '|'-separated part needs text")
        check_token_length(text)
        prompts.append(Prompt(text, weight))
    if not any(p.weight > 0 for p in prompts):
        raise SpectralStyleError(f"no prompt in {spec!r} has a positive weight; at least one must attract the image")
    return prompts


def style_prompts(text: str, avoid_text: bool = False) -> list[Prompt]:
    """The prompts of a transfer or train text, each checked in every template, and ``--avoid-text``'s
    negative prompt when asked (one clear error for bad syntax, empty or too long prompts)."""
    prompts = parse_prompts(text)
    for prompt in prompts:
        tokenize_templated(prompt.text)
    if avoid_text:
        prompts.append(Prompt(AVOID_TEXT_PROMPT, AVOID_TEXT_WEIGHT))
    return prompts


def prompts_record(prompts: list[Prompt]) -> list[dict[str, object]]:
    """The prompts as a sidecar lists them: ``[{"text": ..., "weight": ...}, ...]``."""
    return [{"text": p.text, "weight": p.weight} for p in prompts]


def check_token_length(text: str) -> None:
    """Raise a clear error if ``text`` does not fit CLIP's context (start and end tokens included)."""
    n_tokens = len(_clip_impl._tokenizer.encode(text)) + 2
    if n_tokens > CONTEXT_LENGTH:
        raise SpectralStyleError(
            f"prompt {text[:40]!r}... is too long for CLIP: {n_tokens} tokens, the limit is {CONTEXT_LENGTH}"
        )


def tokenize_prompts(prompts: list[Prompt]) -> torch.Tensor:
    """CLIP tokens [P, 77] of the prompts, each encoded as written (no templates)."""
    for p in prompts:
        check_token_length(p.text)
    return _clip_impl.tokenize([p.text for p in prompts])


@torch.no_grad()
def encode_prompts(clip_model: torch.nn.Module, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised text embeddings [P, D] and their weights [P] on the model's device."""
    device = next(clip_model.parameters()).device
    features = encode_text(clip_model, tokenize_prompts(prompts).to(device)).float()
    weights = torch.tensor([p.weight for p in prompts], dtype=torch.float32, device=device)
    return features / features.norm(dim=-1, keepdim=True), weights
