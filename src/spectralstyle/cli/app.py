"""The ``spectralstyle`` app: every command registered here explicitly, one-line errors for all, --version.

Start-up stays instant: this package imports no torch; each command imports the model code when it runs.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # Typer >= 0.20 ships its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on plain click
    from click.exceptions import NoArgsIsHelpError, UsageError

from spectralstyle import __version__
from spectralstyle.cli import apply as cli_apply
from spectralstyle.cli import batch as cli_batch
from spectralstyle.cli import bench as cli_bench
from spectralstyle.cli import demo as cli_demo
from spectralstyle.cli import evaluate as cli_evaluate
from spectralstyle.cli import generate as cli_generate
from spectralstyle.cli import study as cli_study
from spectralstyle.cli import train as cli_train
from spectralstyle.cli import transfer as cli_transfer
from spectralstyle.cli import video as cli_video
from spectralstyle.cli import weights as cli_weights
from spectralstyle.cli.common import fail, one_line_errors, with_bare_values


class OneLineUsageErrors(TyperGroup):
    """Bad flags and values (``--precision fp17``, an unknown option) are one line and exit code 2,
    like every other user mistake, instead of a usage box."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            raise self._one_line(exc) from None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """The command and its arguments, with the values of options given alone put in (``with_bare_values``)."""
        name, command, rest = super().resolve_command(ctx, args)
        return name, command, with_bare_values(rest)

    def invoke(self, ctx: Any) -> Any:
        """Every command runs here: its user errors become one line (``one_line_errors``), once for all."""
        try:
            return one_line_errors(lambda: super(OneLineUsageErrors, self).invoke(ctx))
        except UsageError as exc:
            raise self._one_line(exc) from None

    @staticmethod
    def _one_line(exc: UsageError) -> BaseException:
        if isinstance(exc, NoArgsIsHelpError):  # the help was printed: not an error
            return exc
        where = exc.ctx.command_path if exc.ctx is not None else "spectralstyle"
        message = exc.format_message().replace("Value error, ", "")
        return fail(f"{message} (see: {where} --help)", exc.exit_code)


app = typer.Typer(
    cls=OneLineUsageErrors,
    name="spectralstyle",
    help="Text-guided style transfer with SpectralCLIP: the style of the text, without its written words.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # -h is --help, for every command
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectralstyle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                               help="Print the version and exit.")] = False) -> None:
    """Text-guided style transfer with SpectralCLIP."""


# --- every command, registered explicitly (an import error in a command is an error, not a missing command)
app.command("transfer")(cli_transfer.transfer)
app.command("demo")(cli_demo.demo)
app.command("apply")(cli_apply.apply)
app.command("batch")(cli_batch.batch)
app.command("evaluate")(cli_evaluate.evaluate)
app.command("analyze")(cli_evaluate.analyze)
app.command("generate")(cli_generate.generate)
app.command("train")(cli_train.train)
app.command("video")(cli_video.video)
app.command("bench")(cli_bench.bench)
app.command("study")(cli_study.study)
app.add_typer(cli_weights.weights_app, name="weights")


def main() -> None:
    app(prog_name="spectralstyle")  # also under `python -m spectralstyle` and torchrun (usage, completion)
