"""What every command shares: the console, one-line user errors, log files, progress bars, and the
command-line options built from the settings declarations (``settings.py``).

Nothing here imports torch: ``spectralstyle --help`` and ``COMMAND --help`` stay instant. Commands
import the model code inside their function bodies.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import INTERRUPTED_EXIT
from spectralstyle.settings import (
    CLIP_WEIGHTS_HELP,
    DEFAULT_CHECKPOINT_EVERY,
    VGG_WEIGHTS_HELP,
    Settings,
    declared_types,
    describe_type,
    info_of,
    preset_names,
)


def make_console(stderr: bool = False) -> Console:
    """A rich console; written to a file or a pipe (batch logs) it is 200 columns wide, not rich's 80."""
    terminal = Console(stderr=stderr)
    return terminal if terminal.is_terminal else Console(stderr=stderr, width=200)


console = make_console(stderr=True)
log = logging.getLogger("spectralstyle")
log.addHandler(logging.NullHandler())  # log lines go to OUT/spectralstyle.log only
F = TypeVar("F", bound=Callable[..., Any])

USER_ERROR_EXIT = 2


def fail(message: str, code: int = USER_ERROR_EXIT) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    log.error(message)
    return typer.Exit(code)


def interrupted_exit(message: str) -> typer.Exit:
    """The one console line of a command stopped by Ctrl-C or SIGTERM, logged, and exit code 130."""
    console.print(f"[bold yellow]{escape(message)}[/]", highlight=False, soft_wrap=True)
    log.warning(message)
    return typer.Exit(INTERRUPTED_EXIT)


def user_errors(func: F) -> F:
    """Turn the mistakes a user can fix into one line on stderr and exit code 2 (130 for Ctrl-C)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpectralStyleError as exc:
            raise fail(str(exc)) from None
        except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            from spectralstyle.device import is_out_of_memory, out_of_memory_message

            if not is_out_of_memory(exc):
                raise
            raise fail(out_of_memory_message(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", INTERRUPTED_EXIT) from None
        except OSError as exc:  # disk full, read-only file system, a folder where a file should go, ...
            where = f" ({exc.filename})" if exc.filename else ""
            raise fail(f"file system error: {exc.strerror or exc}{where}") from None

    return wrapper  # type: ignore[return-value]


def setup_log_file(out_dir: Path) -> Path:
    """Append this run's log lines to ``OUT/spectralstyle.log``."""
    from spectralstyle.media.files import ensure_writable_dir  # also removes what killed runs left there

    ensure_writable_dir(out_dir)
    path = out_dir / "spectralstyle.log"
    if not any(getattr(h, "log_path", None) == str(path.absolute()) for h in log.handlers):
        from spectralstyle.media.files import open_for_append

        handler = logging.StreamHandler(open_for_append(path))  # never through a symbolic link (O_NOFOLLOW)
        handler.log_path = str(path.absolute())  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


def loss_line(losses: dict[str, float]) -> str:
    """The progress text of one step: the total, then every loss term of the record (whatever terms exist)."""
    terms = " ".join(f"{name} {value:.3g}" for name, value in losses.items() if name not in ("step", "lr", "total"))
    return f"total {losses['total']:.1f} {terms}"


def progress_bar() -> Progress:
    """A progress display with a free ``losses`` column (every task needs ``losses=...``)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=console, transient=False,
    )


# --- options that are not settings ------------------------------------------------------------------
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", "-c", metavar="FILE|PRESET",
    help=f"YAML file of settings, or a shipped preset ({', '.join(preset_names()) or 'none found'}); flags override it.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
ClipWeightsOpt = Annotated[Optional[str], typer.Option("--clip-weights", help=CLIP_WEIGHTS_HELP)]
VggWeightsOpt = Annotated[Optional[str], typer.Option("--vgg-weights", help=VGG_WEIGHTS_HELP)]
# run control: how a run is checkpointed and resumed; not settings (they do not change the result or its hash)
CheckpointEveryOpt = Annotated[int, typer.Option("--checkpoint-every", metavar="N", help=f"Save a checkpoint every N steps in OUT/.checkpoints, to resume an interrupted run (0 = never; default {DEFAULT_CHECKPOINT_EVERY}).")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", metavar="", help="Continue an interrupted run from its checkpoint (default), or start over.")]


def flag(name: str, help: str) -> Any:
    """The type of a plain on/off option ``--name`` (shown without a value type in help)."""
    return Annotated[bool, typer.Option(f"--{name}", help=help, metavar="", show_default=False)]


OverwriteFlag = flag("overwrite", "Replace a result of other settings or inputs under the same name "
                                  "(default: write beside it, with a short hash).")


def print_note(note: str | None) -> None:
    """One ``note:`` line on stderr (nothing for None)."""
    if note:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def note_new_name(out: Path, plain: str, stem: str, suffix: str = ".png") -> None:
    """The one note of a run that writes beside another run's result instead of over it (``runs.naming``)."""
    if stem != plain:
        print_note(f"{out / plain}{suffix} holds the result of other settings or inputs; writing {stem}{suffix} "
                   "beside it (--overwrite replaces it)")


