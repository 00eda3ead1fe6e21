"""A batch's plan: every (content image, prompt, band) job, sorted on content alone, with collision-free names.

The plan is sorted on (image name, prompt, band label, job id), never on discovery order, so every
process that reads the same folder and prompts builds the same plan and splits it the same way
(:mod:`spectralstyle.batch.shards`). Names chosen here are what a run would write under if it started
now; the name is reserved only when the job runs (:func:`spectralstyle.runs.naming.reserve_stem`) and
recorded in the job's state.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from spectralstyle.bands import band_label, canonical_band, split_band_list
from spectralstyle.batch.jobs import FINISHED, Job, job_id
from spectralstyle.batch.manifest import read_state
from spectralstyle.errors import SpectralStyleError
from spectralstyle.media.files import check_exists
from spectralstyle.media.images import list_images, oriented_size
from spectralstyle.runs.naming import existing_record, free_stem, same_run, split_own_results
from spectralstyle.runs.train import TrainSettings, config_for_images, train_digest
from spectralstyle.settings import TransferConfig


# --- inputs -------------------------------------------------------------------------------------
def read_prompts(path: str | Path) -> list[str]:
    """Prompts of a text file: one per line; blank lines and lines starting with ``#`` are ignored."""
    p = Path(path)
    check_exists(p, "prompts file", "file")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM from Windows editors is not text
    except (OSError, UnicodeDecodeError) as exc:
        raise SpectralStyleError(f"prompts file {p} is not readable UTF-8 text ({exc.__class__.__name__})") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def collect_prompts(prompts_file: str | Path | None, texts: list[str] | None) -> list[str]:
    """Prompts from ``--prompts`` then ``--text``, first occurrence kept; each checked against CLIP's limit."""
    from spectralstyle.method.prompts import style_prompts

    prompts: list[str] = []
    sources = [(f"{prompts_file}", p) for p in read_prompts(prompts_file)] if prompts_file else []
    sources += [("--text", t.strip()) for t in texts or []]
    for origin, text in sources:
        try:
            style_prompts(text)  # weighted prompts "a|b:0.5|c:-1", each in every template
        except SpectralStyleError as exc:
            raise SpectralStyleError(f"prompt {text!r} from {origin}: {exc}") from None
        if text not in prompts:
            prompts.append(text)
    if not prompts:
        raise SpectralStyleError("no prompts: give --prompts FILE (one per line) or --text TEXT")
    return prompts


def band_specs(bands: list[str] | None, config: TransferConfig, band_given: bool = False) -> list[str]:
    """The bands of ``--bands`` (comma separated, ';' between index specs), else the config's one band."""
    if band_given and bands:
        raise SpectralStyleError("give --band or --bands, not both")
    try:
        specs = [b.spec for b in split_band_list(bands)] if bands else [config.band]
    except ValueError as exc:
        raise SpectralStyleError(str(exc)) from None
    if not specs:
        raise SpectralStyleError("--bands is empty; use for example --bands c2,none")
    return specs


def build_plan(content_dir: str | Path, prompts: list[str], bands: list[str], config: TransferConfig,
               out: Path | None = None, mode: str = "transfer", train: TrainSettings | None = None,
               overwrite: bool = False) -> list[Job]:
    """The plan of ``batch --mode transfer`` (one image per job) or ``--mode train`` (one model per job)."""
    if mode == "train":
        if train is None:
            raise SpectralStyleError("--mode train needs training settings")
        return make_train_plan(content_dir, prompts, bands, config, train, out)
    if mode == "transfer":
        return make_plan(content_dir, prompts, bands, config, out, overwrite=overwrite)
    raise SpectralStyleError(f"unknown --mode {mode!r}; use transfer or train")


# --- plan -----------------------------------------------------------------------------------------
def band_configs(config: TransferConfig, bands: list[str]) -> dict[str, TransferConfig]:
    """Band spec -> the batch's settings with that band (each validated); spellings of one set of kept
    frequencies (``4-7,16-49`` and ``c1``) are one band, under the first spelling."""
    configs: dict[str, TransferConfig] = {}
    seen: set[str] = set()
    for band in bands:
        cfg = config.replace(band=band)
        if canonical_band(band) not in seen:
            seen.add(canonical_band(band))
            configs[band] = cfg
    return configs


