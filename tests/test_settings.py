"""Every setting is declared once (settings.py) and reaches YAML, the commands' options and the sidecar."""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.cli.common import with_settings
from spectralstyle.errors import SpectralStyleError
from spectralstyle.settings import GenerateConfig, TransferConfig, info_of, resolve_settings, setting

runner = CliRunner()


def help_of(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def cli_fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if info_of(f).cli]


@pytest.mark.parametrize("command,cls", [("transfer", TransferConfig), ("batch", TransferConfig),
                                         ("generate", GenerateConfig)])
def test_every_declared_setting_is_an_option_of_its_commands(command, cls):
    text = help_of(command)
    flags = set(re.findall(r"--[a-z0-9-]+", text))
    for name in cli_fields(cls):
        assert f"--{name.replace('_', '-')}" in flags, (command, name)
    assert "--size" in flags


def test_every_declared_setting_is_a_yaml_key(tmp_path):
    for cls in (TransferConfig, GenerateConfig):
        defaults = cls()
        path = tmp_path / f"{cls.__name__}.yaml"
        path.write_text("".join(f"{f.name}: {_yaml(getattr(defaults, f.name))}\n" for f in dataclasses.fields(cls)))
        assert resolve_settings(cls, path) == defaults


def _yaml(value) -> str:
    return "null" if value is None else ("true" if value is True else "false" if value is False else repr(value))


def test_unknown_key_suggests_the_nearest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("crop-size: 96\n")
    with pytest.raises(SpectralStyleError, match=r"crop-size \(did you mean crop_size\?\)"):
        resolve_settings(TransferConfig, path)


@dataclasses.dataclass
class WithNewSetting(TransferConfig):
    """What adding one setting to TransferConfig does: one declaration, nothing else."""

    lambda_new: float = setting(0.25, "Weight of a new loss term.", minimum=0)


def test_a_new_declaration_reaches_options_yaml_validation_and_sidecar(tmp_path):
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @with_settings(WithNewSetting)
    def run(config_file: str = "", *, settings: dict) -> None:
        seen.update(settings)

    result = runner.invoke(demo, ["--help"], env={"COLUMNS": "250"})
    assert "--lambda-new" in result.output and "Weight of a new loss term." in result.output
    assert runner.invoke(demo, ["--lambda-new", "0.5"]).exit_code == 0 and seen["lambda_new"] == 0.5
    path = tmp_path / "c.yaml"
    path.write_text("lambda_new: 2\n")
    assert resolve_settings(WithNewSetting, path).lambda_new == 2.0  # YAML
    path.write_text("lambda_new: -1\n")
    with pytest.raises(SpectralStyleError, match="lambda_new must be non-negative"):  # validation from the bounds
        resolve_settings(WithNewSetting, path)
    assert WithNewSetting().to_dict()["lambda_new"] == 0.25  # what every sidecar stores
    assert WithNewSetting().digest() != TransferConfig().digest()


def test_settings_that_do_not_change_the_result_stay_out_of_the_hash():
    @dataclasses.dataclass
    class WithRunControl(TransferConfig):
        log_every: int = setting(1, "How often to log.", minimum=1, in_hash=False)

    assert WithRunControl(log_every=5).digest() == TransferConfig().digest()
