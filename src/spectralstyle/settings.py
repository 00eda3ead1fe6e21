"""Every setting of a run, declared once: type, default, bounds and help text.

A setting is a dataclass field declared with :func:`setting`. From that one declaration come the
YAML keys a ``--config`` file may hold, the command-line option of every command that runs with those
settings (``cli.options`` builds them), the validation with a one-line error, and the ``config``
object stored in every output's sidecar. Settings resolve as defaults < YAML file (or a shipped preset
such as ``quick``) < command-line flags.

To add a setting, add one field here (see the README's Development section); to add a loss term,
add its weight here and its term in ``losses.py``.

Pure Python (no torch): ``spectralstyle --help`` and every ``COMMAND --help`` build their options
from these declarations without loading any model library.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from spectralstyle.method.bands import DEFAULT_BAND, Band
from spectralstyle.errors import SpectralStyleError

Precision = Literal["fp32", "bf16", "fp16"]
SourceEncoder = Literal["plain", "filtered"]
WeightMode = Literal["pretrained", "random"]
GeneratorName = Literal["fourier", "vqgan"]
Distance = Literal["spherical", "cosine"]

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
SOURCE_ENCODERS: tuple[str, ...] = typing.get_args(SourceEncoder)
WEIGHT_MODES: tuple[str, ...] = typing.get_args(WeightMode)
GENERATORS: tuple[str, ...] = typing.get_args(GeneratorName)
DISTANCES: tuple[str, ...] = typing.get_args(Distance)

MAX_SEED = 2**63 - 1  # torch.manual_seed's range, with room for derived seeds
MIN_TRANSFER_SIDE = 16  # VGG's relu5_2 needs 16 px; the StyleNet bottleneck needs 2x2 pixels
S = TypeVar("S", bound="Settings")
_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text (quote it in YAML)", bool: "true or false"}


@dataclass(frozen=True)
class SettingInfo:
    """What a setting's declaration says besides its type and default."""

    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    note: str = ""
    """Appended to the bounds in error messages, e.g. '(0: no snapshots)'."""
    what: str = ""
    """How error messages name an unknown choice ('unknown weights mode ...'); default: the name."""
    short: str | None = None
    """A one-letter command-line alias such as '-b'."""
    cli: bool = True
    """Offered as a command-line option (width and height come through --size instead)."""
    in_hash: bool = True
    """Part of the config hash: False for settings that do not change the result (where a run is saved)."""
    neutral: bool = False
    """The default does what runs did before the setting existed (a control added later): at its default the
    setting is left out of the config hash, so the hashes of earlier results and checkpoints stay valid."""

    def bounds_rule(self, is_int: bool) -> str:
        """The bounds in words: 'a positive integer', 'non-negative', 'in (0, 1]'."""
        lo, hi = self.minimum, self.maximum
        if hi is None and lo == 1 and is_int:
            rule = "a positive integer"
        elif hi is None and lo == 0:
            rule = "positive" if self.exclusive_minimum else "non-negative"
        elif hi is None:
            rule = f"{'above' if self.exclusive_minimum else 'at least'} {lo:g}"
        elif lo is None:
            rule = f"at most {hi:g}"
        else:
            rule = f"in {'(' if self.exclusive_minimum else '['}{lo:g}, {hi:g}]"
        return f"{rule} {self.note}".strip()


def setting(default: Any, help: str, **info: Any) -> Any:
    """Declare a setting: a dataclass field with its default and a :class:`SettingInfo`."""
    return field(default=default, metadata={"setting": SettingInfo(help, **info)})


def info_of(f: dataclasses.Field) -> SettingInfo:
    return f.metadata.get("setting") or SettingInfo(help=f.name.replace("_", " "))


# --- the settings shared by every run (declared once, used by several classes) ----------------------
def band_setting() -> Any:
    return setting(DEFAULT_BAND, "Kept frequencies: c1, c2, c3, none (plain CLIP), or indices like '4-7,16-49'.",
                   short="-b")


def seed_setting() -> Any:
    return setting(1234, "Random seed; the same seed repeats a run on the same device.", minimum=0, maximum=MAX_SEED)


def weights_setting() -> Any:
    return setting("pretrained", "pretrained (found or downloaded once, then cached) or random (no files; for tests).",
                   what="weights mode")


def clip_model_setting() -> Any:
    return setting("ViT-B/32", "CLIP architecture: ViT-B/32 (the method's), ViT-B/16 or ViT-L/14.")


CLIP_WEIGHTS_HELP = ("CLIP weights of your own: OpenAI's .pt, an OpenAI/open_clip/transformers state dict (.pt, .bin, "
                     ".safetensors) or a transformers/open_clip model folder; default: the first place that has "
                     "them (see `spectralstyle weights list`).")
