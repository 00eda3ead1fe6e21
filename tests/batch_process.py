"""Run ``spectralstyle ARGS...`` as a real process that stops at a known point of a batch (tests only).

    python tests/batch_process.py kill N ARGS...   # SIGKILL itself (a real kill -9) when job N+1 starts to run
    python tests/batch_process.py hang N FILE ARGS...  # when job N+1 starts to run, create FILE and sleep;
                                                     # the test then kills it (kill -9) at that known point

"Starts to run" is the moment the batch runner calls the transfer job: the job is claimed, its name is
reserved, its state says running and the models are loaded. Why a wrapper and not a hook in the package:
production code carries no test switches; the wrapper patches the runner's call from outside.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import spectralstyle.batch.runner as runner
from spectralstyle.cli import main


def stop_at_job(after: int, stop) -> None:
    real, started = runner.run_job, [0]

    def run_job(*args, **kwargs):
        if started[0] >= after:
            stop()
        started[0] += 1
        return real(*args, **kwargs)

    runner.run_job = run_job


if __name__ == "__main__":
    mode, after = sys.argv[1], int(sys.argv[2])
    if mode == "kill":
        stop_at_job(after, lambda: os.kill(os.getpid(), signal.SIGKILL))
        args = sys.argv[3:]
    elif mode == "hang":
        ready = Path(sys.argv[3])

        def hang() -> None:
            ready.write_text(str(os.getpid()))
            while True:
                time.sleep(60)

        stop_at_job(after, hang)
        args = sys.argv[4:]
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    sys.argv = ["spectralstyle", *args]
    main()
