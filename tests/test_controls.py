"""The artist's controls, checked by the properties they promise (issue 21): colours kept, the photo outside
a mask, the photo at strength 0, weighted prompts as weighted sums, every prompt in the sidecar."""

from __future__ import annotations

import json
import random

import pytest
import torch
from PIL import Image

from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import load_image
from spectralstyle.method.augment import sample_masked_crop_params
from spectralstyle.method.clip_model import SpectralCLIP
from spectralstyle.method.colors import match_histograms, rgb_to_ycbcr
from spectralstyle.method.controls import ResultControls, apply_controls
from spectralstyle.method.losses import CLIPStyleLoss
from spectralstyle.method.masks import feather, load_mask, window_shares
from spectralstyle.method.prompts import Prompt, parse_prompts, style_prompts
from spectralstyle.method.vgg import load_vgg_content
from spectralstyle.runs.models import Models
from spectralstyle.runs.transfer import run_job
from spectralstyle.settings import AVOID_TEXT_PROMPT, AVOID_TEXT_WEIGHT, ApplyControls, TransferConfig

WIDTH, HEIGHT = 96, 64
TINY = dict(weights="random", steps=1, width=WIDTH, height=HEIGHT, crops=1, crop_size=32, device="cpu")


@pytest.fixture(scope="module")
def models(narrow_clip) -> Models:
    return Models(narrow_clip, load_vgg_content("random"), torch.device("cpu"), "random")


@pytest.fixture()
def photo(tmp_path):
    """A 96x64 photo of smooth colour gradients and a saturated patch."""
    x = torch.linspace(0, 1, WIDTH)
    y = torch.linspace(0, 1, HEIGHT)[:, None]
    img = torch.stack([x.expand(HEIGHT, WIDTH), (1 - y).expand(HEIGHT, WIDTH), 0.3 + 0.4 * x * y])
    img[:, 10:40, 50:80] = torch.tensor([0.9, 0.15, 0.1]).view(3, 1, 1)
    path = tmp_path / "photo.png"
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(path)
    return path


def written(path) -> torch.Tensor:
    return load_image(path)


def test_acceptance_on_a_96x64_photo(photo, models, tmp_path):
    """The issue's four acceptance runs in one test, so they share the text features (one crop each)."""
    original = load_image(photo)
    chroma = lambda image: rgb_to_ycbcr(image)[:, 1:]  # noqa: E731

    def transfer(name: str, text: str = "pop art", **settings) -> tuple[torch.Tensor, dict]:
        job = run_job(photo, text, TransferConfig(**TINY, **settings), models, tmp_path / name)
        return written(job.image), json.loads(job.sidecar.read_text())

    nothing, _ = transfer("strength0", strength=0.0)
    assert (nothing - original).abs().mean().item() < 3 / 255

    kept, _ = transfer("color", preserve_color="luminance")
    assert (chroma(kept) - chroma(original)).abs().mean().item() < 3 / 255
    assert (rgb_to_ycbcr(kept)[:, 0] - rgb_to_ycbcr(original)[:, 0]).abs().mean().item() > 10 / 255  # styled Y

    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8)
    mask[:, :40] = 255
    Image.fromarray(mask.numpy()).save(tmp_path / "mask.png")
    masked, _ = transfer("mask", mask=str(tmp_path / "mask.png"))
    right = (masked[..., 40:] - original[..., 40:]).abs().mean().item()
    left = (masked[..., :40] - original[..., :40]).abs().mean().item()
    assert right < 3 / 255 and left > 10 / 255, (right, left)

    _, record = transfer("prompts", "pop art|neon lights:0.5|written text:-1")
    assert record["prompts"] == [{"text": "pop art", "weight": 1.0}, {"text": "neon lights", "weight": 0.5},
                                 {"text": "written text", "weight": -1.0}]
    assert record["status"] == "finished" and record["config"]["preserve_color"] == "off"


def test_avoid_text_adds_its_negative_prompt():
    added = Prompt(AVOID_TEXT_PROMPT, AVOID_TEXT_WEIGHT)
    assert style_prompts("pop art", avoid_text=True) == [Prompt("pop art"), added] and AVOID_TEXT_WEIGHT < 0
    assert style_prompts("pop art") == [Prompt("pop art")]


