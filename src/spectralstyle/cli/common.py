"""What every command shares: the console, one-line user errors, log files, progress bars, and the
command-line options built from the settings declarations (``settings.py``).

Nothing here imports torch: ``spectralstyle --help`` and ``COMMAND --help`` stay instant. Commands
import the model code inside their function bodies.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spectralstyle.config.fields import Settings, declared_types, describe_type, field_names, info_of, size_pairs
from spectralstyle.config.files import all_names, preset_names
from spectralstyle.errors import MESSAGE_LIMIT, SpectralStyleError, shorten
from spectralstyle.interrupts import INTERRUPTED_EXIT


def make_console(stderr: bool = False) -> Console:
    """A rich console; written to a file or a pipe (batch logs) it is 200 columns wide, not rich's 80."""
    terminal = Console(stderr=stderr)
    return terminal if terminal.is_terminal else Console(stderr=stderr, width=200)


console = make_console(stderr=True)
"""Progress, notes and errors: stderr. Results (the paths written, or --json) go to stdout."""
log = logging.getLogger("spectralstyle")
log.addHandler(logging.NullHandler())  # log lines go to OUT/spectralstyle.log only
F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=Settings)

USER_ERROR_EXIT = 2
BROKEN_PIPE_EXIT = 1  # what click exits with when the reader of --help's pipe has gone: the same for every output


def fail(message: str, code: int = USER_ERROR_EXIT) -> typer.Exit:
    """Print ``error: message`` as one line (at most ``MESSAGE_LIMIT`` characters) and return the exit."""
    line = shorten(" ".join(str(message).split()), MESSAGE_LIMIT)
    console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    log.error(line)
    return typer.Exit(code)


def note(message: str, out: Console | None = None) -> None:
    """One ``note:`` line on stderr (or on a live progress display's console)."""
    (out or console).print(f"[yellow]note:[/] {escape(shorten(message, 2 * MESSAGE_LIMIT))}", highlight=False,
                           soft_wrap=True)


def interrupted_exit(message: str) -> typer.Exit:
    """The one console line of a command stopped by Ctrl-C or SIGTERM, logged, and exit code 130."""
    console.print(f"[bold yellow]{escape(message)}[/]", highlight=False, soft_wrap=True)
    log.warning(message)
    return typer.Exit(INTERRUPTED_EXIT)


