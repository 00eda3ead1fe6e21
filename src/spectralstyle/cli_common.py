"""What every command shares: the console, one-line user errors, log files and transfer options.

Options are defined once here as annotated types, so ``transfer``, ``batch`` and ``generate`` list
them with the same flags and help text.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .config import FIELD_NAMES, TransferConfig, resolve_config
from .device import is_out_of_memory, out_of_memory_message
from .errors import SpectralStyleError
from .image_io import ensure_writable_dir
from .interrupts import INTERRUPTED_EXIT
from .resume import DEFAULT_CHECKPOINT_EVERY



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
    ensure_writable_dir(out_dir)
    path = out_dir / "spectralstyle.log"
    if not any(getattr(h, "baseFilename", None) == str(path.resolve()) for h in log.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


# --- options shared by transfer, batch and generate -------------------------------------------------
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML file of settings; flags override it.")]
BandOpt = Annotated[Optional[str], typer.Option("--band", "-b", help="Kept frequencies: c1, c2, c3, none, or indices like '4-7,16-49'.")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Optimisation steps (reference 200).")]
SizeOpt = Annotated[Optional[str], typer.Option("--size", help="Working size WIDTHxHEIGHT, multiples of 8 (reference 512x512).")]
CropsOpt = Annotated[Optional[int], typer.Option("--crops", help="Random crops per step (reference 64).")]
CropSizeOpt = Annotated[Optional[int], typer.Option("--crop-size", help="Crop side in pixels (reference 128).")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (reference 5e-4).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed; the same seed repeats a run on the same device.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="pretrained (download once, then cached) or random (no download; for tests).")]
ClipWeightsOpt = Annotated[Optional[str], typer.Option("--clip-weights", help="Local OpenAI CLIP checkpoint (.pt) instead of the download.")]
VggWeightsOpt = Annotated[Optional[str], typer.Option("--vgg-weights", help="Local torchvision VGG19 state dict instead of the download.")]
SaveEveryOpt = Annotated[Optional[int], typer.Option("--save-every", help="Write a snapshot every N steps (0 = never).")]
ContrastOpt = Annotated[Optional[float], typer.Option("--contrast", help="Contrast factor of the saved image (reference 1.5, 1 = none).")]
LambdaPatchOpt = Annotated[Optional[float], typer.Option("--lambda-patch", help="Weight of the patch directional loss (9000).")]
LambdaGlobalOpt = Annotated[Optional[float], typer.Option("--lambda-global", help="Weight of the global directional loss (500).")]
LambdaContentOpt = Annotated[Optional[float], typer.Option("--lambda-content", help="Weight of the VGG content loss (150).")]
LambdaTvOpt = Annotated[Optional[float], typer.Option("--lambda-tv", help="Weight of the total-variation loss (0.002).")]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", help="Patch losses below this are ignored (0.7).")]
SourceEncoderOpt = Annotated[Optional[str], typer.Option("--source-encoder", help="Embed the content image with plain CLIP (reference) or the filtered encoder.")]
PrecisionOpt = Annotated[Optional[str], typer.Option("--precision", help="fp32 (reference), bf16 or fp16 autocast.")]
CompileOpt = Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the networks (faster on GPU after warm-up).")]
# run control: how a run is checkpointed and resumed; not settings (they do not change the result or its hash)
CheckpointEveryOpt = Annotated[int, typer.Option("--checkpoint-every", metavar="N", help=f"Save a checkpoint every N steps in OUT/.checkpoints, to resume an interrupted run (0 = never; default {DEFAULT_CHECKPOINT_EVERY}).")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue an interrupted run from its checkpoint (default), or start over.")]


def config_from_flags(config_file: Optional[Path], size: Optional[str], flags: dict[str, Any]) -> TransferConfig:
    """Settings from a command's parameters (its ``locals()``): those named like a TransferConfig field."""
    return build_config(config_file, size=size, **{k: v for k, v in flags.items() if k in FIELD_NAMES})


def build_config(config_file: Optional[Path], size: Optional[str] = None, **flags: Any) -> TransferConfig:
    """Defaults < YAML < flags, with ``--size WxH`` split into width and height."""
    return resolve_config(config_file, size, **flags)