def test_histogram_matching_gives_the_photos_values_in_the_results_order():
    torch.manual_seed(0)
    result, photo = torch.rand(1, 3, 8, 12), torch.rand(1, 3, 8, 12) ** 2
    matched = match_histograms(result, photo)
    for c in range(3):
        assert torch.equal(matched[0, c].flatten().sort().values, photo[0, c].flatten().sort().values)
        assert torch.equal(matched[0, c].flatten().argsort(), result[0, c].flatten().argsort())


def test_a_weighted_prompt_loss_is_the_weighted_sum_of_single_prompt_losses(models):
    rng = random.Random(7)
    torch.manual_seed(0)
    loss = CLIPStyleLoss(SpectralCLIP(models.clip, "c2"), models.vgg, text_cache=models.text_cache)
    content, output, crops = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(2, 3, 224, 224)
    weights = [rng.uniform(0.2, 2.0), rng.uniform(0.2, 2.0), -rng.uniform(0.2, 2.0)]
    texts = ["pop art", "neon lights", "written text"]
    spec = "|".join(f"{t}:{w!r}" for t, w in zip(texts, weights))
    assert [p.weight for p in parse_prompts(spec)] == weights
    loss.prepare(content, spec)
    combined = loss(output, crops)
    singles = []
    for text, weight in zip(texts, weights):  # each prompt alone, with the sign of its weight
        loss.prepare(content, [Prompt(text, 1.0 if weight > 0 else -1.0)])
        singles.append((abs(weight), loss(output, crops)))
    for term in ("patch", "global"):
        expected = sum(w * terms[term] for w, terms in singles)
        assert combined[term].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    assert combined["content"].item() == pytest.approx(singles[0][1]["content"].item())


def test_masked_crops_are_drawn_where_the_mask_is_set():
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., :40] = 1
    shares = window_shares(mask, 32)
    params = sample_masked_crop_params(200, shares, 32, 0.5, torch.Generator().manual_seed(0))
    assert all(shares[t, left] >= 0.5 for t, left in zip(params.top.tolist(), params.left.tolist()))
    assert params.left.max().item() <= 40 - 16 and params.left.min().item() == 0  # up to half outside, and all of it
    tiny = torch.zeros(1, 1, 64, 96)
    tiny[..., 30:34, 50:54] = 1  # no window reaches half: the best windows are used
    small = window_shares(tiny, 32)
    params = sample_masked_crop_params(50, small, 32, 0.5, torch.Generator().manual_seed(0))
    assert all(small[t, left] == small.max() for t, left in zip(params.top.tolist(), params.left.tolist()))


def test_mask_is_resized_inverted_and_feathered(tmp_path):
    big = torch.zeros(128, 192, dtype=torch.uint8)
    big[:, :80] = 255
    Image.fromarray(big.numpy()).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", (WIDTH, HEIGHT))
    assert mask.shape == (1, 1, HEIGHT, WIDTH) and mask[..., :39].min() == 1 and mask[..., 41:].max() == 0
    soft = feather(mask, 6)
    assert 0 < soft[0, 0, 0, 40].item() < 1 and soft[0, 0, 0, 0].item() == pytest.approx(1)
    controls = ResultControls.of(ApplyControls(mask=str(tmp_path / "m.png"), invert_mask=True, strength=0.5))
    photo, result = torch.zeros(1, 3, HEIGHT, WIDTH), torch.ones(1, 3, HEIGHT, WIDTH)
    blended = apply_controls(result, photo, controls)
    assert blended[..., :39].max() == 0 and blended[..., 41:].min() == pytest.approx(0.5)


def test_control_settings_are_checked_and_neutral_defaults_keep_the_hash():
    assert TransferConfig().digest() == "7270d6796c2c543e"  # main's default hash (h5), unchanged by the controls
    assert TransferConfig(strength=0.5).digest() != TransferConfig().digest()
    with pytest.raises(SpectralStyleError, match="strength must be in"):
        TransferConfig(strength=1.5)
    with pytest.raises(SpectralStyleError, match="need --mask"):
        TransferConfig(mask_feather=3)
    with pytest.raises(SpectralStyleError, match="unknown colour mode"):
        TransferConfig(preserve_color="lab")
    with pytest.raises(SpectralStyleError, match="--mix-weight needs --mix"):
        ApplyControls(mix_weight=0.2)


