"""End-to-end `spectralstyle transfer` / `apply` runs with random weights on tiny sizes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from narrow_models import full_clip_env
from spectralstyle.cli.app import app
from spectralstyle.media.images import read_png_metadata
from spectralstyle.runs.models import Models
from spectralstyle.runs.transfer import run_job
from spectralstyle.settings import TransferConfig

# shared/ lies beside the checkout
BOAT = Path(__file__).resolve().parents[2] / "shared" / "content" / "boat.jpg"
TINY = ["--weights", "random", "--steps", "2", "--size", "64x64", "--crops", "2", "--crop-size", "32",
        "--device", "cpu"]
runner = CliRunner()


def tiny_without(*flags: str) -> list[str]:
    """TINY minus the given flags and their values (so a test can set them itself)."""
    pairs = zip(TINY[::2], TINY[1::2])
    return [x for flag, value in pairs if flag not in flags for x in (flag, value)]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def cli_env() -> dict[str, str]:
    return full_clip_env(SPECTRALSTYLE_OFFLINE="1")  # the acceptance run: ViT-B/32 itself


@pytest.fixture(scope="module")
def acceptance_run(tmp_path_factory):
    """The issue's acceptance command, through the installed console script."""
    out = tmp_path_factory.mktemp("o")
    exe = Path(sys.executable).with_name("spectralstyle")
    proc = subprocess.run([str(exe), "transfer", str(BOAT), "pop art", *TINY, "--out", str(out)],
                          capture_output=True, text=True, env=cli_env(), timeout=600)
    return proc, out


def test_acceptance_writes_png_and_sidecar(acceptance_run):
    proc, out = acceptance_run
    assert proc.returncode == 0, proc.stderr
    png, sidecar = out / "boat_pop-art_c2.png", out / "boat_pop-art_c2.json"
    assert png.is_file() and sidecar.is_file()
    assert Image.open(png).size == Image.open(BOAT).size  # the photo's own size (working size 64x64)
    record = json.loads(sidecar.read_text())
    assert record["working_size"] == [64, 64] and record["output_size"] == list(Image.open(BOAT).size)
    assert record["status"] == "finished" and record["text"] == "pop art" and record["band"] == "c2"
    assert record["config"] == TransferConfig(**record["config"]).to_dict()
    assert record["config"]["seed"] == 1234 and record["config"]["weights"] == "random"
    assert [r["step"] for r in record["losses"]] == [1, 2]
    assert set(record["losses"][0]) >= {"total", "patch", "global", "content", "tv", "lr"}
    assert record["environment"]["torch"] == torch.__version__ and record["environment"]["device"] == "cpu"
    assert record["wall_time_s"] > 0
    assert read_png_metadata(png)["config"] == record["config"]
    assert "wrote" in (out / "spectralstyle.log").read_text()
    assert not list(out.glob(".*tmp*"))  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    # stdout lists every file written and nothing else (one test: its run is a module fixture, built once)
    assert proc.stdout.splitlines() == [str(out / "boat_pop-art_c2.png"), str(out / "boat_pop-art_c2.json")]
    assert "loading CLIP and VGG19" in proc.stderr and "the whole run will take about" in proc.stderr


@pytest.mark.full_clip  # repeats the acceptance run, which is ViT-B/32's
def test_same_seed_repeats_and_other_seed_differs(acceptance_run, tmp_path):
    _, first_out = acceptance_run
    first = json.loads((first_out / "boat_pop-art_c2.json").read_text())["losses"]
    assert invoke("transfer", BOAT, "pop art", *TINY, "--out", tmp_path / "a").exit_code == 0
    again = json.loads((tmp_path / "a" / "boat_pop-art_c2.json").read_text())["losses"]
    assert [r["total"] for r in again] == [r["total"] for r in first]
    assert invoke("transfer", BOAT, "pop art", *TINY, "--seed", "7", "--out", tmp_path / "b").exit_code == 0
    other = json.loads((tmp_path / "b" / "boat_pop-art_c2.json").read_text())["losses"]
    assert other[0]["total"] != first[0]["total"]


