"""The benchmark's reference pattern: its FFT DCT, its agreement with the fast pipeline, the command."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from spectralstyle.bench.reference import ReferenceModels, dct, idct, optimize_reference, spectral_encode_image
from spectralstyle.bench.runner import BenchReport, PatternResult, synthetic_content
from spectralstyle.cli.app import app
from spectralstyle.method.spectral import parse_bands
from spectralstyle.runs.models import Models
from spectralstyle.runs.transfer import optimize
from spectralstyle.settings import TransferConfig

torch_dct = pytest.importorskip("torch_dct", reason="torch-dct is a dev dependency")


@pytest.mark.parametrize("n", [1, 2, 7, 8, 50])
def test_fft_dct_matches_torch_dct(n):
    x = torch.randn(3, 5, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    assert torch.allclose(dct(x), torch_dct.dct(x), atol=1e-10)
    assert torch.allclose(idct(x), torch_dct.idct(x), atol=1e-10)
    assert torch.allclose(idct(dct(x)), x, atol=1e-10)


def test_reference_filter_is_the_projection_of_our_encoder(random_clip):
    """DCT -> mask -> IDCT of the whole sequence gives the same embedding as our CLS weighted sum."""
    from spectralstyle.method.clip_model import SpectralCLIP

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = SpectralCLIP(random_clip, "c1").encode_image(x)
        ref = spectral_encode_image(random_clip, x, parse_bands("c1"))
        plain = random_clip.encode_image(x)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(ref, plain, atol=1e-2)


@pytest.fixture(scope="module")
def both_models(narrow_clip, random_vgg):
    """Our pipeline's models and the reference's (its own trainable copy of the same CLIP). The agreement of
    the two patterns is a property of the code, not of the network's size: a narrow CLIP keeps it seconds."""
    import copy

    models = Models(narrow_clip, random_vgg, torch.device("cpu"), "random")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("spectralstyle.bench.reference.load_clip", lambda *args, **kwargs: copy.deepcopy(narrow_clip))
        reference = ReferenceModels.load(TransferConfig(weights="random", device="cpu"))
    reference.text_cache = models.text_cache  # same CLIP weights: text features are set-up, computed once
    return models, reference


@pytest.mark.parametrize("band", ["c2", "none"])
def test_fast_pipeline_matches_reference_pattern(both_models, band):
    """Same seed, StyleNet init and crops: per-step losses agree to float noise in fp32."""
    models, reference = both_models
    config = TransferConfig(band=band, steps=3, width=64, height=64, crops=3, crop_size=32, weights="random",
                            device="cpu", seed=7)
    content = synthetic_content(64, 64)
    fast = optimize(content, "pop art", config, models).history
    ref = optimize_reference(content, "pop art", config, reference).history
    assert len(fast) == len(ref) == 3
    for a, b in zip(fast, ref):
        # step 1 sees identical parameters: only forward float noise. Later steps follow Adam updates, which
        # divide by sqrt(v): parameters with near-zero gradients turn 1e-7 noise into visible steps.
        rel = 1e-4 if a["step"] == 1 else 1e-3
        for key in ("total", "patch", "global", "content", "tv"):
            assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-7), (band, a["step"], key)
    assert fast[0]["total"] != fast[-1]["total"]  # the StyleNet really trained
    # CLIP weights are trainable in the reference pattern (gradients accumulated), frozen in ours
    assert reference.clip.visual.conv1.weight.grad is not None
    assert models.clip.visual.conv1.weight.grad is None


def test_bf16_autocast_trains_close_to_fp32(narrow_clip, random_vgg):
    """bf16 on CPU runs forward and backward (autocast through every module) and stays near the fp32 losses."""
    models = Models(narrow_clip, random_vgg, torch.device("cpu"), "random")
    config = TransferConfig(steps=2, width=32, height=32, crops=2, crop_size=32, weights="random", device="cpu", seed=7)
    content = synthetic_content(32, 32)
    fp32 = optimize(content, "pop art", config, models).history
    bf16 = optimize(content, "pop art", config.replace(precision="bf16"), models).history
    for a, b in zip(fp32, bf16, strict=True):
        assert b["total"] != a["total"] and b["total"] == pytest.approx(a["total"], rel=0.02), a["step"]
    assert bf16[0]["total"] != bf16[-1]["total"]


