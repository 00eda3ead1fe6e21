"""Every setting of every command, declared once: type, default, bounds and help text.

A setting is a dataclass field declared with :func:`setting`. From that one declaration come the
YAML keys a ``--config`` file may hold, the command-line option of every command that runs with those
settings (``cli.common.with_settings`` builds them), the validation with a one-line error, and the
``config`` object stored in every output's sidecar. Settings resolve as defaults < YAML file (or a
shipped preset such as ``quick``) < command-line flags. How that works is in :mod:`spectralstyle.config`.

To add a setting, add one field here; to add a loss term, add its ``lambda_`` weight to TransferConfig
and its ``<name>_term`` method in ``method/losses.py``.

Pure Python (no torch): ``spectralstyle --help`` and every ``COMMAND --help`` build their options
from these declarations without loading any model library.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from spectralstyle.bands import Band
from spectralstyle.config.fields import SettingInfo, Settings, info_of, parse_size, setting  # noqa: F401 (also from here)
from spectralstyle.config.files import preset_names, read_config_file, read_yaml_mapping, resolve_settings  # noqa: F401
from spectralstyle.config.shared import (  # noqa: F401 (also importable from here)
    AVOID_TEXT_PROMPT,
    AVOID_TEXT_WEIGHT,
    CLIP_WEIGHTS_HELP,
    DEVICE_CHOICES,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEXT_CHARS,
    MAX_TEXT_WORDS,
    MIN_TRANSFER_SIDE,
    PRESERVE_COLOR_MODES,
    VGG_WEIGHTS_HELP,
    PreserveColor,
    _band_rule,
    _seed_rule,
    band_setting,
    clip_model_setting,
    clip_weights_setting,
    contrast_setting,
    device_rule,
    device_setting,
    invert_mask_setting,
    mask_feather_setting,
    mask_setting,
    min_confidence_setting,
    preserve_color_setting,
    save_every_setting,
    seed_setting,
    steps_setting,
    strength_setting,
    text_rule,
    vgg_weights_setting,
    weights_file_rule,
    weights_setting,
)
from spectralstyle.errors import SpectralStyleError
from spectralstyle.sizes import OUTPUT_SIZE_HELP, check_output_size, fit_working_size, output_dimensions

Precision = Literal["fp32", "bf16", "fp16"]
SourceEncoder = Literal["plain", "filtered"]
WeightMode = Literal["pretrained", "random"]
GeneratorName = Literal["fourier", "vqgan"]
Distance = Literal["spherical", "cosine"]
NormStats = Literal["exact", "sampled", "downscaled"]

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
SOURCE_ENCODERS: tuple[str, ...] = typing.get_args(SourceEncoder)
WEIGHT_MODES: tuple[str, ...] = typing.get_args(WeightMode)
GENERATORS: tuple[str, ...] = typing.get_args(GeneratorName)
DISTANCES: tuple[str, ...] = typing.get_args(Distance)
NORM_STATS: tuple[str, ...] = typing.get_args(NormStats)
class BandedSettings(Settings):
    """Settings of a run guided through SpectralCLIP's band of kept frequencies."""

    band: str

    @property
    def band_value(self) -> Band:
        """The parsed band (parsed once per spec, cached)."""
        return Band.parse(self.band)