def one_line_errors(call: Callable[[], Any]) -> Any:
    """Run a command; the mistakes a user can fix become one line on stderr and exit code 2 (130 for Ctrl-C).

    Called once, by the app's group (``cli/app.py``), for every command: no command has to remember it.
    """
    try:
        return call()
    except SpectralStyleError as exc:
        raise fail(str(exc)) from None
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if "torch" not in sys.modules:
            raise
        from spectralstyle.device import is_out_of_memory, out_of_memory_message

        if not is_out_of_memory(exc):
            raise
        raise fail(out_of_memory_message(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", INTERRUPTED_EXIT) from None
    except BrokenPipeError:  # `spectralstyle ... | head`: the reader has gone; stop quietly (no "error:" line)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter flushes stdout at exit: not into the pipe)
        raise typer.Exit(BROKEN_PIPE_EXIT) from None
    except OSError as exc:  # disk full, read-only file system, a folder where a file should go, ...
        where = f" ({exc.filename})" if exc.filename else ""
        raise fail(f"file system error: {exc.strerror or exc}{where}") from None


def print_results(paths: Iterable[Path | str | None], summary: dict[str, Any] | None = None,
                  as_json: bool = False) -> None:
    """The command's results on stdout: every file written, one path per line; or, with ``--json``, one
    JSON object (``summary`` plus ``files``) that a script can read."""
    files = [str(p) for p in paths if p]
    if as_json:
        sys.stdout.write(json.dumps({**(summary or {}), "files": files}, default=str, sort_keys=True) + "\n")
    else:
        for path in files:
            sys.stdout.write(path + "\n")
    sys.stdout.flush()


def files_of(result: Any) -> list[Path]:
    """Every file a run wrote: its image, sidecar, saved model and preview (what stdout lists)."""
    record = getattr(result, "record", None) or {}
    extra = [record.get("preview"), record.get("model")]
    files = [result.image, result.sidecar, getattr(result, "model", None), *extra]
    unique: list[Path] = []
    for f in files:
        if f and Path(f) not in unique:
            unique.append(Path(f))
    return unique


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


QUICK_HINT_SECONDS = 600
"""On CPU, a run estimated above this gets one line suggesting ``--config quick``."""


def duration(seconds: float) -> str:
    """'45 s', '12 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RunEstimate:
    """Early in a run, one line with the estimated time of the whole run (all its steps, over every run of the
    command); on CPU, above ``QUICK_HINT_SECONDS``, one line suggesting the quick preset.

    The first step includes warm-up (allocation, kernel selection), often several steps' worth, so the
    estimate is told after the second step: the time so far plus the second step's time for each step left.
    A resumed run (its first step numbered above 1) counts only the steps it has left.
    """

    def __init__(self, total_steps: int, device: Any, out: Console | None = None, quick_hint: bool = True) -> None:
        import time

        self.total, self.on_cpu, self.out, self.quick_hint = total_steps, str(device) == "cpu", out, quick_hint
        self.clock = time.perf_counter
        self.started = self.clock()
        self.told = False
        self.first_done: float | None = None

    def step(self, number: int | None = None) -> None:
        """Call after each step (of any run of the command); ``number``: the step's own number in its run."""
        if self.told:
            return
        now = self.clock()
        if self.first_done is None:
            self.first_done = now
            if number is not None and number > 1:
                self.total -= number - 1  # resumed: those steps were done before
            if self.total > 1:
                return  # the second step shows the pace without the warm-up
            pace, estimate = f"one step took {duration(now - self.started)}", now - self.started
        else:
            per_step = now - self.first_done
            pace = f"first step took {duration(self.first_done - self.started)}, then {duration(per_step)} a step"
            estimate = now - self.started + per_step * (self.total - 2)
        self.told = True
        out = self.out or console
        out.print(f"[dim]{pace}; the whole run will take about {duration(estimate)}[/]", highlight=False)
        if self.on_cpu and self.quick_hint and estimate > QUICK_HINT_SECONDS:
            note(f"about {duration(estimate)} on this CPU: `--config quick` gives a first result in a fraction of "
                 "that (fewer steps and crops, a smaller size), or run on a GPU", out)


def loading_models(what: str, device: str = "") -> None:
    """The status line shown while the models load (seconds, before the first step)."""
    console.print(f"[dim]loading {what}{f' on {device}' if device and device != 'auto' else ''}…[/]", highlight=False)


# --- options that are not settings ------------------------------------------------------------------
def config_option(*classes: type[Settings]) -> Any:
    """``--config FILE|PRESET``, offering only the shipped presets that hold settings of these classes."""
    presets = preset_names(*classes)
    return Annotated[Optional[Path], typer.Option(
        "--config", "-c", metavar="FILE|PRESET",
        help=f"YAML file of settings, or a shipped preset ({', '.join(presets) or 'none'}); flags override it.")]


OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON summary on stdout instead "
                                        "of the list of files.", metavar="", show_default=False)]


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


class GivenFlags(dict):
    """The settings flags given on the command line (None: not given), and the classes they belong to."""

    classes: tuple[type[Settings], ...] = ()


BARE_VALUES: dict[str, Any] = {}
"""Option -> the value it means when given alone (declared with ``setting(..., bare=...)``), for the app's
parser (``cli/app.py``): click options take a value or none, not either."""


def with_bare_values(args: list[str]) -> list[str]:
    """``args`` with the value of every option of ``BARE_VALUES`` given alone (last, or before another option)
    put in: ``--preserve-color --steps 2`` -> ``--preserve-color luminance --steps 2``."""
    out: list[str] = []
    for k, arg in enumerate(args):
        out.append(arg)
        if arg in BARE_VALUES and (k + 1 == len(args) or args[k + 1].startswith("-")):
            out.append(str(BARE_VALUES[arg]))
    return out


