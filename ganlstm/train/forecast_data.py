"""Data for stage two and the baselines: the config the data source decides, and (context, target) windows.

Sequences are split into train / val / test by sequence (never by window, which would
leak); :func:`~ganlstm.train.forecaster.train_forecaster` prints the split, writes it to
``split.json`` and stores it in every checkpoint.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import load_checkpoint
from ..config import ForecastTrainConfig
from ..errors import GanlstmError


@dataclasses.dataclass
class ForecastData:
    """Windows for training, the held-out sequences, and which sequence went where."""

    train: Any  # WindowDataset
    val: list[np.ndarray]  # (T, C, H, W) sequences
    split: dict[str, list[str]]  # {"train": names, "val": names, "test": names}


def resolve_config(cfg: ForecastTrainConfig) -> tuple[ForecastTrainConfig, dict | None]:
    """Fill in what the data source decides; returns the config and, for gan_lstm, the GAN checkpoint.

    For ``gan_lstm`` the generator checkpoint fixes the architecture (``model.gan``), the
    frame size and channels, and the pixel scaling: the generator can only draw frames read
    the way its training frames were. Other models read ``cfg.data`` as given; with no
    ``data.size`` the frames' own size sets ``model.image_size`` (see :func:`load_data`).
    """
    if cfg.model.model != "gan_lstm":
        return cfg, None
    from ..models.dcgan import gan_config_from_checkpoint

    if not cfg.gan_checkpoint:
        raise GanlstmError("the gan_lstm model needs a trained generator; pass --gan GAN_CKPT (a train-gan checkpoint or run directory).")
    gan_ckpt = load_checkpoint(cfg.gan_checkpoint, kind="gan")
    gan = gan_config_from_checkpoint(gan_ckpt)
    if cfg.data.size not in (None, gan.image_size):
        raise GanlstmError(f"--size {cfg.data.size} differs from the generator's {gan.image_size} px ({gan_ckpt['path']}); drop --size or pass {gan.image_size}.")
    gan_data = gan_ckpt["config"].get("train", {}).get("data", {})
    scaling = {k: gan_data[k] for k in ("scaling", "vmin", "vmax", "stretch") if k in gan_data}
    data = dataclasses.replace(cfg.data, size=gan.image_size, channels=gan.channels, **scaling)
    model = dataclasses.replace(cfg.model, gan=gan, image_size=gan.image_size, channels=gan.channels)
    return dataclasses.replace(cfg, model=model, data=data, gan_checkpoint=str(gan_ckpt["path"])), gan_ckpt


def load_data(cfg: ForecastTrainConfig, seed: int) -> tuple[ForecastTrainConfig, ForecastData]:
    """Read ``cfg.data_path``, split it by sequence, cut training windows; fixes ``model.image_size``/``channels``."""
    from ..data.frames import read_collection
    from ..data.windows import WindowDataset, split_collection

    if not cfg.data_path:
        raise GanlstmError("no training data given; pass --data DIR (frames, sequences, or `ganlstm simulate` output).")
    sequences = read_collection(cfg.data_path, cfg.data)
    c, h, w = sequences[0][1].shape[1:]
    if h != w:
        raise GanlstmError(f"{cfg.data_path}: frames are {h}x{w}, but the models need square frames; pass --size N to resize them.")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=h, channels=c))
    parts = split_collection(sequences, cfg.val_fraction, cfg.test_fraction, seed, time_split=cfg.time_split)
    split = {part: [name for name, _ in named] for part, named in parts.items()}
    windows = WindowDataset([s for _, s in parts["train"]], cfg.context, cfg.horizon, cfg.stride)
    val = [s for _, s in parts["val"] if len(s) >= cfg.context + cfg.horizon]
    return cfg, ForecastData(train=windows, val=val, split=split)


def spread_windows(sequences: list[np.ndarray], context: int, horizon: int, n: int) -> tuple[Tensor, Tensor]:
    """``n`` (context, target) windows evenly spread over ``sequences``: (n, J, C, H, W), (n, K, C, H, W)."""
    from ..data.windows import WindowDataset

    ds = WindowDataset(sequences, context, horizon, 1)
    idx = np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int))
    ctx, tgt = zip(*(ds[int(i)] for i in idx))
    return torch.stack(ctx), torch.stack(tgt)
