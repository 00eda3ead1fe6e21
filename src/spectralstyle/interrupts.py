"""Ctrl-C and SIGTERM end an optimisation at the end of its current step, so that its state can be saved.

Why not let the signal raise at once: a ``KeyboardInterrupt`` raised in the middle of a step may leave
the network updated but the optimiser, the schedule or the loss history not, and a checkpoint of that
state would not continue the run bit for bit. So inside ``stop_at_step_boundary()`` the first SIGINT
or SIGTERM (what Slurm sends on preemption and time-out) only records the request; every optimisation
loop calls ``raise_if_stop_requested()`` between two steps, which raises ``StopRequested`` (a
``KeyboardInterrupt``, so every existing handler of Ctrl-C treats it alike). A second signal stops at
once, for a user who does not want to wait for the step to end.

Every command that runs an optimisation is decorated with ``stops_at_step_boundary`` (transfer,
generate, batch; later ones such as train or video must be too), and both signals end the command
with exit code 130 and one line saying how to resume.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED_EXIT = 130
"""The exit code of a command stopped by Ctrl-C or SIGTERM, whichever signal: 'interrupted, resumable'."""

_requested: list[int] = []  # the signal numbers received inside the active context (empty: none)
_depth: list[bool] = []  # non-empty while the context is active
_at_once: list[bool] = []  # non-empty inside ``interruptible()``: the first signal stops at once


class StopRequested(KeyboardInterrupt):
    """A signal asked the run to stop; raised between two steps, where the run's state is consistent."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_requested() -> int | None:
    """The signal that asked to stop (SIGINT or SIGTERM), or None."""
    return _requested[0] if _requested else None


def raise_if_stop_requested() -> None:
    """Call between two optimisation steps: raises ``StopRequested`` once a signal has asked to stop."""
    signum = stop_requested()
    if signum is not None:
        raise StopRequested(signum)


def _handler(signum: int, frame: object) -> None:
    if _requested:  # the second signal: stop now, mid-step if need be
        raise KeyboardInterrupt
    _requested.append(signum)
    if _at_once:  # reading or fetching files: no state to keep, so no reason to wait
        raise StopRequested(signum)
    if signum == signal.SIGINT and sys.stderr is not None and sys.stderr.isatty():
        # os.write, not print or logging: those take locks the interrupted main thread may hold
        os.write(2, b"\nstopping after the current step (press Ctrl-C again to stop at once)\n")


@contextmanager
def stop_at_step_boundary() -> Iterator[None]:
    """Within: SIGINT and SIGTERM ask the running optimisation to stop after its current step.

    Outside the main thread (where Python cannot install signal handlers) nothing changes; nested
    uses share the outermost one. The handlers in place before are restored on exit, and a pending
    request is forgotten.
    """
    if threading.current_thread() is not threading.main_thread() or _depth:
        yield  # another thread, or already inside this context (a command within a command): nothing to add
        return
    previous = {signum: signal.getsignal(signum) for signum in INTERRUPT_SIGNALS}
    _requested.clear()
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, _handler)
    _depth.append(True)
    try:
        yield
    finally:
        _depth.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _requested.clear()


def _stop_now(signum: int, frame: object) -> None:
    raise StopRequested(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within: the first SIGINT or SIGTERM raises ``StopRequested`` at once, also inside
    ``stop_at_step_boundary()``: for work with no state worth keeping (reading, hashing and downloading
    weights), which may take minutes on a large or slow file. A signal that came just before stops too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raise_if_stop_requested()
    if _depth:  # inside stop_at_step_boundary: its handler reads _at_once
        _at_once.append(True)
        try:
            yield
        finally:
            _at_once.pop()
        return
    previous = {signum: signal.getsignal(signum) for signum in INTERRUPT_SIGNALS}
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, _stop_now)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def stops_at_step_boundary(func: F) -> F:
    """Decorator: run a whole command inside ``stop_at_step_boundary()``, model loading included, so a
    signal at any moment ends it the same way (exit 130), never with the default exit 143 and no message."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stop_at_step_boundary():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