VGG_WEIGHTS_HELP = ("torchvision VGG19 state dict of your own (.pth or .safetensors); default: the first place that "
                    "has it (see `spectralstyle weights list`).")


def clip_weights_setting() -> Any:
    return setting(None, CLIP_WEIGHTS_HELP)


def device_setting() -> Any:
    return setting("auto", "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.")


def save_every_setting() -> Any:
    return setting(0, "Write a snapshot every N steps (0 = never).", minimum=0, note="(0: no snapshots)")


PreserveColor = Literal["off", "luminance", "histogram"]
PRESERVE_COLOR_MODES: tuple[str, ...] = typing.get_args(PreserveColor)
AVOID_TEXT_PROMPT = "written text, letters, words"
AVOID_TEXT_WEIGHT = -0.5
"""``--avoid-text`` adds this negative prompt (pixray's ``textoff`` idea, on top of the band)."""


# --- the controls of a result (transfer, batch, train, video and apply): declared once, neutral by default ---
def preserve_color_setting() -> Any:
    return setting("off", "Keep the photo's colours: luminance (the style's brightness on the photo's chroma, "
                   "YCbCr) or histogram (the result's colour histogram matched to the photo's).",
                   what="colour mode", neutral=True)


def mask_setting() -> Any:
    return setting(None, "Grey-level image (any size, resized to the photo): white = style, black = photo, "
                   "grey blends.", neutral=True)


def mask_feather_setting() -> Any:
    return setting(0.0, "Soften the mask's edge over about this many pixels (0 = as drawn).", minimum=0, neutral=True)


def invert_mask_setting() -> Any:
    return setting(False, "Style where the mask is black instead of white.", neutral=True)


def strength_setting() -> Any:
    return setting(1.0, "Blend of photo (0) and stylised result (1).", minimum=0, maximum=1, neutral=True)


