"""Shared fixtures: randomly initialised real architectures, tiny images, an offline weight cache."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (inherited by the commands the tests start)

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
from PIL import Image

from spectralstyle.method.clip_model import load_clip


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from tests."""
    monkeypatch.setenv("SPECTRALSTYLE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("SPECTRALSTYLE_OFFLINE", "1")


@pytest.fixture(scope="session")
def random_clip():
    return load_clip("ViT-B/32", device="cpu", weights="random")


@pytest.fixture(scope="session")
def random_vgg():
    from spectralstyle.method.vgg import load_vgg_content

    return load_vgg_content("random", None, device="cpu")


@pytest.fixture()
def shared_random_models(monkeypatch, random_clip, random_vgg):
    """In-process command runs reuse one random CLIP and VGG (frozen) instead of building new ones per
    command; opt in with ``pytestmark = pytest.mark.usefixtures("shared_random_models")``."""
    monkeypatch.setattr("spectralstyle.runs.models.load_clip", lambda *args, **kwargs: random_clip)
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
