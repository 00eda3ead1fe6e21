"""The study's grid as a batch: every (content image, prompt, band) job, planned and run by ``batch``.

A study is a batch with a fixed layout: results go to the study folder itself, the job states to its
``.jobs/`` folder, so a study is resumable (finished jobs are skipped), shardable (``--shard I/N``, Slurm
arrays, torchrun ranks) and never overwrites a result, by the same code and rules as ``spectralstyle batch``
(docs/batch.md). Content may be several folders and single images; each image name must be unique, since
job ids and result names are made from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spectralstyle.bands import band_label
from spectralstyle.batch.jobs import Job
from spectralstyle.batch.manifest import job_action, read_state, recorded_paths
from spectralstyle.batch.plan import make_plan
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.images import list_images
from spectralstyle.runs.naming import split_own_results
from spectralstyle.settings import TransferConfig


def content_images(paths: Sequence[str | Path]) -> list[Path]:
    """The content images of ``CONTENT...``: folders (their images, not subfolders, not this tool's results)
    and single images; a clear error for anything missing, empty, or two images with one name."""
    images: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found, own = split_own_results(list_images(path))
            if not found:
                extra = f" (only {len(own)} result(s) written by spectralstyle, which are not content)" if own else ""
                raise SpectralStyleError(f"no images (jpg, png, ...) in {path}{extra}")
            images += found
        elif path.is_file():
            found, own = split_own_results(list_images(path.parent))
            if path.resolve() not in {p.resolve() for p in found}:
                why = "was written by spectralstyle" if path.resolve() in {p.resolve() for p in own} else \
                    "is not an image this tool reads (jpg, png, ...)"
                raise SpectralStyleError(f"content {path} {why}")
            images.append(path)
        else:
            raise SpectralStyleError(f"content {path} does not exist")
    by_name: dict[str, Path] = {}
    for image in images:
        other = by_name.setdefault(image.name, image)
        if other.resolve() != image.resolve():
            raise SpectralStyleError(f"two content images are named {image.name} ({other} and {image}); "
                                     "results are named after the image, so rename one")
    return sorted(by_name.values(), key=lambda p: p.name)


def study_plan(paths: Sequence[str | Path], prompts: list[str], bands: list[str], config: TransferConfig,
               out: Path, overwrite: bool = False) -> list[Job]:
    """The batch plan of the study, sorted as ``batch`` sorts (its order decides the shards)."""
    wanted = content_images(paths)
    by_folder: dict[Path, set[str]] = {}
    for image in wanted:
        by_folder.setdefault(image.parent.resolve(), set()).add(image.name)
    jobs: list[Job] = []
    for folder, names in by_folder.items():
        jobs += [j for j in make_plan(folder, prompts, bands, config, out, overwrite=overwrite) if j.name in names]
    jobs.sort(key=lambda j: (j.name, j.text, band_label(j.band), j.job_id))
    return jobs


@dataclass(frozen=True)
class Progress:
    """How far a study's grid is: ``finished`` of ``total`` jobs (their results exist and match)."""

    finished: int
    total: int

    @property
    def complete(self) -> bool:
        return self.finished == self.total


def result_path(job: Job, out: Path) -> Path:
    """Where a finished job's image is (the name its state recorded)."""
    return recorded_paths(job, out, read_state(out, job.job_id))[0]


def grid_progress(plan: list[Job], out: Path) -> Progress:
    done = sum(job_action(job, out, read_state(out, job.job_id))[0] == "skip" for job in plan)
    return Progress(done, len(plan))