@dataclass
class TransferConfig(BandedSettings):
    """Method and run settings of one style transfer (defaults are the reference's, docs/method.md)."""

    SIZE_HELP = ("Working size: N = long side N, the short side from the photo's aspect ratio (default 512); or "
                 "WIDTHxHEIGHT exactly (the paper: 512x512, see --config paper). Multiples of 8.")

    band: str = band_setting()
    steps: int = steps_setting(200, "Optimisation steps (reference 200).")
    width: int = setting(512, "Working width in pixels (multiple of 8).", minimum=1, cli=False, pair="size")
    height: int = setting(512, "Working height in pixels (multiple of 8).", minimum=1, cli=False, pair="size")
    keep_aspect: bool = setting(True, "Fit the working size inside width x height with the content's aspect ratio "
                                      "(--size N); false: exactly width x height (--size WxH).", cli=False)
    output_size: str = setting("auto", OUTPUT_SIZE_HELP)
    crops: int = setting(64, "Random crops per step (reference 64).", minimum=1)
    crop_size: int = setting(128, "Crop side in pixels (reference 128; with --size N at most the working "
                             "short side).", minimum=1)
    distortion: float = setting(0.5, "Random perspective strength of each crop (reference 0.5).", minimum=0, maximum=1)
    lr: float = setting(5e-4, "Adam learning rate (reference 5e-4).", minimum=0, maximum=1, exclusive_minimum=True,
                        note="(the reference uses 5e-4)")
    lr_step: int = setting(100, "Halve (lr_gamma) the learning rate every N steps (reference 100).", minimum=1)
    lr_gamma: float = setting(0.5, "Learning-rate factor every lr_step steps (reference 0.5).", minimum=0, maximum=1,
                              exclusive_minimum=True)
    seed: int = seed_setting()
    threshold: float = setting(0.7, "Patch losses below this are ignored (reference 0.7).", minimum=0, maximum=2)
    lambda_patch: float = setting(9000.0, "Weight of the patch directional loss (reference 9000).", minimum=0)
    lambda_global: float = setting(500.0, "Weight of the global directional loss (reference 500).", minimum=0)
    lambda_content: float = setting(150.0, "Weight of the VGG content loss (reference 150).", minimum=0)
    lambda_tv: float = setting(0.002, "Weight of the total-variation loss (reference 0.002).", minimum=0)
    source_text: str = setting("a Photo", "Text describing the content image; the style direction starts there.",
                               rule=text_rule("source_text"))
    source_encoder: SourceEncoder = setting(
        "plain", "Embed the content image with plain CLIP (the reference) or the filtered encoder.",
        what="source encoder")
    contrast: float = contrast_setting(1.5, "Contrast factor of the saved image (reference 1.5, 1 = unchanged).")
    clip_model: str = clip_model_setting()
    weights: WeightMode = weights_setting()
    clip_weights: str | None = clip_weights_setting()
    vgg_weights: str | None = vgg_weights_setting()
    device: str = device_setting()
    precision: Precision = setting("fp32", "fp32 (reference), or bf16 / fp16 autocast (fp16 on GPUs only).")
    compile: bool = setting(False, "torch.compile the networks (faster on GPU after a warm-up).")
    save_every: int = save_every_setting()
    preserve_color: PreserveColor = preserve_color_setting()
    mask: str | None = mask_setting()
    mask_feather: float = mask_feather_setting()
    invert_mask: bool = invert_mask_setting()
    strength: float = strength_setting()
    avoid_text: bool = setting(False, f"Push away from rendered words: adds the negative prompt "
                               f"'{AVOID_TEXT_PROMPT}:{AVOID_TEXT_WEIGHT:g}'.", neutral=True)

    def check(self) -> None:
        self.check_mask_options()
        self.check_multiple(8, "width and height must be")
        self.check_min_side(MIN_TRANSFER_SIDE)
        if self.crop_size > min(self.width, self.height):
            raise SpectralStyleError(f"crop size {self.crop_size} is larger than the short side of the working size "
                                     f"{self.width}x{self.height}")
        if not self.source_text.strip():
            raise SpectralStyleError("source_text must not be empty")
        check_output_size(self.output_size)

    def for_content(self, content: tuple[int, int]) -> "TransferConfig":
        """These settings for one content image of size ``content`` = (width, height): with ``keep_aspect``
        (``--size N``) width and height become the working size at the image's aspect ratio (a 160x120 photo at
        ``--size 64``: 64x48), and the record's config says what was used. Idempotent: the same image gives
        the same settings again (so the config hash, and the run's name, stay the same)."""
        if not self.keep_aspect:
            return self
        width, height = fit_working_size(content, self.size)
        # --size N is a box: crops that fit the box but not the photo's shape shrink to its short side (crop_note)
        crop = min(self.crop_size, width, height)
        try:
            return self.replace(width=width, height=height, crop_size=crop)
        except SpectralStyleError as exc:
            raise SpectralStyleError(f"a {content[0]}x{content[1]} image works at {width}x{height} here: {exc} "
                                     "(use a larger --size)") from None

    def crop_note(self, resolved: "TransferConfig") -> str | None:
        """The note of ``resolved`` (these settings after ``for_content``) having crops shrunk to the short side
        of its working size, else None."""
        if resolved.crop_size == self.crop_size:
            return None
        return (f"crops of {resolved.crop_size} px, the short side of the {resolved.width}x{resolved.height} working "
                f"size ({self.crop_size} does not fit; a larger --size keeps them)")

    def output_note(self, content: tuple[int, int]) -> str | None:
        """The note of an ``auto`` output size capped below the photo's own size, else None."""
        working = fit_working_size(content, self.size) if self.keep_aspect else self.size
        return output_dimensions(self.output_size, content, working)[1]