class Settings:
    """What every settings dataclass shares: checks from the declarations, dict/hash/replace, the size pair.

    Subclasses are dataclasses whose fields are declared with :func:`setting`; they add rules that
    involve several settings in ``check``.
    """

    SIZE_HELP = "Working size WIDTHxHEIGHT."
    band: str
    width: int
    height: int

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SpectralStyleError with one clear line for the first bad setting."""
        hints = declared_types(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            self._check_field(f, hints[f.name])
        self.check()

    def check(self) -> None:
        """Rules that involve several settings (sizes, crops, generators); subclasses extend it."""

    def _check_field(self, f: dataclasses.Field, declared: Any) -> None:
        name, value, info = f.name, getattr(self, f.name), info_of(f)
        kind, optional, choices = describe_type(declared)
        if value is None and optional:
            return
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(self, name, value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise SpectralStyleError(f"setting {name} must be {_TYPE_WORDS[kind]}, got {value!r}")
        if choices and value not in choices:
            raise SpectralStyleError(f"unknown {info.what or name.replace('_', ' ')} {value!r}; "
                                     f"use one of {', '.join(choices)}")
        if kind is float and not math.isfinite(value):
            raise SpectralStyleError(f"setting {name} must be a finite number, got {value!r}")
        if name == "seed" and not 0 <= value <= MAX_SEED:
            raise SpectralStyleError(f"seed must be between 0 and {MAX_SEED}, got {value}")
        if name == "band":
            try:
                Band.parse(value)
            except ValueError as exc:
                raise SpectralStyleError(str(exc)) from None
        if kind in (int, float):
            low_ok = info.minimum is None or (value > info.minimum if info.exclusive_minimum else value >= info.minimum)
            high_ok = info.maximum is None or value <= info.maximum
            if not (low_ok and high_ok):
                raise SpectralStyleError(f"{name} must be {info.bounds_rule(kind is int)}, got {value}")

    def check_mask_options(self) -> None:
        """--mask-feather and --invert-mask mean something only with a mask."""
        if getattr(self, "mask", None) is None:
            if getattr(self, "mask_feather", 0) or getattr(self, "invert_mask", False):
                raise SpectralStyleError("--mask-feather and --invert-mask need --mask")
        elif not str(self.mask).strip():  # type: ignore[attr-defined]
            raise SpectralStyleError("--mask needs the path of an image")

    def check_min_side(self, minimum: int) -> None:
        if min(self.width, self.height) < minimum:
            raise SpectralStyleError(f"size {self.width}x{self.height}: each side must be at least {minimum} pixels")

    def check_multiple(self, multiple: int, why: str) -> None:
        if self.width % multiple or self.height % multiple:
            raise SpectralStyleError(f"size {self.width}x{self.height}: {why} multiples of {multiple}")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def band_value(self) -> Band:
        """The parsed band (parsed once per spec, cached)."""
        return Band.parse(self.band)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def digest(self) -> str:
        """Short stable hash of the settings that determine the result (for manifests, names and resuming)."""
        hashed = {f.name: getattr(self, f.name) for f in self._identity_fields() if info_of(f).in_hash}
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict[str, Any]:
        """``to_dict`` without the neutral settings that hold their default (what hashes of a run are made of)."""
        return {f.name: getattr(self, f.name) for f in self._identity_fields()}

    def _identity_fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if not (info_of(f).neutral and getattr(self, f.name) == f.default)]

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def declared_types(cls: type) -> dict[str, Any]:
    """Field name -> declared type of a settings dataclass (annotations resolved)."""
    return typing.get_type_hints(cls)


def describe_type(declared: Any) -> tuple[type, bool, tuple[Any, ...]]:
    """(base type, optional?, choices) of a declared type: ``int``, ``str | None``, ``Literal[...]``."""
    optional = False
    args = typing.get_args(declared)
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) != len(args)
        declared = rest[0]
        args = typing.get_args(declared)
    if typing.get_origin(declared) is Literal:
        return type(args[0]), optional, args
    return declared, optional, ()


@dataclass
class TransferConfig(Settings):
    """Method and run settings of one style transfer (defaults are the reference's, docs/method.md)."""

    SIZE_HELP = "Working size WIDTHxHEIGHT, multiples of 8 (reference 512x512)."

    band: str = band_setting()
    steps: int = setting(200, "Optimisation steps (reference 200).", minimum=1)
    width: int = setting(512, "Working width in pixels (multiple of 8).", minimum=1, cli=False)
    height: int = setting(512, "Working height in pixels (multiple of 8).", minimum=1, cli=False)
    crops: int = setting(64, "Random crops per step (reference 64).", minimum=1)
    crop_size: int = setting(128, "Crop side in pixels (reference 128).", minimum=1)
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
    source_text: str = setting("a Photo", "Text describing the content image; the style direction starts there.")
    source_encoder: SourceEncoder = setting(
        "plain", "Embed the content image with plain CLIP (the reference) or the filtered encoder.", what="source encoder")
    contrast: float = setting(1.5, "Contrast factor of the saved image (reference 1.5, 1 = unchanged).", minimum=0,
                              exclusive_minimum=True, note="(1 = unchanged; 0 would be a flat grey picture)")
    clip_model: str = clip_model_setting()
    weights: WeightMode = weights_setting()
    clip_weights: str | None = clip_weights_setting()
    vgg_weights: str | None = setting(None, VGG_WEIGHTS_HELP)
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
            raise SpectralStyleError(f"crop size {self.crop_size} is larger than the image size {self.width}x{self.height}")
        if not self.source_text.strip():
            raise SpectralStyleError("source_text must not be empty")


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
                              neutral=True)
    mix_weight: float = setting(0.5, "Share of the --mix model's output (0 = only MODEL, 1 = only --mix).", minimum=0,
                                maximum=1, neutral=True)

    def check(self) -> None:
        self.check_mask_options()
        if self.mix is None and self.mix_weight != 0.5:
            raise SpectralStyleError("--mix-weight needs --mix (a second model to blend with)")


DEFAULT_LR = {"fourier": 0.05, "vqgan": 0.1}
SIZE_MULTIPLE = {"fourier": 8, "vqgan": 16}


@dataclass
class GenerateConfig(Settings):
    """All settings of one text-to-image run; ``lr=None`` resolves to the generator's default."""

    SIZE_HELP = "Image size WIDTHxHEIGHT: multiples of 16 for vqgan, 8 for fourier (default 256x256)."

    band: str = band_setting()
    generator: GeneratorName = setting("fourier", "fourier (no weights needed) or vqgan (taming VQGAN decoder).")
    steps: int = setting(300, "Optimisation steps (default 300).", minimum=1)
    width: int = setting(256, "Image width in pixels.", minimum=1, cli=False)
    height: int = setting(256, "Image height in pixels.", minimum=1, cli=False)
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


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TransferConfig))

LOSS_TERMS: tuple[str, ...] = ("patch", "global", "content", "tv")
"""The terms of the transfer loss, in order: term ``x`` is ``losses.CLIPStyleLoss.x_term``, weighted by the
setting ``lambda_x`` above. Adding a term: its ``lambda_`` setting, its name here, its method there."""
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {name: getattr(TransferConfig, f"lambda_{name}") for name in LOSS_TERMS}


