"""``ganlstm evaluate-gan``: how well a stage-one checkpoint's EMA generator can draw held-out frames."""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..device import resolve_device
from ..errors import GanlstmError
from ..pixel_range import to_model_range
from ..projection import projection_quality
from .gan import load_reader, reader_quality, saved_configs
from .gan_data import frame_options, split_sequences, spread_frames

SPLITS = ("test", "val", "all")


def evaluate_gan(checkpoint: str | Path, data_path: str | Path | None = None, *, frames: int = 64, steps: int = 200,
                 restarts: int = 4, lr: float = 0.05, split: str = "test", seed: int = 0,
                 device: str = "auto") -> dict:
    """Projection SSIM/MSE and intensity-histogram distance of a checkpoint's EMA generator.

    Frames are read from ``data_path`` (default: the training data recorded in the
    checkpoint) with the checkpoint's reading options, and split as training split them.
    ``split="test"`` (default) uses sequences training never saw and did not select
    ``best.pt`` on; ``"val"`` the sequences behind the per-epoch score; ``"all"`` every
    sequence (for a data set the GAN never saw). With an encoder beside G, its one-pass reading of
    the same frames is scored too (``reader_mse``, ``reader_ssim``) and starts one more projection.
    """
    from ..data.frames import read_collection
    from ..models.dcgan import load_generator

    if split not in SPLITS:
        raise GanlstmError(f"unknown split {split!r}; use {', '.join(SPLITS)}.")
    ckpt = load_checkpoint(checkpoint, kind="gan")
    cfg, run = saved_configs(ckpt)
    dev = resolve_device(device)
    G = load_generator(ckpt).to(dev)
    data_path = data_path or cfg.data_path
    sequences = read_collection(data_path, frame_options(cfg))
    if split != "all":
        chosen = split_sequences(sequences, cfg, run.resolved_split_seed)[split]
        if not chosen:
            raise GanlstmError(f"{data_path}: the {split} split is empty ({len(sequences)} sequences); use --split all or another split.")
        sequences = chosen
    x = spread_frames(sequences, frames)
    E = load_reader(ckpt)
    starts = None if E is None else E.to(dev)(to_model_range(torch.from_numpy(x).to(dev)))  # its readings start one more inversion
    result = projection_quality(G, x, steps=steps, restarts=restarts, lr=lr, seed=seed, starts=starts)
    if E is not None:  # the encoder's one-pass reading of the same frames, what stage two's reader starts from
        result.update(reader_quality(G, E, torch.from_numpy(x).to(dev)))
    result.update(checkpoint=ckpt["path"], data=str(data_path), split=split, sequences=[n for n, _ in sequences],
                  steps=steps, restarts=restarts, lr=lr, seed=seed, step=ckpt["step"])
    return result