@dataclass
class ApplyControls(Settings):
    """What ``apply`` does to each result besides running the model: the result controls of a transfer,
    and a second model to blend with (CLIPstyler's interpolation of styles)."""

    preserve_color: PreserveColor = preserve_color_setting()
    mask: str | None = mask_setting()
    mask_feather: float = mask_feather_setting()
    invert_mask: bool = invert_mask_setting()
    strength: float = strength_setting()
    mix: str | None = setting(None, "A second StyleNet: the result blends both models' outputs (see --mix-weight).",
                              neutral=True, what="--mix model file", reads_file=True)
    mix_weight: float = setting(0.5, "Share of the --mix model's output (0 = only MODEL, 1 = only --mix).", minimum=0,
                                maximum=1, neutral=True)

    def check(self) -> None:
        self.check_mask_options()
        if self.mix is None and self.mix_weight != 0.5:
            raise SpectralStyleError("--mix-weight needs --mix (a second model to blend with)")


DEFAULT_LR = {"fourier": 0.05, "vqgan": 0.1}
SIZE_MULTIPLE = {"fourier": 8, "vqgan": 16}


@dataclass
class GenerateConfig(BandedSettings):
    """All settings of one text-to-image run; ``lr=None`` resolves to the generator's default."""

    SIZE_HELP = "Image size WIDTHxHEIGHT: multiples of 16 for vqgan, 8 for fourier (default 256x256)."

    band: str = band_setting()
    generator: GeneratorName = setting("fourier", "fourier (no weights needed) or vqgan (taming VQGAN decoder).")
    steps: int = steps_setting(300, "Optimisation steps (default 300).")
    width: int = setting(256, "Image width in pixels.", minimum=1, cli=False, pair="size")
    height: int = setting(256, "Image height in pixels.", minimum=1, cli=False, pair="size")
    cutouts: int = setting(32, "Random cutouts per step (default 32).", minimum=1)
    cut_min: float = setting(0.25, "Smallest cutout side, as a fraction of the image's shorter side.", minimum=0,
                             maximum=1, exclusive_minimum=True)
    distortion: float = setting(0.5, "Random perspective strength of each cutout (0 = none).", minimum=0, maximum=1)
    cut_noise: float = setting(0.1, "Largest std of the Gaussian noise added to a cutout.", minimum=0)
    distance: Distance = setting("spherical", "spherical (VQGAN+CLIP) or cosine (1 - cos).")
    lr: float | None = setting(None, "Adam learning rate (default 0.05 fourier, 0.1 vqgan).", minimum=0, maximum=10,
                               exclusive_minimum=True)
    seed: int = seed_setting()
    init_image: str | None = setting(None, "Start image (fourier: initial spectrum; both: target of --init-weight).")
    init_weight: float = setting(0.0, "Weight of the MSE to --init-image (default 0).", minimum=0)
    decay_power: float = setting(1.0, "fourier: the spectrum is scaled by 1/f^decay_power.", minimum=0)
    clip_model: str = clip_model_setting()
    weights: WeightMode = weights_setting()
    clip_weights: str | None = clip_weights_setting()
    vqgan_checkpoint: str | None = setting(
        None, "Taming VQGAN checkpoint (.ckpt) of your own instead of vqgan_imagenet_f16_16384.")
    device: str = device_setting()
    save_every: int = save_every_setting()

    def __post_init__(self) -> None:
        if self.generator in DEFAULT_LR and self.lr is None:
            self.lr = DEFAULT_LR[self.generator]
        self.validate()

    def check(self) -> None:
        self.check_multiple(SIZE_MULTIPLE[self.generator], f"the {self.generator} generator needs")
        if self.init_weight > 0 and not self.init_image:
            raise SpectralStyleError("--init-weight needs --init-image")
        if self.generator == "vqgan" and self.init_image and self.init_weight == 0:
            raise SpectralStyleError(
                "the vqgan generator uses --init-image only through the loss: give --init-weight > 0 (for example 1)")



