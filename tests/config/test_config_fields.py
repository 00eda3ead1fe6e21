"""Every command's options come from setting() declarations: one field reaches help, parsing, validation
and the sidecar, for training as for transfer (config/fields.py, cli/common.with_settings)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.cli.common import GivenFlags, resolve_from_flags, with_settings
from spectralstyle.config.fields import info_of, setting, size_pairs
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import (
    LOSS_TERMS,
    AnalyzeSettings,
    ApplyConfig,
    BenchSettings,
    EvaluateSettings,
    RunControl,
    TrainSettings,
    TransferConfig,
    VideoSettings,
)

runner = CliRunner()


def help_of(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def options_of(cls) -> list[str]:
    names = [f.name for f in dataclasses.fields(cls) if info_of(f).cli] + list(size_pairs(cls))
    return [f"--{name.replace('_', '-')}" for name in names]


@pytest.mark.parametrize("command,classes", [
    ("train", (TransferConfig, TrainSettings)), ("batch", (TransferConfig, TrainSettings, RunControl)),
    ("video", (TransferConfig, TrainSettings, VideoSettings)), ("apply", (ApplyConfig,)),
    ("evaluate", (EvaluateSettings,)), ("analyze", (AnalyzeSettings,)), ("bench", (BenchSettings,)),
    ("transfer", (TransferConfig, RunControl)),
])
def test_every_declared_setting_is_an_option_of_its_commands(command, classes):
    flags = set(re.findall(r"--[a-z0-9-]+", help_of(command)))
    # a style model is applied later, at any size: train and video leave out transfer's output size on purpose
    left_out = {"--output-size"} if command in ("train", "video") else set()
    for cls in classes:
        missing = set(options_of(cls)) - flags - left_out
        assert not missing, (command, cls.__name__, missing)


@dataclasses.dataclass
class WithWarmup(TrainSettings):
    """What adding one training option does: one declaration, nothing else."""

    warmup: int = setting(0, "Steps at a reduced learning rate before training.", minimum=0, maximum=1000)


def test_a_new_training_option_is_one_field(tmp_path):
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @with_settings(TransferConfig, WithWarmup)
    def run(*, settings: dict) -> None:
        seen["train"] = resolve_from_flags(WithWarmup, None, settings)

    shown = runner.invoke(demo, ["--help"], env={"COLUMNS": "250"}).output
    assert "--warmup" in shown and "Steps at a reduced learning rate" in shown and "--train-size" in shown
    assert runner.invoke(demo, ["--warmup", "7", "--train-size", "32x24"]).exit_code == 0
    train = seen["train"]
    assert (train.warmup, train.crop) == (7, (32, 24))
    bad = runner.invoke(demo, ["--warmup", "-1"])
    assert bad.exit_code != 0 and "warmup must be in [0, 1000]" in str(bad.exception)
    path = tmp_path / "c.yaml"
    path.write_text("warmup: 5\nsteps: 3\n")  # one file holds transfer and training settings
    flags = GivenFlags()
    flags.classes = (TransferConfig, WithWarmup)  # what with_settings passes: the command's settings classes
    assert resolve_from_flags(WithWarmup, path, flags).warmup == 5 and resolve_from_flags(TransferConfig, path,
                                                                                        flags).steps == 3
    import torch

    from spectralstyle.runs.train import train_record

    record = train_record("pop art", TransferConfig(), train, [], torch.device("cpu")).to_dict()  # the sidecar
    assert record["train"]["warmup"] == 7 and record["train"]["train_width"] == 32


def test_contrast_is_checked_once_from_its_declaration():
    with pytest.raises(SpectralStyleError) as transfer_error:
        TransferConfig(contrast=0.0)
    with pytest.raises(SpectralStyleError) as apply_error:
        ApplyConfig(contrast=0.0)
    rule = "contrast must be positive (1 = unchanged; 0 would be a flat grey picture), got 0.0"
    assert str(transfer_error.value) == rule  # a YAML key too: named as the key
    assert str(apply_error.value) == f"--{rule}"  # a command-line option only: named as the option
    result = runner.invoke(app, ["apply", "missing.stylenet.pt", "x.png", "--contrast", "0"])
    assert result.exit_code == 2 and "--contrast must be positive" in result.output


def test_run_control_is_declared_and_stays_out_of_the_hash():
    assert RunControl().to_dict() == {"checkpoint_every": 20, "resume": True}
    with pytest.raises(SpectralStyleError, match="--checkpoint-every must be non-negative"):
        RunControl(checkpoint_every=-1)


def test_presets_are_offered_where_they_apply():
    transfer, generate = help_of("transfer"), help_of("generate")
    assert "(default, paper, quick)" in transfer and "generate" not in transfer.split("--config")[1].split("\n")[0]
    assert "(generate)" in generate


@pytest.mark.parametrize("command", ["transfer", "batch", "train", "video", "apply", "evaluate", "analyze",
                                     "bench", "generate", "weights", "weights list"])
def test_h_is_help(command):
    words = command.split()
    short = runner.invoke(app, [*words, "-h"], env={"COLUMNS": "250"})
    assert short.exit_code == 0 and short.output == help_of(*words)


def test_loss_terms_follow_the_lambda_settings():
    lambdas = [f.name for f in dataclasses.fields(TransferConfig) if f.name.startswith("lambda_")]
    assert LOSS_TERMS == tuple(name.removeprefix("lambda_") for name in lambdas) == ("patch", "global", "content", "tv")
    assert TransferConfig().digest() == "7270d6796c2c543e"  # the defaults (long side 512 at the photo's aspect)