def loss_weights(config: TransferConfig) -> dict[str, float]:
    """The weight of each loss term in ``config``."""
    return {name: getattr(config, f"lambda_{name}") for name in LOSS_TERMS}


DEFAULT_TRAIN_FRAMES = 16
"""Frames sampled across a video to train its style model on (``video --train-frames``)."""


# --- run control: how a run is saved, resumed and named; never part of its result --------------------
DEFAULT_CHECKPOINT_EVERY = 20


@dataclass(frozen=True)
class RunControl:
    """How a run is checkpointed and resumed: options that never change its result (not in the config hash)."""

    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    resume: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise SpectralStyleError(
                f"--checkpoint-every must be a whole number >= 0 (0: no checkpoints), got {self.checkpoint_every}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- reading settings -------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """'512x384' -> (512, 384); a single number means a square."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", str(text))
    if not match:
        raise SpectralStyleError(f"size {text!r} is not WIDTHxHEIGHT (for example 512x512)")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def read_yaml_mapping(path: Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file holding a mapping; invalid YAML or another shape is a one-line user error."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SpectralStyleError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise SpectralStyleError(f"{what} {path} is not readable UTF-8 text ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise SpectralStyleError(f"{what} {path} must hold a mapping of settings")
    return data


def presets_dir() -> Any:
    """The shipped presets (the repository's ``configs/``): packaged as ``spectralstyle.presets`` in an
    installed wheel, read from the checkout in a development (editable) install."""
    try:
        return resources.files("spectralstyle.presets")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "configs"


def preset_names() -> list[str]:
    """Names usable as ``--config NAME``: the shipped YAML files without their suffix."""
    try:
        return sorted(p.name[: -len(".yaml")] for p in presets_dir().iterdir() if p.name.endswith(".yaml"))
    except OSError:
        return []


def find_config(name_or_path: str | Path) -> Path:
    """A config file: an existing path, else a shipped preset name ('quick'); one line when neither."""
    path = Path(name_or_path)
    if path.exists():
        if not path.is_file():
            raise SpectralStyleError(f"config file {path} is not a file")
        return path
    name = str(name_or_path).removesuffix(".yaml")
    if name in preset_names() and "/" not in name:
        with resources.as_file(presets_dir() / f"{name}.yaml") as preset:
            return Path(preset)
    presets = ", ".join(preset_names())
    raise SpectralStyleError(f"config file {path} does not exist (shipped presets: {presets})")


def check_keys(keys: set[str], names: frozenset[str], source: str) -> None:
    """Unknown keys are one line naming them, with the nearest known setting ('crop-size' -> crop_size)."""
    unknown = sorted(keys - names)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key).replace("-", "_").lower(), sorted(names | {"size"}), n=1)
        hints.append(f"{key} (did you mean {close[0]}?)" if close else str(key))
    raise SpectralStyleError(f"unknown setting(s) in {source}: {', '.join(hints)}")


def read_config_file(path: str | Path | None, field_names: frozenset[str] = FIELD_NAMES) -> dict[str, Any]:
    """Settings from a YAML file or preset; keys outside ``field_names`` and unreadable files are user errors."""
    if path is None:
        return {}
    p = find_config(path)
    data = read_yaml_mapping(p)
    if "size" in data and ({"width", "height"} & set(data)):
        raise SpectralStyleError(f"{p} gives both size and width/height; keep one")
    check_keys(set(data) - {"size"}, field_names, str(p))
    if "size" in data:
        data["width"], data["height"] = parse_size(data.pop("size"))
    return data


def resolve_settings(cls: type[S], config_file: str | Path | None = None, size: str | None = None, **overrides: Any) -> S:
    """Defaults < YAML file < explicit overrides (``None`` means 'not given'); ``size`` is 'WxH'."""
    names = frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    values = read_config_file(config_file, names)
    if size is not None:
        overrides["width"], overrides["height"] = parse_size(size)
    values.update({k: v for k, v in overrides.items() if v is not None})
    check_keys(set(values), names, "the settings")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SpectralStyleError(f"bad setting: {exc}") from None


def resolve_config(config_file: str | Path | None = None, size: str | None = None, **overrides: Any) -> TransferConfig:
    """The transfer settings: defaults < YAML file < explicit overrides."""
    return resolve_settings(TransferConfig, config_file, size, **overrides)


def resolve_generate_config(config_file: str | Path | None = None, size: str | None = None, **overrides: Any) -> GenerateConfig:
    """The generation settings: defaults < YAML file < explicit overrides."""
    return resolve_settings(GenerateConfig, config_file, size, **overrides)