def test_yaml_config_and_flag_override(tmp_path, content_image):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("band: c3\nsize: 48x40\nsteps: 1\ncrops: 2\ncrop_size: 32\ncontrast: 1.0\n"
                   "weights: random\ndevice: cpu\n")
    res = invoke("transfer", content_image, "neon art", "--config", cfg, "--band", "4-9,16-49",
                 "--save-every", "1", "--steps", "2", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "o" / "photo_neon-art_4-9_16-49.json").read_text())
    assert record["config"]["band"] == "4-9,16-49"  # flag beats YAML
    assert (record["config"]["width"], record["config"]["height"]) == (48, 40)  # YAML beats default
    assert record["config"]["contrast"] == 1.0 and record["steps_done"] == 2
    assert Image.open(tmp_path / "o" / "photo_neon-art_4-9_16-49.png").size == (96, 80)  # the photo's own size
    assert (tmp_path / "o" / "snapshots" / "photo_neon-art_4-9_16-49_step0001.png").is_file()


def test_compare_and_saved_model_apply(tmp_path, content_image):
    out = tmp_path / "o"
    res = invoke("transfer", content_image, "pop art", *TINY, "--steps", "1", "--compare", "--save-model", "--out", out,
                 "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # --json: one machine-readable object on stdout, every file written
    assert sorted(summary["files"]) == sorted(str(p) for p in out.iterdir() if p.suffix in (".png", ".json", ".pt"))
    assert summary["results"][-1].endswith("_compare_none-vs-c2.png") and len(summary["results"]) == 3
    for band in ("none", "c2"):
        assert (out / f"photo_pop-art_{band}.png").is_file()
    compare = Image.open(out / "photo_pop-art_compare_none-vs-c2.png")
    assert compare.width == 2 * 96 and compare.height > 80  # two results at the photo's own 96x80
    model = out / "photo_pop-art_c2.stylenet.pt"
    assert model.is_file()
    # apply at another, odd resolution: the network is fully convolutional
    odd = tmp_path / "odd.png"
    Image.new("RGB", (50, 37), (200, 40, 40)).save(odd)
    res = invoke("apply", model, odd, "--out", tmp_path / "applied", "--device", "cpu")
    assert res.exit_code == 0, res.output
    applied = tmp_path / "applied" / "odd_photo_pop-art_c2_applied.png"
    assert res.stdout.splitlines() == [str(applied)]  # results on stdout, one path per line
    assert Image.open(applied).size == (50, 37)
    assert read_png_metadata(applied)["trained_with"]["config"]["band"] == "c2"
    tiny = tmp_path / "tiny.png"  # smaller than the padding to a multiple of 8
    Image.new("RGB", (5, 3), (10, 200, 40)).save(tiny)
    assert invoke("apply", model, tiny, "--out", tmp_path / "applied", "--device", "cpu").exit_code == 0
    assert Image.open(tmp_path / "applied" / "tiny_photo_pop-art_c2_applied.png").size == (5, 3)
    # images sharing a stem do not overwrite each other; bracketed folder names are printed as they are
    same_stem = [tmp_path / "a" / "odd.png", tmp_path / "odd.jpg"]
    same_stem[0].parent.mkdir()
    for path in same_stem:
        Image.new("RGB", (24, 16), (10, 10, 200)).save(path)
    res = invoke("apply", model, *same_stem, "--out", tmp_path / "same[red]", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "same[red]").glob("odd_*_photo_pop-art_c2_applied.png"))) == 2
    assert "same[red]" in res.output
    for bad, message in ((["--max-side", "3"], "--max-side"), (["--contrast", "-1"], "--contrast"),
                         (["--contrast", "nan"], "--contrast")):
        res = invoke("apply", model, odd, *bad, "--out", tmp_path / "applied")
        assert res.exit_code == 2 and message in res.output, res.output