def test_bench_command_smoke(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--steps", "1", "--rounds", "1", "--size", "64x64", "--crops", "2",
                                      "--crop-size", "32", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "speedup:" in result.stdout.splitlines()[-1]
    data = json.loads(out.read_text())
    assert set(data["patterns"]) == {"reference", "optimized"}
    assert set(data["max_loss_rel_diff"]) == {"total", "patch", "global", "content", "tv"}
    assert data["max_loss_rel_diff"]["total"] < 1e-3  # fp32: float noise
    assert data["target"] is None and "no speed target for this configuration" in result.stdout
    for pattern in data["patterns"].values():
        assert len(pattern["step_seconds"]) == 1 and pattern["peak_memory_mib"] > 0  # the warm-up step is not timed
    assert data["speedup"] == pytest.approx(
        data["patterns"]["reference"]["median_step_s"] / data["patterns"]["optimized"]["median_step_s"])
    assert data["max_total_loss_rel_diff"] < 1e-3


def _result(pattern: str, seconds: float, memory: float) -> PatternResult:
    return PatternResult(pattern, "", "cpu", "fp32", False, [seconds] * 3, [seconds] * 3, 1.0, memory, "rss",
                         [{"total": 1.0}])


@pytest.mark.parametrize("ours_s,ours_mib,met", [(2.0, 900, True), (2.9, 900, False), (2.0, 1100, False)])
def test_target_verdict(ours_s, ours_mib, met):
    config = TransferConfig(width=256, height=256, crops=16, device="cpu").to_dict()
    report = BenchReport(config, 3, {}, [_result("reference", 4.0, 1000), _result("optimized", ours_s, ours_mib)])
    assert report.target is not None and report.target.speedup == 1.5
    assert report.target_met() is met
    assert ("NOT met" in report.target_line()) is (not met)
    other = BenchReport({**config, "crops": 8}, 3, {}, report.results)
    assert other.target is None and other.target_met() is None


def test_only_the_terms_the_reference_records_are_compared():
    """A pipeline term the reference does not implement (or one of weight 0, not computed) is left out."""
    reference = _result("reference", 4.0, 1000)
    optimized = _result("optimized", 2.0, 900)
    reference.losses = [{"total": 10.0, "patch": 1.0, "tv": 2.0}, {"total": 8.0, "patch": 1.0, "tv": 2.0}]
    optimized.losses = [{"total": 11.0, "patch": 1.0, "tv": 2.0, "edge": 5.0},
                        {"total": 8.0, "patch": 1.5, "tv": 2.0, "edge": 5.0}]
    report = BenchReport({}, 2, {}, [reference, optimized])
    assert report.compared_terms == ("total", "patch", "tv")
    assert report.max_loss_differences() == pytest.approx({"total": 0.1, "patch": 0.5, "tv": 0.0})


@pytest.mark.parametrize("flag", ["--steps", "--rounds"])
def test_bench_rejects_bad_steps(flag):
    result = CliRunner().invoke(app, ["bench", flag, "0", "--size", "64x64", "--crops", "2", "--crop-size", "32"])
    assert result.exit_code == 2 and "must be a positive integer" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_steps(precision):
    """Forward, backward (GradScaler with fp16) and Adam steps on the GPU for each precision."""
    config = TransferConfig(steps=3, width=64, height=64, crops=3, crop_size=32, weights="random", device="cuda",
                            seed=7, precision=precision)
    if precision == "bf16" and torch.cuda.get_device_properties(0).major < 8:
        pytest.skip("this GPU has no native bf16")
    history = optimize(synthetic_content(64, 64), "pop art", config, Models.load(config)).history
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(h["total"])) for h in history)
    assert history[0]["total"] != history[-1]["total"]


def test_bench_checks_json_path_and_precision_before_running(tmp_path):
    base = ["bench", "--steps", "1", "--size", "64x64", "--crops", "2", "--crop-size", "32", "--device", "cpu"]
    res = CliRunner().invoke(app, [*base, "--json", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output
    res = CliRunner().invoke(app, [*base, "--precision", "fp16"])
    assert res.exit_code == 2 and "fp16 is for GPUs" in res.output and "running the" not in res.output
    res = CliRunner().invoke(app, [*base, "--reference-precision", "fp16"])
    assert res.exit_code == 2 and "--reference-precision fp16 is for GPUs" in res.output
    assert "running the" not in res.output


def test_reference_precision_is_the_originals_on_each_device():
    """fp16 CLIP on CUDA (clip.load keeps fp16 weights there), fp32 on CPU, unless chosen."""
    from spectralstyle.bench.runner import reference_precision
    from spectralstyle.errors import SpectralStyleError

    assert reference_precision(torch.device("cpu")) == "fp32"
    assert reference_precision(torch.device("cuda")) == "fp16"  # the rule only: constructing a device needs no GPU
    assert reference_precision(torch.device("cpu"), "bf16") == "bf16"
    assert reference_precision(torch.device("cpu"), "fp32") == "fp32"
    for bad in ("fp16", "int8"):
        with pytest.raises(SpectralStyleError, match="--reference-precision"):
            reference_precision(torch.device("cpu"), bad)
    result = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0 and "--reference-precision" in result.output


def test_reference_pattern_runs_clip_in_the_reference_dtype(narrow_clip, monkeypatch):
    """bf16 reference (as fp16 on CUDA): CLIP's matrices in bf16, its LayerNorms fp32 as clip.load leaves them,
    StyleNet fp32; the losses stay near the fp32 reference's. (A narrow CLIP: bf16 matmuls crawl on this CPU.)"""
    import copy

    monkeypatch.setattr("spectralstyle.bench.reference.load_clip", lambda *args, **kwargs: copy.deepcopy(narrow_clip))
    config = TransferConfig(steps=2, width=64, height=64, crops=2, crop_size=32, weights="random", device="cpu",
                            seed=7)
    reference = ReferenceModels.load(config.replace(precision="bf16"))
    fp32_reference = ReferenceModels.load(config)
    visual = reference.clip.visual
    assert visual.conv1.weight.dtype == visual.proj.dtype == torch.bfloat16
    assert visual.ln_post.weight.dtype == torch.float32
    content = synthetic_content(64, 64)
    low = optimize_reference(content, "pop art", config, reference)
    full = optimize_reference(content, "pop art", config, fp32_reference).history
    assert next(low.net.parameters()).dtype == torch.float32
    for a, b in zip(full, low.history, strict=True):
        assert a["total"] != b["total"] and b["total"] == pytest.approx(a["total"], rel=0.05), a["step"]


def test_rounds_alternate_and_pool_their_steps():
    from spectralstyle.bench.runner import merge_rounds, round_order

    assert round_order(0) == ["reference", "optimized"] and round_order(1) == ["optimized", "reference"]
    first, second = _result("optimized", 2.0, 100.0), _result("optimized", 4.0, 300.0)
    merged = merge_rounds([first, second])
    assert merged.step_seconds == [2.0] * 3 + [4.0] * 3 and merged.median_step_s == 3.0
    assert merged.peak_memory_mib == 300.0 and merged.losses == first.losses