def test_apply_blends_two_models_and_keeps_the_photo_at_strength_zero(photo, tmp_path):
    from typer.testing import CliRunner

    from spectralstyle.cli.app import app
    from spectralstyle.method.stylenet import StyleNet
    from spectralstyle.runs.outputs import save_stylenet

    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.stylenet.pt")
        save_stylenet(StyleNet(), paths[-1], {"config": {"contrast": 1.0}})
    runner = CliRunner()

    def apply(*args: str) -> torch.Tensor:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        result = runner.invoke(app, ["apply", *map(str, args), "--out", str(out), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        return load_image(next(out.glob("*.png")))

    first, second = apply(paths[0], photo), apply(paths[1], photo)
    mixed = apply(paths[0], photo, "--mix", paths[1], "--mix-weight", "0.25")
    assert (mixed - (0.75 * first + 0.25 * second)).abs().max().item() <= 1.5 / 255
    original = load_image(photo)
    assert (apply(paths[0], photo, "--strength", "0") - original).abs().mean().item() < 3 / 255
    kept = apply(paths[0], photo, "--preserve-color", "luminance")
    assert (rgb_to_ycbcr(kept)[:, 1:] - rgb_to_ycbcr(original)[:, 1:]).abs().mean().item() < 3 / 255
    bad = runner.invoke(app, ["apply", str(paths[0]), str(photo), "--mask", str(tmp_path / "none.png"),
                              "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert bad.exit_code == 2 and "mask" in bad.output and "does not exist" in bad.output


def test_train_records_its_prompts_and_sends_masks_to_apply(photo, models, tmp_path):
    from spectralstyle.runs.train import TrainSettings, run_train_job, train_record

    config = TransferConfig(**{**TINY, "width": 32, "height": 32, "crop_size": 16}, preserve_color="luminance")
    job = run_train_job([photo], "pop art", config, TrainSettings(batch=1, preview=0), models, tmp_path)
    assert job.record["config"]["preserve_color"] == "luminance" and job.record["status"] == "finished"
    record = train_record("pop art|written text:-0.5", config, TrainSettings(), [], torch.device("cpu")).to_dict()
    assert record["prompts"] == [{"text": "pop art", "weight": 1.0}, {"text": "written text", "weight": -0.5}]
    with pytest.raises(SpectralStyleError, match="give --mask and --strength to `apply`"):
        run_train_job([photo], "pop art", config.replace(strength=0.5), TrainSettings(batch=1), models, tmp_path)


def test_a_bad_prompt_weight_is_one_line_before_any_model_loads(photo, tmp_path):
    from typer.testing import CliRunner

    from spectralstyle.cli.app import app

    result = CliRunner().invoke(app, ["transfer", str(photo), "pop art:strong", "--weights", "random", "--out",
                                      str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2 and "bad prompt weight 'strong'" in result.output


def test_preserve_color_given_alone_is_luminance(photo, tmp_path):
    """The issue's spelling: ``--preserve-color`` with no value keeps the photo's chroma (luminance mode);
    a value after it, or another option, is read as usual."""
    from typer.testing import CliRunner

    from spectralstyle.cli.app import app
    from spectralstyle.cli.common import with_bare_values

    assert with_bare_values(["a.png", "--preserve-color"]) == ["a.png", "--preserve-color", "luminance"]
    assert with_bare_values(["--preserve-color", "--steps", "2"]) == ["--preserve-color", "luminance", "--steps", "2"]
    assert with_bare_values(["--preserve-color", "histogram"]) == ["--preserve-color", "histogram"]
    tiny = ["--weights", "random", "--steps", "1", "--size", "96x64", "--crops", "1", "--crop-size", "32",
            "--device", "cpu"]
    result = CliRunner().invoke(app, ["transfer", str(photo), "pop art", "--preserve-color", *tiny,
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "o" / "photo_pop-art_c2.json").read_text())
    assert record["config"]["preserve_color"] == "luminance"
    kept = written(tmp_path / "o" / "photo_pop-art_c2.png")
    chroma = rgb_to_ycbcr(kept)[:, 1:] - rgb_to_ycbcr(load_image(photo))[:, 1:]
    assert chroma.abs().mean().item() < 3 / 255