BAD_INPUTS = [
    (["transfer", "missing.jpg", "pop art"], "does not exist"),
    (["transfer", "{notimage}", "pop art"], "not a readable image"),
    (["transfer", "{boat}", "pop art", "--size", "60x64"], "multiples of 8"),
    (["transfer", "{boat}", "pop art", "--size", "big"], "WIDTHxHEIGHT"),
    (["transfer", "{boat}", "pop art", "--size", "0"], "size '0' has a side of 0 pixels"),
    (["transfer", "{boat}", "pop art", "--band", "c9"], "unknown band"),
    (["transfer", "{boat}", "   "], "empty"),
    (["transfer", "{boat}", "very " * 80], "too long"),
    (["transfer", "{boat}", "pop art", "--device", "tpu"], "unknown device"),
    (["transfer", "{boat}", "pop art", "--weights", "pretrained"], "no pretrained weights for CLIP ViT-B/32"),
    (["transfer", "{boat}", "pop art", "--crop-size", "128"], "larger than the short side of the working size"),
    (["transfer", "{boat}", "pop art", "--config", "nope.yaml"], "does not exist"),
    (["transfer", "{boat}", "pop art", "--precision", "fp16"], "fp16 is for GPUs"),
    (["transfer", "{boat}", "pop art", "--size", "8x8", "--crop-size", "8"], "at least 16 pixels"),
    (["transfer", "{boat}", "pop art", "--seed", "99999999999999999999"], "seed must be between"),
    (["transfer", "{boat}", "pop art", "--lr", "nan"], "finite number"),
    (["transfer", "{boat}", "pop art", "--contrast", "inf"], "finite number"),
    (["transfer", "{boat}", "pop art", "--save-every", "-1"], "save_every must be non-negative"),
    (["transfer", "{boat}", "pop art", "--lambda-tv", "1e38"], "the run diverged"),
    (["transfer", "{boat}", "pop art", "--out", "{notimage}"], "is not a folder"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, message):
    notimage = tmp_path / "notes.jpg"
    notimage.write_text("hello")
    args = [a.format(boat=BOAT, notimage=notimage) for a in args]
    extra = tiny_without(*(a for a in args if a.startswith("--")))
    res = invoke(*args, *extra, *([] if "--out" in args else ["--out", tmp_path / "out"]))
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    if message == "the run diverged":  # found during the run: the status lines and the progress row precede it
        lines = [line for line in lines if not line.startswith(("loading ", "first step took"))][1:]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda(tmp_path):
    res = invoke("transfer", BOAT, "pop art", *tiny_without("--device"), "--device", "cuda")
    assert res.exit_code == 2 and "CUDA was requested" in res.output


def test_interrupt_keeps_last_snapshot_and_no_final_output(tmp_path, content_image):
    config = TransferConfig(weights="random", steps=50, width=32, height=32, keep_aspect=False, crops=2, crop_size=32,
                            device="cpu", save_every=1)
    models = Models.load(config)

    def stop_at_three(step, losses):
        if step == 3:
            raise KeyboardInterrupt

    result = run_job(content_image, "pop art", config, models, tmp_path, on_step=stop_at_three)
    assert result.interrupted and result.record["status"] == "interrupted" and result.record["steps_done"] == 3
    assert not (tmp_path / "photo_pop-art_c2.png").exists() and not (tmp_path / "photo_pop-art_c2.json").exists()
    snaps = sorted(p.name for p in (tmp_path / "snapshots").glob("*.png"))
    assert snaps == ["photo_pop-art_c2_step0001.png", "photo_pop-art_c2_step0002.png", "photo_pop-art_c2_step0003.png"]


@pytest.mark.slow  # covered by test_resume's real SIGTERM to this command (exit 130, one line, snapshot kept, no
# final image), test_fail_early's real SIGINT to batch (same handler) and the in-process Ctrl-C test above
def test_sigint_exits_130_and_keeps_snapshots(tmp_path, content_image):
    """A real Ctrl-C (SIGINT) to the console script in the middle of a run."""
    exe = Path(sys.executable).with_name("spectralstyle")
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [str(exe), "transfer", str(content_image), "pop art", "--weights", "random", "--steps", "100000",
         "--size", "32x32", "--crops", "2", "--crop-size", "32", "--device", "cpu", "--save-every", "1",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((out / "snapshots").glob("*.png")):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list((out / "snapshots").glob("*.png"))
    assert not (out / "photo_pop-art_c2.png").exists()


@pytest.mark.parametrize("line,message", [
    ("steps: 1.5", "steps must be a whole number"),
    ("seed: abc", "seed must be a whole number"),
    ("crops: '2'", "crops must be a whole number"),
    ("source_text: 5", "source_text must be text"),
    ("threshold: [1]", "threshold must be a number"),
    ("lambda_tv: null", "lambda_tv must be a number"),
    ("steps: true", "steps must be a whole number"),
    ("compile: maybe", "compile must be true or false"),
    ("band: 4", "band must be text"),
    ("lr: abc", "lr must be a number"),
    ("height: 40", "both size and width/height"),
])
def test_bad_yaml_values_are_one_line_errors(tmp_path, line, message):
    base = {"weights": "random", "device": "cpu", "steps": "1", "size": "64x64", "crops": "2", "crop_size": "32"}
    key = line.split(":")[0]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in base.items() if k != key) + line + "\n")
    res = invoke("transfer", BOAT, "pop art", "--config", cfg, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_unreadable_config_files(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    for cfg, message in ((binary, "not readable UTF-8"), (tmp_path, "is not a file")):
        res = invoke("transfer", BOAT, "pop art", *TINY, "--config", cfg, "--out", tmp_path / "o")
        assert res.exit_code == 2 and message in res.output, res.output
