"""Text-to-image with (Spectral)CLIP guidance: optimise a generator so its cutouts match a prompt.

Each step: image = generator(); random perspective cutouts of random size (``augment``'s batched
crops), random flips and noise; loss = sum_i w_i * mean over cutouts of the distance between the
SpectralCLIP embedding of a cutout and the plain CLIP text embedding of prompt i (spherical
distance as in VQGAN+CLIP, or 1 - cos), plus ``init_weight`` * MSE(image, init image).
Outputs mirror ``transfer``: ``<slug>_<generator>_<band>.png`` and a sidecar JSON, written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from spectralstyle.device import resolve_device
from spectralstyle.errors import SpectralStyleError
from spectralstyle.interrupts import raise_if_stop_requested
from spectralstyle.media.images import load_image, slugify
from spectralstyle.method.augment import apply_batched, sample_crop_params, to_device
from spectralstyle.method.clip_model import CLIP_SIZE, SpectralCLIP, clip_input, load_clip
from spectralstyle.method.generators import FourierGenerator, Generator
from spectralstyle.method.losses import normalize
from spectralstyle.method.prompts import SEPARATOR, WEIGHT_MARK, Prompt, encode_prompts, parse_prompts
from spectralstyle.method.vqgan import VQGANDecoderModel, VQGANGenerator, load_vqgan
from spectralstyle.record import RunRecord
from spectralstyle.runs.checkpoints import (
    Checkpointer,
    NoteCallback,
    RunControl,
    TrainingState,
    end_step,
    resume_into,
    run_key,
    save_on_stop,
)
from spectralstyle.runs.outputs import (
    JobOutput,
    RunHistory,
    RunWriter,
    SnapshotCallback,
    StepCallback,
    StepLog,
    environment_info,
    write_comparison,
)
from spectralstyle.settings import GenerateConfig

CUTOUT_GROUPS = 4  # cutouts share a size within a group, so each group is one batched crop call


@dataclass
class GenerateModels:
    """Frozen CLIP (and the VQGAN decoder when needed) on one device, shared by the runs of a command."""

    clip: Any
    device: torch.device
    vqgan: VQGANDecoderModel | None = None

    @classmethod
    def load(cls, config: GenerateConfig) -> "GenerateModels":
        device = resolve_device(config.device)
        vqgan = load_vqgan(config.vqgan_checkpoint, config.weights, device) if config.generator == "vqgan" else None
        clip_source = config.clip_weights or config.clip_model
        clip_model = load_clip(clip_source, device=device,
                               weights="pretrained" if config.clip_weights else config.weights)
        return cls(clip_model, device, vqgan)


class Cutouts:
    """Random perspective cutouts of random size, flipped and noised, resized for CLIP; repeatable by seed."""

    def __init__(self, n: int, cut_min: float, distortion: float, noise: float, seed: int, out_size: int = CLIP_SIZE):
        self.n, self.cut_min, self.distortion, self.noise, self.out_size = n, cut_min, distortion, noise, out_size
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)  # sizes, windows, flips: small, drawn on the CPU
        self._noise_generator: torch.Generator | None = None  # the noise images: drawn where they are used
        self._noise_state: torch.Tensor | None = None  # from a checkpoint, for the noise generator when made

    def noise_generator(self, device: torch.device) -> torch.Generator:
        if self._noise_generator is None or self._noise_generator.device != device:
            self._noise_generator = torch.Generator(device=device).manual_seed((self.seed + 1) % 2**63)
            if self._noise_state is not None:
                self._noise_generator.set_state(self._noise_state)
                self._noise_state = None
        return self._noise_generator

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Both generators' states, for checkpoints: a resumed run draws the same cutouts and noise."""
        state = {"generator": self.generator.get_state()}
        noise = self._noise_generator.get_state() if self._noise_generator is not None else self._noise_state
        if noise is not None:
            state["noise"] = noise
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self._noise_generator, self._noise_state = None, state.get("noise")

    def sizes(self, side: int) -> list[int]:
        """One cutout side per group, uniform between cut_min * side and side."""
        u = torch.rand(min(self.n, CUTOUT_GROUPS), generator=self.generator)
        return [max(1, min(side, round(side * (self.cut_min + (1 - self.cut_min) * float(x))))) for x in u]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        sizes = self.sizes(min(height, width))
        counts = [self.n // len(sizes) + (i < self.n % len(sizes)) for i in range(len(sizes))]
        crops = torch.cat([
            apply_batched(image, sample_crop_params(k, height, width, s, self.distortion, self.generator),
                          self.out_size)
            for s, k in zip(sizes, counts)
        ])
        flip_and_scale = torch.rand(2, self.n, generator=self.generator)
        flip_and_scale = to_device(flip_and_scale, image.device).view(2, -1, 1, 1, 1)
        crops = torch.where(flip_and_scale[0] < 0.5, crops.flip(-1), crops)
        if self.noise:
            noise = torch.randn(crops.shape, generator=self.noise_generator(crops.device), device=crops.device)
            crops = crops + flip_and_scale[1] * self.noise * noise
        return crops


def prompt_distances(features: torch.Tensor, targets: torch.Tensor, distance: str) -> torch.Tensor:
    """[n, D] unit image features vs [P, D] unit text features -> [n, P] distances."""
    if distance == "cosine":
        return 1 - features @ targets.T
    chord = (features[:, None] - targets[None]).norm(dim=-1)
    return chord.div(2).clamp(max=1).arcsin().pow(2).mul(2)


def make_generator(config: GenerateConfig, models: GenerateModels, init: torch.Tensor | None) -> Generator:
    """A fresh generator, seeded; the Fourier one starts from the init image when given."""
    torch.manual_seed(config.seed)
    if config.generator == "vqgan":
        if models.vqgan is None:
            raise SpectralStyleError("the VQGAN decoder is not loaded for this run")
        return VQGANGenerator(models.vqgan, config.width, config.height)
    gen = FourierGenerator(config.width, config.height, config.decay_power).to(models.device)
    if init is not None:
        gen.init_from_image(init)
    return gen


@dataclass
class GenerationResult(RunHistory):
    image: torch.Tensor | None = None


def optimize_generation(
    prompts: list[Prompt],
    config: GenerateConfig,
    models: GenerateModels,
    on_step: StepCallback | None = None,
    on_snapshot: SnapshotCallback | None = None,
    checkpoints: Checkpointer | None = None,
) -> GenerationResult:
    """Adam on the generator's parameters against the weighted prompt distances; Ctrl-C stops early.

    With ``checkpoints`` it continues from a matching checkpoint and saves them as ``transfer.optimize`` does.
    """
    device = models.device
    init = load_image(config.init_image, config.size).to(device) if config.init_image else None
    encoder = SpectralCLIP(models.clip, config.band).to(device)
    targets, weights = encode_prompts(models.clip, prompts)
    gen = make_generator(config, models, init)
    cutouts = Cutouts(config.cutouts, config.cut_min, config.distortion, config.cut_noise, config.seed)
    optimizer = torch.optim.Adam([p for p in gen.parameters() if p.requires_grad], lr=config.lr)
    step_log = StepLog(config.steps, config.save_every, on_step=on_step, on_snapshot=on_snapshot)
    state = TrainingState(gen, optimizer, samplers={"cutouts": cutouts})
    first, earlier_seconds = resume_into(checkpoints, state, step_log.history)
    start, interrupted, stepped = time.perf_counter() - earlier_seconds, False, first - 1
    try:
        raise_if_stop_requested()
        for step in range(first, config.steps + 1):
            image = gen()
            features = normalize(encoder.encode_image(clip_input(cutouts(image))).float())
            prompt_loss = (prompt_distances(features, targets, config.distance).mean(0) * weights).sum()
            init_loss = F.mse_loss(image, init) if init is not None else image.new_zeros(())
            total = prompt_loss + config.init_weight * init_loss
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            gen.after_step()
            stepped = step
            values = torch.stack([total, prompt_loss, init_loss]).detach().float().tolist()  # one device sync
            record = {"step": step, "lr": config.lr, **dict(zip(("total", "prompt", "init"), values))}
            step_log.add(record, image)
            end_step(checkpoints, step, config.steps, state, step_log.history, start)
    except KeyboardInterrupt:
        interrupted = True
        save_on_stop(checkpoints, state, step_log.history, stepped, start)
    with torch.no_grad():
        final = gen().float()
    return GenerationResult(step_log.history, time.perf_counter() - start, interrupted, image=final)


def prompt_slug(prompt: str) -> str:
    """File-name part of a prompt; weighted multi-prompts get a short hash, since the slug loses '|', ':' and signs."""
    slug = slugify(prompt)
    if any(mark in prompt for mark in (SEPARATOR, WEIGHT_MARK)):
        slug += "-" + hashlib.sha256(prompt.encode()).hexdigest()[:6]
    return slug


def generation_stem(prompt: str, config: GenerateConfig) -> str:
    return f"{prompt_slug(prompt)}_{config.generator}_{config.band_value.label}"


def run_generation(
    prompt: str,
    config: GenerateConfig,
    models: GenerateModels,
    out_dir: str | Path,
    on_step: StepCallback | None = None,
    stem: str | None = None,
    control: RunControl | None = None,
    on_note: NoteCallback | None = None,
) -> JobOutput:
    """Generate one image and write ``<stem>.png`` and ``<stem>.json`` (and snapshots) in ``out_dir``.

    On Ctrl-C the current state goes to ``snapshots/<stem>_stepNNNN.png`` and the finished names
    are not written; the checkpoint ``.checkpoints/<run key>.pt`` lets the same call continue.
    """
    prompts = parse_prompts(prompt)
    out = Path(out_dir)
    stem = stem or generation_stem(prompt, config)
    control = control or RunControl()
    init_bytes = Path(config.init_image).read_bytes() if config.init_image else b""
    checkpoints = Checkpointer(out, stem, config.digest(), run_key(config.digest(), prompt, init_bytes), control,
                               on_note)
    record = RunRecord(
        kind="generation", content=None, text=prompt, band=config.band, config=config.to_dict(),
        config_hash=config.digest(), environment=environment_info(models.device),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"prompts": [dataclasses.asdict(p) for p in prompts], "generator": config.generator,
               "device": str(models.device), "seed": config.seed,
               "run_control": control.to_dict()},  # not in the config (hash): it does not change the result
    )

    writer = RunWriter(out, stem, record, contrast=1.0)
    result = optimize_generation(prompts, config, models, on_step=on_step, on_snapshot=writer.snapshot,
                                 checkpoints=checkpoints)
    return writer.finish(result, result.image, checkpoints=checkpoints)


def write_generation_comparison(results: list[JobOutput], out: str | Path) -> JobOutput:
    """Side-by-side image of generations that differ only in band, with a sidecar naming both."""
    first = results[0].record
    return write_comparison(results, out, f"{prompt_slug(first['text'])}_{first['generator']}",
                            generator=first["generator"])
