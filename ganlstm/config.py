"""Configuration dataclasses: one per component and stage.

Every run writes ``asdict(config)`` to ``config.json`` before step 0, and every
checkpoint embeds it, so a model can be rebuilt from the checkpoint alone.
Reading a config back is strict: an unknown key is an error, never silently dropped.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .config_checks import validate
from .errors import GanlstmError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """Plain-dict form of a (nested) config dataclass, JSON- and weights_only-safe."""
    return dataclasses.asdict(cfg)


#: Reader warm-up of the recipe (train-encoder --reader-warmup; 3000 measured on the mergers).
READER_WARMUP = 3000

#: The GAN-LSTM's prediction settings that `fit` (on validation) and the context check (per sequence) choose among.
ANCHOR_DECAYS = (0.0, 0.5, 0.8, 0.9, 1.0)
MOTION_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)

#: Options measured as worse everywhere and removed (docs/benchmarks.md keeps their numbers), with
#: the value that meant "off". A checkpoint that has them off still loads; one trained with them on
#: is refused, since this version cannot rebuild that model.
REMOVED: dict[str, dict[str, Any]] = {
    "ForecasterConfig": {"separate_reader": False, "refine_steps": 0, "refine_lr": None, "refine_decay": None},
    "ForecastTrainConfig": {"early_weight": 0.0, "latent_weight": 0.0, "freeze_reader": False, "anchor_loss": False},
}


def _drop_removed(cls: type, data: dict, where: str) -> dict:
    removed = REMOVED.get(cls.__name__, {})
    for key in [k for k in data if k in removed]:
        off = removed[key]
        if off is not None and data[key] != off:
            raise GanlstmError(f"{where} was trained with {key}={data[key]!r}, an option ganlstm removed after it measured worse "
                               f"(docs/benchmarks.md); retrain without it, or use ganlstm 0.1 to load this file.")
    return {k: v for k, v in data.items() if k not in removed}


def from_dict(cls: type[T], data: dict, *, where: str = "config") -> T:
    """Build ``cls`` from ``data``; unknown keys are an error naming the key and the fix."""
    if not isinstance(data, dict):
        raise GanlstmError(f"{where} must be a mapping, found {type(data).__name__}; pass a dict or config.json.")
    data = _drop_removed(cls, data, where)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise GanlstmError(
            f"{where} has unknown key(s) {', '.join(unknown)} for {cls.__name__}; "
            f"valid keys are {', '.join(sorted(names))}."
        )
    kwargs = {}
    for key, value in data.items():
        ftype = names[key].type
        sub = _dataclass_type(ftype)
        kwargs[key] = from_dict(sub, value, where=f"{where}.{key}") if sub and isinstance(value, dict) else value
    try:
        return cls(**kwargs)
    except GanlstmError as e:
        if str(e).startswith(where):
            raise
        raise GanlstmError(f"{where}: {e}") from None


def _dataclass_type(ftype: Any) -> type | None:
    # Annotations are strings under `from __future__ import annotations`.
    if isinstance(ftype, str):
        ftype = _CONFIG_TYPES.get(ftype)
    return ftype if dataclasses.is_dataclass(ftype) else None


def save_json(cfg: Any, path: str | Path) -> None:
    """Write a config as pretty JSON (atomically)."""
    from .checkpoint import atomic_write_bytes

    text = json.dumps(to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg, indent=2, sort_keys=True)
    atomic_write_bytes(Path(path), (text + "\n").encode())


@dataclass
class FrameOptions:
    """How frames are read from disk into float32 (T, C, H, W) arrays in [0, 1]."""

    size: int | None = None  # resize every frame to size x size; None keeps the native size
    channels: int = 1  # 1 = grayscale, 3 = RGB
    interval: int = 1  # keep every `interval`-th frame (the original project used 2)
    scaling: str = "minmax"  # minmax | fixed | asinh | log | none
    vmin: float | None = None  # fixed range for scaling="fixed" (defaults to the dtype's range)
    vmax: float | None = None
    stretch: float = 0.1  # softening for asinh/log stretches (fraction of the data range)
    max_frames: int = 100_000  # refuse sequences longer than this (guards memory)
    max_pixels: int = 4096 * 4096  # refuse frames larger than this many pixels

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class GanConfig:
    """DCGAN architecture (stage one). Depth follows image_size."""

    image_size: int = 64
    channels: int = 1
    # The recipe (docs/method.md, "What the GAN prior needs"): nz 512 as a (32, 4, 4) grid, widths 32.
    nz: int = 512  # latent size
    ngf: int = 32  # generator width
    ndf: int = 32  # discriminator width
    # Measured default (benchmarks/gan_flags.py, docs/benchmarks.md): the BatchNorm DCGAN
    # discriminator beat spectral norm on projection SSIM at short CPU budgets.
    spectral_norm: bool = False
    # Side of the latent grid G starts from: 1 is DCGAN's z (nz, 1, 1); 4 reshapes z to
    # (nz/16, 4, 4), a spatial latent that lets G place structure where it is (see models/dcgan.py);
    # projection SSIM of held-out mergers 0.88 against 0.67-0.74 with grid 1.
    latent_grid: int = 4
    # Width of a frame encoder E trained beside G (stage one) so that G(E(x)) ~ x; 0 = none (the
    # plain DCGAN). Its architecture is stage two's reader (models/encoder.py FrameReader), which
    # starts from these weights. On by default: measured best on small real data (docs/benchmarks.md).
    encoder: int = 32

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class GanTrainConfig:
    """How stage one trains; every field is a `ganlstm train-gan` flag."""

    model: GanConfig = field(default_factory=GanConfig)
    data: FrameOptions = field(default_factory=FrameOptions)
    data_path: str = ""
    loss: str = "ns"  # ns (non-saturating) | hinge; ns measured best with the BatchNorm discriminator
    r1: float = 0.0  # R1 penalty weight on real logits' gradient (0 disables)
    diffaug: str = ""  # DiffAugment ops, e.g. "translation,cutout,brightness"; off by default: it slowed short runs
    ema: float = 0.999  # decay of the generator EMA (0 disables: EMA = G)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    val_fraction: float = 0.1  # held-out sequences for the projection metric
    # Sequences stage one never sees: with the same data and seed these are exactly stage
    # two's test sequences, so the decoder has not been fitted to frames it is tested on.
    test_fraction: float = 0.1
    # Cut a single sequence (a movie) in time: train on its start, validate and test on its
    # continuation (val_fraction / test_fraction of its frames), instead of splitting by sequence.
    time_split: bool = False
    # Encoder beside G (model.encoder > 0): weight of the reconstruction loss G(E(x)) ~ x on real
    # frames, added to G's adversarial loss (0 = off; needs model.encoder).
    recon_weight: float = 30.0
    # Adaptive augmentation (Karras et al. 2020): its probability p follows the sign of D's
    # logits on real frames towards this target (0 = off; StyleGAN2-ADA used 0.6).
    ada_target: float = 0.6
    # Fine-tune from this stage-one checkpoint (architecture from it); FreezeD (Mo et al. 2020)
    # freezes the discriminator's first `freeze_d` convolution blocks.
    init: str = ""
    freeze_d: int = 0

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class ForecasterConfig:
    """Stage-two / baseline architecture. `model` names an entry of the forecaster registry."""

    model: str = "gan_lstm"  # a registered forecaster: gan_lstm, convlstm, predrnn, convgru, ... (ganlstm/models/)
    image_size: int = 64
    channels: int = 1
    hidden: tuple[int, ...] = (32, 32)  # recurrent hidden channels per layer (the shipped GAN-LSTM's)
    kernel: int = 3
    cell: str = "convlstm"  # gan_lstm: the dynamics between reading and drawing (convlstm | convgru)
    feedback: str = "pixels"  # gan_lstm: how a prediction re-enters the ConvLSTM (pixels | latent; see models/gan_lstm.py)
    gan: GanConfig | None = None  # gan_lstm: architecture of the embedded frozen generator
    # gan_lstm: cap on the RMS of each predicted latent (0 = off). G only learned N(0, I) latents
    # (RMS ~1); closed-loop predictions drift past that (RMS 1.6 by horizon 20) and G draws artefacts.
    latent_cap: float = 1.0
    # gan_lstm, in prediction and validation (never in training): add the last observed frame's reading error, x_J - G(read(x_J)),
    # to the k-th predicted frame times anchor_decay**(k-1) (0 = off). G cannot draw x_J exactly; its
    # error at x_J is nearly its error at x_J+1, so the first frames keep the observed detail.
    anchor_decay: float = 0.0
    # gan_lstm, in prediction and validation (never in training): the k-th frame is drawn from z_J + motion_scale * (z_k - z_J),
    # the predicted latent change from the last frame's reading scaled (1 = as predicted, 0 = the last frame's reading;
    # with anchor_decay 1 that is copy-last-frame). `fit` chooses it with the decay on validation, so a model whose motion
    # does not help there falls back towards persistence by degrees, and its frames stay ones G can draw.
    motion_scale: float = 1.0
    # gan_lstm, in prediction: check each sequence on its own context first (ganlstm/models/context_check.py): forecast its last
    # 5 observed frames from the earlier ones, and where the recorded settings clearly lose there to a fallback (scale 0 with
    # some decay; decay 1 is copy-last-frame), predict with that fallback.
    context_check: bool = False
    # gan_lstm, with --samples only: the latent nudge per horizon that draws an ensemble (ganlstm/ensemble.py);
    # 0 = ganlstm.ensemble.DEFAULT_SPREAD. `fit` records the spread it calibrated on its validation windows.
    sample_spread: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):  # JSON has no tuples
            self.hidden = tuple(self.hidden)
        validate(self)


@dataclass
class ForecastTrainConfig:
    """How stage two (and the trainable baselines) train."""

    model: ForecasterConfig = field(default_factory=ForecasterConfig)
    data: FrameOptions = field(default_factory=FrameOptions)
    data_path: str = ""
    gan_checkpoint: str = ""
    context: int = 10
    horizon: int = 10
    stride: int = 1
    # The shipped recipe (benchmarks/train_shipped.sh): alpha 0.8, an edge term, an average of the weights.
    alpha: float = 0.8  # pixel loss = alpha*(1-SSIM) + (1-alpha)*MSE (original project: 0.5)
    bright_weight: float = 0.0  # extra MSE weight on bright pixels (0 = uniform)
    gdl_weight: float = 6.0  # + this times the gradient difference loss (Mathieu et al. 2016) of the rollout (0 = off)
    ema: float = 0.999  # decay of an average of the weights that validation, best.pt and inference use (0 = off)
    recon_weight: float = 0.1  # gan_lstm: G(E(x_t)) ~ x_t on observed frames
    # gan_lstm: the first N steps train only the frame reader (encoder + read) to invert G on
    # single frames, before the ConvLSTM learns motion from a faithful reading (0 = off).
    # None: min(READER_WARMUP, 60 % of the run's steps) for gan_lstm, resolved when the run starts.
    reader_warmup: int | None = None
    sampling_start: float = 1.0  # scheduled sampling: P(feed truth) at step 0 ...
    sampling_end: float = 0.0  # ... decaying linearly to this at the last step
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    time_split: bool = False  # one sequence cut in time (see GanTrainConfig.time_split)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class RunConfig:
    """What every training command shares: where, how long, on what device."""

    out: str = "runs"
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 32
    seed: int = 0  # weights, data order, sampling coins; also the split unless split_seed is set
    split_seed: int | None = None  # the train/val/test split by sequence (None: seed)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "no"  # no | bf16 | fp16 (GPU only; off on CPU)
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads while training (None: torch's choice); restored afterwards
    log_every: int = 10  # steps between log.csv rows
    save_every: int = 0  # steps between last.pt writes (0 = every epoch only)
    val_every: int = 0  # steps between validations (and last.pt writes); 0 = after every epoch
    skip_nonfinite: bool = False  # drop a batch with a NaN/Inf loss instead of stopping
    deterministic: bool = False  # torch.use_deterministic_algorithms(True)
    compile: bool = False  # torch.compile the training step's models
    progress: bool = True

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise GanlstmError(f"threads={self.threads} is invalid; pass a positive number of CPU threads, or leave it unset for torch's choice.")
        validate(self)

    @property
    def resolved_split_seed(self) -> int:
        """The seed of the train/val/test split: ``split_seed``, or ``seed`` when that is unset."""
        return self.seed if self.split_seed is None else self.split_seed


@dataclass
class FitConfig:
    """``ganlstm fit``: one command from a user's frames to a scored model (see ganlstm/pipeline.py).

    Every field below the first block is the measured recipe (docs/benchmarks.md, "Your own
    frames"); fit.json in the output directory records the resolved values.
    """

    data: str = ""
    out: str = ""
    budget: float = 60.0  # wall-clock minutes for all stages together
    size: int = 64
    channels: int | None = None  # None: 3 when the frames are colour, else 1
    interval: int = 1
    scaling: str = "minmax"
    context: int = 10
    horizon: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "no"
    threads: int | None = None
    init: str = ""  # fine-tune stage one from this prior (train-gan --init, FreezeD on D's first FREEZE_D blocks)
    morphology: bool = False  # the report also scores morphology, nuclei and flux statistics (slower); may change on resume
    # The recipe.
    nz: int = 512
    latent_grid: int = 4
    width: int = 32  # ngf = ndf = stage-one encoder = ConvLSTM widths
    recon_weight: float = 30.0  # the adversarial term sharpens; at weight 10 the reconstruction lagged (docs/benchmarks.md)
    ada_target: float = 0.6
    gan_batch_size: int = 32
    batch_size: int = 8
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    anchor_decays: tuple[float, ...] = ANCHOR_DECAYS
    motion_scales: tuple[float, ...] = MOTION_SCALES  # chosen with the decay; 0 draws the last frame's reading

    def __post_init__(self) -> None:
        validate(self)


_CONFIG_TYPES = {
    "FrameOptions": FrameOptions,
    "GanConfig": GanConfig,
    "GanConfig | None": GanConfig,
    "ForecasterConfig": ForecasterConfig,
    "RunConfig": RunConfig,
}
