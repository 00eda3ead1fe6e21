"""The tests' narrow random CLIPs (narrow_models.py): where they are used, and where ViT-B/32 stays."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from narrow_models import NARROW_SITE, full_clip_env
from spectralstyle.errors import SpectralStyleError
from spectralstyle.method.clip_model import load_clip

WIDTH = ("from spectralstyle.method.clip_model import load_clip; "
         "print(load_clip('ViT-B/32', weights='random').visual.conv1.out_channels)")


def test_in_process_runs_are_narrow_with_the_same_tokens():
    model = load_clip("ViT-B/32", weights="random")
    assert model.visual.conv1.out_channels == 128 and model.visual.positional_embedding.shape == (50, 128)


@pytest.mark.full_clip
def test_full_clip_mark_gives_vit_b_32(random_clip):
    model = load_clip("ViT-B/32", weights="random")
    assert model.visual.conv1.out_channels == 768 == random_clip.visual.conv1.out_channels
    with pytest.raises(SpectralStyleError, match="random weights are available for"):
        load_clip("RN50", weights="random")  # an unknown architecture keeps its message


def test_commands_the_tests_start_are_narrow_unless_full_clip_env():
    assert str(NARROW_SITE) in os.environ["PYTHONPATH"].split(os.pathsep)
    assert str(NARROW_SITE) not in full_clip_env().get("PYTHONPATH", "").split(os.pathsep)
    narrow = subprocess.run([sys.executable, "-c", WIDTH], capture_output=True, text=True, timeout=120)
    assert narrow.stdout.split() == ["128"], narrow.stderr