def print_result_paths(*paths: Any) -> None:
    """Every file a command wrote, one path per line on stdout (progress and notes go to stderr), so a
    script can capture them: ``out=$(spectralstyle transfer ...)``. None entries are skipped."""
    for path in paths:
        if path is not None:
            print(path, flush=True)


# --- options built from the settings declarations ----------------------------------------------------
SETTINGS_PARAMETER = "settings"
"""The parameter through which a command built with ``with_settings`` receives the flags given."""


def setting_parameters(cls: type[Settings], include: Iterable[str] | None = None, exclude: Iterable[str] = (),
                       defaults: dict[str, Any] | None = None) -> list[inspect.Parameter]:
    """One keyword-only Typer option per declared setting of ``cls`` (plus ``--size`` for width/height).

    Every option defaults to None, meaning "not given", so the YAML file's value (or the declared
    default) stays; help shows the declared default. ``defaults`` overrides shown and used defaults
    for one command (bench runs random weights by default).
    """
    hints = declared_types(cls)
    wanted = set(include) if include is not None else None
    skipped = set(exclude)
    defaults = defaults or {}
    params = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        info = info_of(f)
        if not info.cli or f.name in skipped or (wanted is not None and f.name not in wanted):
            continue
        kind, _, choices = describe_type(hints[f.name])
        default = defaults.get(f.name, f.default)
        names = [f"--{f.name.replace('_', '-')}" + (f"/--no-{f.name.replace('_', '-')}" if kind is bool else "")]
        if info.short:
            names.append(info.short)
        option = typer.Option(*names, help=info.help, show_default=_shown(default),
                              metavar="" if kind is bool else None)
        annotation = Optional[typing_literal(choices)] if choices else Optional[kind]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(f.name),
                                        annotation=Annotated[annotation, option]))
    if {"width", "height"} <= {f.name for f in dataclasses.fields(cls)} and "size" not in skipped \
            and (wanted is None or "size" in wanted):  # type: ignore[arg-type]
        size_default = defaults.get("size")
        after = next((k for k, p in enumerate(params) if p.name in ("crops", "cutouts")), len(params))
        params.insert(after, inspect.Parameter("size", inspect.Parameter.KEYWORD_ONLY, default=size_default, annotation=Annotated[
            Optional[str], typer.Option("--size", metavar=size_metavar(cls), help=cls.SIZE_HELP,
                                        show_default=size_default or default_size_text(cls))]))
    return params


def size_metavar(cls: type[Settings]) -> str:
    """``N|WxH`` where N is a long side (settings with ``keep_aspect``), else ``WxH``."""
    return "N|WxH" if "keep_aspect" in {f.name for f in dataclasses.fields(cls)} else "WxH"  # type: ignore[arg-type]


def default_size_text(cls: type[Settings]) -> str:
    """The default ``--size`` as a user would type it: '512' (a long side) or '256x256'."""
    width, height = cls.width, cls.height  # type: ignore[attr-defined]
    return str(width) if getattr(cls, "keep_aspect", False) and width == height else f"{width}x{height}"


def typing_literal(choices: tuple[Any, ...]) -> Any:
    from typing import Literal

    return Literal[choices]  # type: ignore[valid-type]


def _shown(default: Any) -> str | bool:
    if default is None:
        return False
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def with_settings(cls: type[Settings], include: Iterable[str] | None = None, exclude: Iterable[str] = (),
                  defaults: dict[str, Any] | None = None) -> Callable[[F], F]:
    """Give a command one option per setting of ``cls``; the function receives the given ones as
    ``settings`` (a dict, None for "not given", ``size`` as 'WxH').

    This is how every setting declared in ``settings.py`` reaches ``transfer``, ``batch``, ``train``,
    ``video`` and ``generate`` without being listed again.
    """
    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)  # real annotations, not strings, for Typer
        own = [p for p in signature.parameters.values() if p.name != SETTINGS_PARAMETER]
        generated = setting_parameters(cls, include, exclude, defaults)
        clash = {p.name for p in own} & {p.name for p in generated}
        if clash:
            raise TypeError(f"{func.__name__}: parameters {sorted(clash)} are settings of {cls.__name__}")
        names = [p.name for p in generated]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name, None) for name in names}
            return func(*args, **kwargs, **{SETTINGS_PARAMETER: given})

        positional = [p for p in own if p.kind != inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.kind == inspect.Parameter.KEYWORD_ONLY]
        wrapper.__signature__ = signature.replace(parameters=positional + keyword + generated)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def resolve_from_flags(cls: type[Settings], config_file: Optional[Path], flags: dict[str, Any], **fixed: Any) -> Any:
    """Defaults < YAML (or preset) < the flags given < ``fixed`` values of the command."""
    from spectralstyle.settings import resolve_settings

    values = {**flags, **{k: v for k, v in fixed.items() if v is not None}}
    size = values.pop("size", None)
    return resolve_settings(cls, config_file, size, **values)


def compared_configs(config: Any, compare: bool) -> list[Any]:
    """The runs of ``--compare``: plain CLIP (band none) first, then the chosen band, with the same seed;
    a note and one run when the band already is none."""
    if not compare:
        return [config]
    if config.band_value.keeps_everything:
        console.print("[yellow]note:[/] --compare compares a band with none; the band is none, so there is "
                      "nothing to compare", highlight=False)
        return [config]
    return [config.replace(band="none"), config]
