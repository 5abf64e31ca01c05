"""Moving MNIST (Srivastava et al., ICML 2015) in its standard file layout, so our numbers can be
set beside published tables.

The standard test set is one NumPy file, ``mnist_test_seq.npy``: uint8, shape
``(T=20, N=10000, 64, 64)``, time first. The usual task is 10 observed frames -> 10 predicted
(OpenSTL, PredRNN). This module reads it into our convention, float32 ``(N, T, 1, H, W)`` in
[0, 1], and writes it out as a collection (one ``.npy`` per sequence) that every trainer and
``ganlstm evaluate`` can read with ``FrameOptions(scaling="fixed")``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanlstmError


def load_moving_mnist(path: str | Path, *, limit: int | None = None, size: int | None = None) -> np.ndarray:
    """Read ``mnist_test_seq.npy`` ((T, N, H, W) uint8) as float32 (N, T, 1, size, size) in [0, 1].

    ``limit`` keeps the first sequences only (the file is memory-mapped, so the rest is never
    read); ``size`` downsamples by area averaging (e.g. 64 -> 32 for a cheaper run).
    """
    path = Path(path)
    if not path.is_file():
        raise GanlstmError(f"Moving-MNIST file {path} does not exist; pass the path of mnist_test_seq.npy.")
    try:
        raw = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise GanlstmError(f"{path} is not a readable .npy file ({e}); pass the original mnist_test_seq.npy.") from None
    if raw.ndim != 4 or raw.shape[2] != raw.shape[3] or raw.dtype != np.uint8:
        raise GanlstmError(
            f"{path} holds a {raw.dtype} array of shape {raw.shape}, not the standard uint8 (T, N, H, W) layout "
            f"of mnist_test_seq.npy ((20, 10000, 64, 64)); pass the original file."
        )
    if limit is not None and limit < 1:
        raise GanlstmError(f"limit={limit} is invalid; pass a positive number of sequences.")
    n = raw.shape[1] if limit is None else min(limit, raw.shape[1])
    seqs = np.ascontiguousarray(raw[:, :n].transpose(1, 0, 2, 3))[:, :, None].astype(np.float32) / 255.0  # (N, T, 1, H, W)
    if size is not None and size != seqs.shape[-1]:
        if not 4 <= size <= seqs.shape[-1]:
            raise GanlstmError(f"size={size} is invalid for {seqs.shape[-1]}-pixel frames; pass a size between 4 and {seqs.shape[-1]}.")
        x = torch.from_numpy(seqs).flatten(0, 1)  # (N*T, 1, H, W)
        seqs = F.interpolate(x, size=(size, size), mode="area").unflatten(0, seqs.shape[:2]).numpy()
    return seqs


def write_collection(sequences: np.ndarray, out: str | Path, *, prefix: str = "seq") -> Path:
    """Write (N, T, 1, H, W) frames in [0, 1] as ``out/<prefix>_00000.npy`` uint8 (T, H, W) files.

    Read them back with ``read_collection(out, FrameOptions(scaling="fixed"))``: 8-bit values / 255.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(len(sequences) - 1)))
    for i, seq in enumerate(sequences):
        np.save(out / f"{prefix}_{i:0{digits}d}.npy", np.round(np.asarray(seq)[:, 0] * 255.0).astype(np.uint8))
    return out