def make_plan(
    content_dir: str | Path, prompts: list[str], bands: list[str], config: TransferConfig, out: Path | None = None,
    overwrite: bool = False,
) -> list[Job]:
    """Every (image, prompt, band) job, sorted deterministically, with collision-free output names.

    With ``out``, a job finished there keeps the file names it was written under, even if a prompt
    added since then now shares its name (and would otherwise move it to a new, id-suffixed name), and
    a job whose name holds another run's result moves to a free name (runs/naming.py) unless ``overwrite``.
    Images this tool wrote are not content (runs/naming.py).
    """
    folder = Path(content_dir)
    check_exists(folder, "content folder", "folder")
    images, own = split_own_results(list_images(folder))
    if not images:
        extra = f" (only {len(own)} result(s) written by spectralstyle, which are not content)" if own else ""
        raise SpectralStyleError(f"no images (jpg, png, ...) in {folder}{extra}")
    if not prompts:
        raise SpectralStyleError("no prompts")
    configs = band_configs(config, bands)
    jobs = [
        Job(job_id(image.name, text, band, cfg.digest()), image, image.name, text, band, cfg)
        for image in images for text in prompts for band, cfg in for_each_image(configs, image).items()
    ]
    jobs.sort(key=lambda j: (j.name, j.text, band_label(j.band), j.job_id))
    _assign_stems(jobs)
    if out is not None:
        finished = _keep_finished_stems(jobs, Path(out))
        taken = {j.stem for j in jobs}  # unique within the plan
        for job in jobs:
            record = None if job.job_id in finished or overwrite else existing_record(Path(out), job.stem)
            if record is not None and not same_run(record, job.content, job.text, job.config_hash):
                taken.discard(job.stem)
                job.stem = free_stem(out, job.stem, job.content, job.text, job.config_hash, taken=taken)
                taken.add(job.stem)
    return jobs


def for_each_image(configs: dict[str, TransferConfig], image: Path) -> dict[str, TransferConfig]:
    """The settings of each band for one content image: its working size (``--size N``: its aspect ratio) and
    exact output size, as ``transfer`` resolves them (so both give one config hash); an unreadable image keeps
    them as they are (its job fails with the reason)."""
    size = oriented_size(image)
    if size is None:
        return configs
    try:
        return {band: cfg.for_content(size) for band, cfg in configs.items()}
    except SpectralStyleError as exc:
        raise SpectralStyleError(f"{image.name}: {exc}") from None


def make_train_plan(
    content_dir: str | Path, prompts: list[str], bands: list[str], config: TransferConfig, train: TrainSettings,
    out: Path | None = None,
) -> list[Job]:
    """``--mode train``: one job per (prompt, band), each training a style model over all images of the folder.

    The job id covers the image names, so adding or removing an image trains the models again.
    """
    folder = Path(content_dir)
    check_exists(folder, "content folder", "folder")
    images = tuple(list_images(folder))
    if not images:
        raise SpectralStyleError(f"no images (jpg, png, ...) in {folder}")
    if not prompts:
        raise SpectralStyleError("no prompts")
    configs = {band: config_for_images(cfg, list(images)) for band, cfg in band_configs(config, bands).items()}
    for cfg in configs.values():
        train.check_with(cfg)
    name = f"{folder.name} ({len(images)} images)"
    image_key = json.dumps([p.name for p in images], ensure_ascii=False)
    jobs = [
        Job(job_id(image_key, text, band, train_digest(cfg, train)), folder, name, text, band, cfg,
            train=train, train_images=images)
        for text in prompts for band, cfg in configs.items()
    ]
    jobs.sort(key=lambda j: (j.text, band_label(j.band), j.job_id))
    _assign_stems(jobs)
    if out is not None:
        _keep_finished_stems(jobs, Path(out))
    return jobs


def _keep_finished_stems(jobs: list[Job], out: Path) -> set[str]:
    """Give finished jobs their recorded names back; returns their ids."""
    taken = {j.stem for j in jobs}
    finished = set()
    for job in jobs:
        state = read_state(out, job.job_id)
        recorded = state.get("stem") if state and state.get("status") == FINISHED else None
        if isinstance(recorded, str) and recorded != job.stem and recorded not in taken:
            taken.discard(job.stem)
            job.stem = recorded
            taken.add(recorded)
        if recorded == job.stem:
            finished.add(job.job_id)
    return finished


def _assign_stems(jobs: list[Job]) -> None:
    """The transfer command's file names; jobs whose names would collide get their id appended."""
    stems = [j.base_stem() for j in jobs]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    for j, stem in zip(jobs, stems):
        j.stem = j.base = stem if counts[stem] == 1 else f"{stem}_{j.job_id[:8]}"


def plan_digest(plan: list[Job]) -> str:
    """Hash of the whole plan in order: ranks that disagree on it would not split it cleanly."""
    return hashlib.sha256("".join(j.job_id for j in plan).encode()).hexdigest()[:16]
