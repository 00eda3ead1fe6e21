"""One batch job: a (content image, prompt, band) run with the batch's settings, its stable id and states.

Every job has a stable id, a hash of (image name relative to the content folder, prompt, canonical band,
config hash), so the same command on any machine, in any process, names the same jobs, and two spellings
of one band (``4-7,16-49`` and ``c1``) are one job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from spectralstyle.bands import band_label, canonical_band
from spectralstyle.device import is_out_of_memory, out_of_memory_message
from spectralstyle.errors import SpectralStyleError
from spectralstyle.runs.train import MODEL_SUFFIX, TrainSettings, model_stem, train_digest
from spectralstyle.runs.transfer import output_stem
from spectralstyle.settings import TransferConfig

# Job states written to OUT/.jobs/<id>.json
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"
PENDING = "pending"  # in the manifest only: never started
SKIPPED = "skipped"  # a result of this run only: already finished earlier
ELSEWHERE = "elsewhere"  # a result of this run only: another live process owns the job (media/claims.py)


@dataclass
class Job:
    """One (content image, prompt, band) run with the batch's settings."""

    job_id: str
    content: Path
    name: str
    text: str
    band: str
    config: TransferConfig
    stem: str = ""  # the name the job writes under (chosen by the plan, reserved when it runs)
    base: str = ""  # the plan's own collision-free name, before moving beside other runs' results
    train: TrainSettings | None = None  # set: a ``--mode train`` job, one style model over ``train_images``
    train_images: tuple[Path, ...] = ()

    @property
    def config_hash(self) -> str:
        return train_digest(self.config, self.train) if self.train else self.config.digest()

    def base_stem(self) -> str:
        """The name the single command gives this output: ``transfer``'s, or ``train``'s ``<text>_<band>``."""
        return model_stem(self.text, self.band) if self.train else output_stem(Path(self.name), self.text, self.band)

    def image_path(self, out: Path) -> Path:
        """The job's main output: the stylised PNG, or the trained model."""
        if self.train:
            return out / f"{self.stem}{MODEL_SUFFIX}"
        return out / f"{self.stem}.png"

    def sidecar_path(self, out: Path) -> Path:
        return out / f"{self.stem}.json"

    def describe(self) -> str:
        return f"{self.name} · {self.text} · {band_label(self.band)}"


def job_id(name: str, text: str, band: str, config_hash: str) -> str:
    """Stable id of a job: the same inputs give the same id on every machine and in every process."""
    key = json.dumps([name, text, canonical_band(band), config_hash], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class JobResult:
    """What happened to one job in this run (status: finished, skipped, failed, interrupted or elsewhere)."""

    job_id: str
    describe: str
    status: str
    error: str = ""
    wall_time_s: float = 0.0
    image: str = ""


def one_line(exc: BaseException) -> str:
    """A job's error as the one line its state and the summary show."""
    if isinstance(exc, SpectralStyleError):
        return str(exc)
    if is_out_of_memory(exc):
        return out_of_memory_message(exc)
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")