TRANSFER_FIELDS = frozenset(f.name for f in dataclasses.fields(TransferConfig))
FIELD_NAMES = TRANSFER_FIELDS

LOSS_TERMS: tuple[str, ...] = tuple(f.name.removeprefix("lambda_") for f in dataclasses.fields(TransferConfig)
                                    if f.name.startswith("lambda_"))
"""The terms of the transfer loss, in declaration order, one per ``lambda_x`` setting of TransferConfig: term
``x`` is ``losses.CLIPStyleLoss.x_term``. Adding a term: its ``lambda_`` setting above, its method there."""
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {name: getattr(TransferConfig, f"lambda_{name}") for name in LOSS_TERMS}


def loss_weights(config: TransferConfig) -> dict[str, float]:
    """The weight of each loss term in ``config`` (terms of weight 0 are skipped, not computed)."""
    return {name: getattr(config, f"lambda_{name}") for name in LOSS_TERMS}


# --- training one StyleNet over many images (train, batch --mode train, video) ------------------------
@dataclass
class TrainSettings(Settings):
    """What training over many images adds to transfer's settings.

    ``batch``: content images per step (at most the number of images). ``train_width``/``train_height``
    (``--train-size``): each step trains on random crops of this size of the (``--size``) images instead of
    the whole images, which is cheaper per image and shows the network more variety; None = whole images.
    ``preview``: training images shown before/after in the preview grid.
    """

    NAMED_AS_OPTIONS: ClassVar[bool] = True

    PAIR_HELP: ClassVar[dict[str, str]] = {
        "train_size": "Train on random WIDTHxHEIGHT crops of the --size images (multiples of 8); "
                      "default: whole images."}

    batch: int = setting(4, "Content images per step (CLIPstyler's fast mode uses 4).", minimum=1)
    train_width: int | None = setting(None, "Width of the training crops.", minimum=16, cli=False, pair="train_size")
    train_height: int | None = setting(None, "Height of the training crops.", minimum=16, cli=False, pair="train_size")
    preview: int = setting(4, "Training images in the before/after preview grid (0: none).", minimum=0)

    def check(self) -> None:
        if (self.train_width is None) != (self.train_height is None):
            raise SpectralStyleError("give both the width and the height of --train-size")
        if self.crop is not None:
            w, h = self.crop
            if w % 8 or h % 8:
                raise SpectralStyleError(f"--train-size {w}x{h}: sides must be multiples of 8 and at least 16")

    def check_with(self, config: TransferConfig) -> None:
        """One line for the first setting that does not fit the transfer settings."""
        if self.crop is not None:
            w, h = self.crop
            if w > config.width or h > config.height:
                raise SpectralStyleError(f"--train-size {w}x{h} is larger than --size {config.width}x{config.height}")
            if config.crop_size > min(w, h):
                raise SpectralStyleError(f"crop size {config.crop_size} is larger than --train-size {w}x{h}")

    @property
    def crop(self) -> tuple[int, int] | None:
        """(width, height) of the training crops, or None for whole images."""
        if self.train_width is None or self.train_height is None:
            return None
        return self.train_width, self.train_height


DEFAULT_TRAIN_FRAMES = 16
"""Frames sampled across a video to train its style model on (``video --train-frames``)."""


