"""Frames for stage one: the training frames and the held-out sequences of ``GanTrainConfig.data_path``.

Data are split by sequence, never by frame, exactly as stage two splits the same data with the
same seed: G trains on the train sequences only, the ``test_fraction`` sequences are never
touched (so stage two's test frames are new to the decoder too), and the ``val_fraction``
sequences score the generator.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..config import FrameOptions, GanTrainConfig
from ..errors import GanlstmError

DIVERSITY_FRAMES = 64  # training frames whose spread the samples' spread is compared with (gan_health)


@dataclass
class GanData:
    """Frames for stage one: training frames and the validation sequences (name, (T, C, H, W))."""

    train: torch.utils.data.Dataset
    val: list[tuple[str, np.ndarray]]
    reference: np.ndarray | None = None  # (N, C, S, S) training frames spread over the set: the diversity a G should reach


def frame_options(cfg: GanTrainConfig) -> FrameOptions:
    """The reading options with size and channels fixed by the architecture."""
    return dataclasses.replace(cfg.data, size=cfg.model.image_size, channels=cfg.model.channels)


def split_sequences(sequences: list[tuple[str, np.ndarray]], cfg: GanTrainConfig, seed: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Split into train / val / test (name, frames), the same way stage two splits the same data."""
    from ..data.windows import split_collection

    return split_collection(sequences, cfg.val_fraction, cfg.test_fraction, seed, time_split=cfg.time_split)


def load_gan_data(cfg: GanTrainConfig, seed: int) -> GanData:
    """Read ``cfg.data_path`` and split it by sequence: training frames and the validation sequences.

    The test sequences are set aside untouched (see ``GanTrainConfig.test_fraction``).
    """
    from ..data.frames import read_collection
    from ..data.windows import FrameDataset

    if not cfg.data_path:
        raise GanlstmError("no training data given; pass --data DIR (frames, sequences, or `ganlstm simulate` output).")
    sequences = read_collection(cfg.data_path, frame_options(cfg))
    split = split_sequences(sequences, cfg, seed)
    return GanData(train=FrameDataset([s for _, s in split["train"]]), val=split["val"],
                   reference=spread_frames(split["train"], DIVERSITY_FRAMES))


def spread_frames(sequences: list[tuple[str, np.ndarray]], n: int) -> np.ndarray:
    """``n`` frames (n, C, H, W) evenly spaced over all frames of ``sequences`` (fewer if there are fewer)."""
    if not sequences:
        raise GanlstmError("there are no held-out frames to measure the generator on; add sequences or raise --val-fraction / --test-fraction.")
    frames = np.concatenate([s for _, s in sequences])  # (sum T, C, H, W)
    idx = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int))
    return frames[idx]
