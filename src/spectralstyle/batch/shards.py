"""This process's share of a batch plan, and the end of a distributed run.

Job ``k`` of the sorted plan goes to shard ``k mod n``. A shard comes from ``--shard i/n`` (Slurm arrays:
``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT`` when ``--shard`` is absent) and from torchrun's
``RANK``/``WORLD_SIZE``; both compose (shard ``i*W + r`` of ``n*W``). The split is a pure function of the
plan, so no scheduler or process group is needed: each job belongs to exactly one (shard, rank), none is
run twice and none is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from spectralstyle.batch.jobs import Job, JobResult, one_line
from spectralstyle.errors import SpectralStyleError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("spectralstyle")

GATHER_TIMEOUT = timedelta(hours=48)
"""How long a rank that is done waits for the slowest rank before printing only its own summary."""


@dataclass(frozen=True)
class Shard:
    """This process's share of the plan: jobs ``k`` with ``k mod count == index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise SpectralStyleError(f"bad shard {self.index}/{self.count}: need 0 <= i < n")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def within(self, rank: int, world_size: int) -> "Shard":
        """Sub-split among torchrun ranks: shard ``i*W + r`` of ``n*W`` (Slurm array x GPUs)."""
        return Shard(self.index * world_size + rank, self.count * world_size)


def shard_jobs(plan: list[Job], shard: Shard) -> list[Job]:
    return plan[shard.index :: shard.count]


def parse_shard(text: str) -> Shard:
    """``"3/8"`` -> Shard(3, 8) (0-based index)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SpectralStyleError(f"--shard {text!r} is not I/N (for example 0/4)") from None
    return Shard(index, count)


@dataclass(frozen=True)
class DistEnv:
    """What torchrun tells each process through the environment (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DistEnv":
        env = os.environ if env is None else env
        try:
            rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
            local = int(env["LOCAL_RANK"]) if "LOCAL_RANK" in env else None
        except ValueError:
            raise SpectralStyleError("RANK, WORLD_SIZE or LOCAL_RANK is not an integer") from None
        if world < 1 or not 0 <= rank < world:
            raise SpectralStyleError(f"RANK={rank} and WORLD_SIZE={world} do not fit (need 0 <= RANK < WORLD_SIZE)")
        return cls(rank, world, local)


def resolve_shard(option: str | None, dist: DistEnv, env: Mapping[str, str] | None = None) -> Shard:
    """``--shard`` (else a Slurm array's task id and count), sub-split among torchrun ranks."""
    env = os.environ if env is None else env
    if option:
        base = parse_shard(option)
    elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        try:
            task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
            low, high = int(env.get("SLURM_ARRAY_TASK_MIN", 0)), int(env.get("SLURM_ARRAY_TASK_MAX", task))
        except ValueError:
            raise SpectralStyleError("SLURM_ARRAY_TASK_ID/COUNT/MIN/MAX are not all integers; "
                                     "pass --shard I/N") from None
        if high - low + 1 != count:
            raise SpectralStyleError("the Slurm array is not contiguous (like --array=0-7); pass --shard I/N")
        base = Shard(task - low, count)
    else:
        base = Shard()
    return base.within(dist.rank, dist.world_size)


def rank_device(device: str, dist: DistEnv) -> "torch.device":
    """cuda:LOCAL_RANK for torchrun ranks when CUDA is present and the device is auto or cuda."""
    import torch

    from spectralstyle.device import resolve_device

    name = (device or "auto").strip().lower()
    if dist.local_rank is not None and name in ("auto", "cuda") and torch.cuda.is_available():
        device = resolve_device(f"cuda:{dist.local_rank % torch.cuda.device_count()}")
        torch.cuda.set_device(device)  # so that library calls on the "current" device use this rank's GPU
        return device
    if dist.local_rank is not None and name == "auto":
        return torch.device("cpu")
    return resolve_device(name)


def gather_results(results: list[JobResult], dist: DistEnv, digest: str = "",
                   timeout: timedelta = GATHER_TIMEOUT) -> list[JobResult] | None:
    """Every rank's results on every rank (a gloo all-gather at the end), or None if that is impossible.

    Why at the end only: the split needs no communication; this just lets rank 0 print one merged
    summary and decide the exit code, and makes early ranks wait so torchrun does not tear down the
    slower ranks when an early one exits. Any failure, including ranks that saw different plans
    (``digest``), is logged and gives None: each rank then reports its own jobs.
    """
    if dist.world_size == 1:
        return results
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        return None
    import torch.distributed as tdist

    try:
        if not tdist.is_initialized():
            tdist.init_process_group("gloo", rank=dist.rank, world_size=dist.world_size, timeout=timeout)
        gathered: list[Any] = [None] * dist.world_size
        tdist.all_gather_object(gathered, (digest, [r.__dict__ for r in results]))
        digests = {d for d, _ in gathered}
        if len(digests) > 1:
            raise SpectralStyleError(f"the ranks saw {len(digests)} different plans (was the content folder or "
                                     "prompts file changed while they started?); check the manifest")
        return [JobResult(**r) for _, part in gathered for r in part]
    except Exception as exc:  # a missing peer or network problem must not hide this rank's own results
        log.warning("could not gather results from the other ranks: %s", one_line(exc))
        return None
    finally:
        with contextlib.suppress(Exception):
            if tdist.is_initialized():
                tdist.destroy_process_group()
