"""Shared fixtures: randomly initialised real architectures, tiny images, an offline weight cache."""

from __future__ import annotations

import copy
import inspect
import os

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (inherited by the commands the tests start)

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
from PIL import Image

import spectralstyle.method.clip_model as clip_model
from narrow_models import narrow_random_clip, narrow_subprocesses, narrowing
from spectralstyle.method.clip_model import load_clip

narrow_subprocesses()

_encode_text = clip_model.encode_text
_text_features: dict[tuple, torch.Tensor] = {}


def _copies_of_one(build):
    """``build(name)`` once per name and test worker (it is repeatable, so equal every time), handed out as
    fresh copies: drawing ViT-B/32's 151M random parameters takes ~1.5 s, a copy ~0.2 s."""
    built: dict[str, torch.nn.Module] = {}

    def copy_of(name: str) -> torch.nn.Module:
        if name not in built:
            built[name] = build(name)
        return copy.deepcopy(built[name])

    return copy_of


_build_random_clip = inspect.unwrap(clip_model._random_clip)  # test workers inherit narrow_site's hook too
_full_random_clip = _copies_of_one(_build_random_clip)
_narrow_random_clip = _copies_of_one(narrowing(_build_random_clip))


def _weights_fingerprint(model) -> tuple:
    """Sums of tensors from both ends of the text tower, with dtype and device: equal for copies of one model,
    different for any other weights the tests load (a full hash of 600 MB would cost more than encoding)."""
    tensors = (model.token_embedding.weight[::97], model.positional_embedding, model.text_projection,
               model.transformer.resblocks[-1].mlp.c_proj.weight, model.ln_final.weight)
    return (model.dtype, str(model.text_projection.device),
            *(float(t.detach().double().sum()) for t in tensors))


def _encode_text_once(model, tokens: torch.Tensor) -> torch.Tensor:
    """``encode_text`` memoised per test worker (without gradients only): every run encodes its prompt and
    "a Photo" under 79 templates, ~1.3 s each on one core, and the tests run the same few prompts hundreds
    of times through copies of the same random CLIP."""
    if torch.is_grad_enabled():
        return _encode_text(model, tokens)
    key = (_weights_fingerprint(model), tuple(tokens.shape), tokens.cpu().numpy().tobytes())
    if key not in _text_features:
        _text_features[key] = _encode_text(model, tokens)
    return _text_features[key].clone()


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from tests."""
    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("SPECTRALSTYLE_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _random_models_and_texts_computed_once(request, monkeypatch):
    """In-process ``load_clip(..., weights="random")`` copies one narrow model per architecture
    (``narrow_models.py``; ``@pytest.mark.full_clip`` for the full one) and text features are encoded once per
    model and prompt; tests of those functions themselves opt out with ``@pytest.mark.unmemoised``."""
    if request.node.get_closest_marker("unmemoised") is not None:
        monkeypatch.setattr(clip_model, "_random_clip", _build_random_clip)
        return
    full = request.node.get_closest_marker("full_clip") is not None
    monkeypatch.setattr(clip_model, "_random_clip", _full_random_clip if full else _narrow_random_clip)
    monkeypatch.setattr(clip_model, "encode_text", _encode_text_once)


@pytest.fixture(scope="session")
def random_clip():
    """ViT-B/32 itself, randomly initialised and frozen, whatever test first asks for it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clip_model, "_random_clip", _full_random_clip)
        return load_clip("ViT-B/32", device="cpu", weights="random")


@pytest.fixture(scope="session")
def narrow_clip():
    """The real CLIP classes (ViT with 32-px patches at 224 px: the same 50 tokens and filter) at a tenth of
    ViT-B/32's width, frozen as ``load_clip`` leaves models. For claims about dtypes and plumbing that do not
    depend on the network's size: a CPU without bf16 instructions (this one) runs bf16 matmuls ~25x slower
    than fp32, so a bf16 run through ViT-B/32 took minutes."""
    model = narrow_random_clip("ViT-B/32")
    return model.requires_grad_(False).eval()


@pytest.fixture(scope="session")
def random_vgg():
    from spectralstyle.method.vgg import load_vgg_content

    return load_vgg_content("random", None, device="cpu")


@pytest.fixture()
def shared_random_models(monkeypatch, narrow_clip, random_vgg):
    """In-process command runs reuse one random (narrow) CLIP and VGG, frozen, instead of building new ones per
    command; opt in with ``pytestmark = pytest.mark.usefixtures("shared_random_models")``."""
    monkeypatch.setattr("spectralstyle.runs.models.load_clip", lambda *args, **kwargs: narrow_clip)
    monkeypatch.setattr("spectralstyle.runs.models.load_vgg_content", lambda *args, **kwargs: random_vgg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like the subprocess tests' OMP_NUM_THREADS=1: tiny runs, shared cores
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def content_image(tmp_path):
    """A small RGB photo-like image on disk (gradient plus shapes)."""
    x = torch.linspace(0, 1, 96)
    img = torch.stack([x.expand(80, 96), x.flip(0).expand(80, 96), torch.full((80, 96), 0.4)])
    img[:, 20:50, 30:60] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    path = tmp_path / "photo.png"
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)
    return path