def setting_parameters(cls: type[Settings], include: Iterable[str] | None = None, exclude: Iterable[str] = (),
                       defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None,
                       ) -> list[inspect.Parameter]:
    """One keyword-only Typer option per declared setting of ``cls`` (plus one 'WxH' option per size pair).

    Every option defaults to None, meaning "not given", so the YAML file's value (or the declared
    default) stays; help shows the declared default. ``defaults`` overrides shown and used defaults
    for one command (bench runs random weights by default); ``helps`` the help text.
    """
    hints = declared_types(cls)
    wanted = set(include) if include is not None else None
    skipped = set(exclude)
    defaults, helps = defaults or {}, helps or {}
    params = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        info = info_of(f)
        if not info.cli or f.name in skipped or (wanted is not None and f.name not in wanted):
            continue
        kind, _, choices = describe_type(hints[f.name])
        default = defaults.get(f.name, f.default)
        names = [f"--{f.name.replace('_', '-')}" + (f"/--no-{f.name.replace('_', '-')}" if kind is bool else "")]
        if info.bare is not None:
            BARE_VALUES[names[0]] = info.bare
        if info.short:
            names.append(info.short)
        option = typer.Option(*names, help=helps.get(f.name, info.help), show_default=_shown(default),
                              metavar="" if kind is bool else info.metavar)
        annotation = Optional[typing_literal(choices)] if choices else Optional[kind]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(f.name),
                                        annotation=Annotated[annotation, option]))
    for pair, (width, height) in size_pairs(cls).items():
        if pair in skipped or (wanted is not None and pair not in wanted):
            continue
        pair_default = defaults.get(pair)
        declared = (getattr(cls, width, None), getattr(cls, height, None))
        if pair == "size":  # ``--size``: a long side N where the settings keep the photo's aspect, else WxH
            metavar = size_metavar(cls)
            shown = pair_default or (default_size_text(cls) if None not in declared else False)
        else:
            metavar = "WxH"
            shown = pair_default or (f"{declared[0]}x{declared[1]}" if None not in declared else False)
        after = next((k for k, p in enumerate(params) if p.name in ("crops", "cutouts")), len(params))
        option = typer.Option(f"--{pair.replace('_', '-')}", metavar=metavar, help=helps.get(pair, cls.pair_help(pair)),
                              show_default=False if pair in helps else shown)
        params.insert(after, inspect.Parameter(pair, inspect.Parameter.KEYWORD_ONLY, default=pair_default,
                                               annotation=Annotated[Optional[str], option]))
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


def with_settings(*classes: type[Settings], include: Iterable[str] | None = None, exclude: Iterable[str] = (),
                  defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None) -> Callable[[F], F]:
    """Give a command one option per setting of ``classes``; the function receives the given ones as
    ``settings`` (a :class:`GivenFlags` dict, None for "not given", 'WxH' options as text).

    This is how every setting declared in ``settings.py`` reaches every command without being listed
    again. A name declared by two classes is one option that feeds both (``device``).
    """
    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)  # real annotations, not strings, for Typer
        own = [p for p in signature.parameters.values() if p.name != SETTINGS_PARAMETER]
        generated: list[inspect.Parameter] = []
        for cls in classes:
            seen = {p.name for p in generated}
            generated += [p for p in setting_parameters(cls, include, exclude, defaults, helps) if p.name not in seen]
        clash = {p.name for p in own} & {p.name for p in generated}
        if clash:
            raise TypeError(f"{func.__name__}: parameters {sorted(clash)} are settings of {classes}")
        names = [p.name for p in generated]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = GivenFlags({name: kwargs.pop(name, None) for name in names})
            given.classes = classes
            return func(*args, **kwargs, **{SETTINGS_PARAMETER: given})

        positional = [p for p in own if p.kind != inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own
                   if p.kind == inspect.Parameter.KEYWORD_ONLY]
        wrapper.__signature__ = signature.replace(parameters=positional + keyword + generated)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def resolve_from_flags(cls: type[S], config_file: Optional[Path], flags: dict[str, Any], **fixed: Any) -> S:
    """Defaults < YAML (or preset) < the flags given < ``fixed`` values of the command.

    Only the flags that are settings of ``cls`` reach it; the file may also hold the settings of the
    command's other classes (``train``: transfer and training settings in one file).
    """
    from spectralstyle.config.fields import require_files
    from spectralstyle.config.files import resolve_settings

    mine = field_names(cls) | set(size_pairs(cls))
    values = {k: v for k, v in {**flags, **{k: v for k, v in fixed.items() if v is not None}}.items() if k in mine}
    known = all_names(*getattr(flags, "classes", ()))
    size = values.pop("size", None)
    resolved = resolve_settings(cls, config_file, size, known=known, **values)
    require_files(resolved)  # a missing --mask or --mix: one line in the command's first second
    return resolved