@dataclass
class VideoSettings(Settings):
    """What ``video`` adds to training: which frames it trains on and the output's size."""

    NAMED_AS_OPTIONS: ClassVar[bool] = True

    train_frames: int = setting(DEFAULT_TRAIN_FRAMES, "Frames sampled evenly across the video to train on.", minimum=1)
    max_side: int | None = setting(None, "Downscale the output video so that its longer side is at most this.",
                                   minimum=16)


# --- applying a trained StyleNet ---------------------------------------------------------------------
@dataclass
class ApplyConfig(Settings):
    """How ``apply`` runs a trained StyleNet over images and videos (never part of a model's training)."""

    NAMED_AS_OPTIONS: ClassVar[bool] = True

    contrast: float | None = contrast_setting(
        None, "Contrast factor of the saved image (default: the model's, 1 = unchanged).")
    device: str = device_setting()
    max_side: int | None = setting(None, "Downscale images and videos whose longer side exceeds this.", minimum=8)
    tile: int | None = setting(None, "Tile side in pixels for large images (multiple of 8; default: 768 on CPU, from "
                               "free memory on CUDA).", minimum=64)
    norm_stats: NormStats = setting(
        "exact", "Whole-image norm statistics of tiled images: exact (streamed, about 10 passes), sampled (a quarter "
        "of the tiles) or downscaled (one small pass; approximate).", what="--norm-stats mode")

    def check(self) -> None:
        if self.tile is not None and self.tile % 8:
            raise SpectralStyleError(f"--tile must be a multiple of 8 and at least 64 pixels, got {self.tile}")


# --- measuring results (evaluate, analyze) -----------------------------------------------------------
@dataclass
class AnalyzeSettings(Settings):
    """The models ``analyze`` scores with, and how sure OCR must be."""

    NAMED_AS_OPTIONS: ClassVar[bool] = True

    weights: WeightMode | None = setting(
        None, "pretrained (found or downloaded once, then cached) or random; default: what the results' sidecars "
        "say, so results of --weights random are measured without a download.", what="weights mode")
    clip_weights: str | None = clip_weights_setting()
    device: str | None = device_setting(None)
    min_confidence: float = min_confidence_setting()


@dataclass
class EvaluateSettings(AnalyzeSettings):
    """``analyze``'s settings, and the VGG that measures content preservation."""

    vgg_weights: str | None = vgg_weights_setting()


# --- the benchmark -----------------------------------------------------------------------------------
@dataclass
class BenchSettings(Settings):
    """How long ``bench`` measures (the transfer settings it varies are TransferConfig's)."""

    NAMED_AS_OPTIONS: ClassVar[bool] = True

    steps: int = setting(5, "Timed steps per pattern (one more runs first as warm-up).", minimum=1)
    rounds: int = setting(1, "Processes per pattern, run alternately; their timed steps are pooled (steadier "
                          "ratios on a shared machine).", minimum=1)


# --- run control: how a run is saved, resumed and named; never part of its result --------------------
DEFAULT_CHECKPOINT_EVERY = 20


@dataclass(frozen=True)
class RunControl(Settings):
    """How a run is checkpointed and resumed: options that never change its result (not in the config hash)."""

    NAMED_AS_OPTIONS: ClassVar[bool] = True

    checkpoint_every: int = setting(
        DEFAULT_CHECKPOINT_EVERY, "Save a checkpoint every N steps in OUT/.checkpoints, to resume an interrupted run "
        "(0 = never).", minimum=0, note="(0: no checkpoints)", metavar="N", in_hash=False)
    resume: bool = setting(True, "Continue an interrupted run from its checkpoint (default), or start over.",
                           in_hash=False)


# --- reading settings --------------------------------------------------------------------------------
def resolve_config(config_file: str | Path | None = None, size: str | None = None, **overrides: Any) -> TransferConfig:
    """The transfer settings: defaults < YAML file < explicit overrides."""
    return resolve_settings(TransferConfig, config_file, size, **overrides)


def resolve_generate_config(config_file: str | Path | None = None, size: str | None = None,
                            **overrides: Any) -> GenerateConfig:
    """The generation settings: defaults < YAML file < explicit overrides."""
    return resolve_settings(GenerateConfig, config_file, size, **overrides)
