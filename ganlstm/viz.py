"""Pictures: frame grids (PNG), animations (GIF), side-by-side panels and simple metric plots.

Every function takes frames as float arrays or tensors in [0, 1], shaped (N, C, H, W) for
a set of frames or (T, C, H, W) for a sequence, with C = 1 (grayscale) or 3 (RGB), and
writes 8-bit images with Pillow (GIF) or matplotlib (plots). Writers refuse to replace an
existing file unless ``overwrite=True``.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image

from .errors import GanlstmError

if TYPE_CHECKING:
    import torch

ArrayLike = Union[np.ndarray, "torch.Tensor"]


def as_numpy(frames: ArrayLike) -> np.ndarray:
    """A float32 numpy copy of frames (torch tensors are detached and moved to the CPU)."""
    if hasattr(frames, "detach"):
        frames = frames.detach().float().cpu().numpy()
    return np.asarray(frames, dtype=np.float32)


def _frames4(frames: ArrayLike, what: str = "frames") -> np.ndarray:
    a = as_numpy(frames)
    if a.ndim == 3:  # (N, H, W): grayscale without a channel axis
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise GanlstmError(f"{what} must be shaped (N, C, H, W) with C = 1 or 3, got {a.shape}; reshape before plotting.")
    return a


def to_uint8(frames: ArrayLike) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8, values clipped to [0, 1] first."""
    a = _frames4(frames)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def upscale(frames: ArrayLike, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor: (N, C, H, W) -> (N, C, fH, fW). Small frames stay crisp."""
    a = _frames4(frames)
    if factor < 1:
        raise GanlstmError(f"scale factor must be a positive integer, got {factor}.")
    return a if factor == 1 else a.repeat(factor, axis=2).repeat(factor, axis=3)


def make_grid(frames: ArrayLike, nrow: int | None = None, padding: int = 2, pad_value: float = 0.5) -> np.ndarray:
    """Tile N frames (N, C, H, W) into one image (C, H', W') with ``nrow`` frames per row (default ~sqrt N)."""
    a = _frames4(frames)
    n, c, h, w = a.shape
    ncol = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / ncol)
    grid = np.full((c, rows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value, dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y : y + h, x : x + w] = a[i]
    return grid


def side_by_side(*seqs: ArrayLike, padding: int = 2, pad_value: float = 0.5) -> np.ndarray:
    """Join sequences (T, C, H, W) of equal T and H left to right into one (T, C, H, W_total) sequence.

    Grayscale panels are repeated to RGB when any panel is RGB.
    """
    if not seqs:
        raise GanlstmError("side_by_side needs at least one sequence.")
    arrays = [_frames4(s, "each panel") for s in seqs]
    t, h = arrays[0].shape[0], arrays[0].shape[2]
    if any(a.shape[0] != t or a.shape[2] != h for a in arrays):
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise GanlstmError(f"side_by_side needs panels of the same length and height, got {shapes}; crop or resize them first.")
    c = max(a.shape[1] for a in arrays)
    parts: list[np.ndarray] = []
    for i, a in enumerate(arrays):
        if i:
            parts.append(np.full((t, c, h, padding), pad_value, dtype=np.float32))
        parts.append(np.repeat(a, c // a.shape[1], axis=1))
    return np.concatenate(parts, axis=3)


def _check_target(path: str | Path, overwrite: bool, suffixes: tuple[str, ...]) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise GanlstmError(f"{path}: unsupported file type {path.suffix or '(none)'}; use {' or '.join(suffixes)}.")
    if path.exists() and not overwrite:
        raise GanlstmError(f"{path} already exists; choose another path or pass --overwrite (overwrite=True).")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, encode: Callable[[io.BytesIO], None]) -> None:
    """Encode in memory, then write through a temp file + rename: a crash never leaves half a picture."""
    from .checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    encode(buf)
    atomic_write_bytes(path, buf.getvalue())


def _pil(image_chw: np.ndarray) -> Image.Image:
    hwc = to_uint8(image_chw[None])[0]
    return Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc, mode="L" if hwc.shape[-1] == 1 else "RGB")


def save_grid(frames: ArrayLike, path: str | Path, nrow: int | None = None, *, scale: int = 1,
              padding: int = 2, overwrite: bool = False) -> Path:
    """Write frames (N, C, H, W) in [0, 1] as one PNG grid, ``nrow`` per row, each enlarged ``scale`` times."""
    path = _check_target(path, overwrite, (".png",))
    grid = _pil(make_grid(upscale(frames, scale), nrow=nrow, padding=padding))
    _write(path, lambda f: grid.save(f, format="PNG"))
    return path


def save_gif(frames: ArrayLike | Sequence[ArrayLike], path: str | Path, fps: float = 10.0, *, scale: int = 1,
             loop: bool = True, overwrite: bool = False) -> Path:
    """Write a sequence (T, C, H, W) in [0, 1] as an animated GIF; a list of sequences is shown side by side."""
    path = _check_target(path, overwrite, (".gif",))
    if isinstance(frames, (list, tuple)):
        frames = side_by_side(*frames)
    seq = upscale(frames, scale)
    if fps <= 0:
        raise GanlstmError(f"fps must be positive, got {fps}.")
    images = [_pil(f) for f in seq]
    # Pillow takes the frame time in ms; loop=0 means "forever", and omitting loop plays once.
    extra = {"loop": 0} if loop else {}
    _write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                                           optimize=False, **extra))
    return path


def plot_curves(series: Mapping[str, Sequence[float]], path: str | Path, *, x: Sequence[float] | None = None,
                xlabel: str = "step", ylabel: str = "", title: str = "", logy: bool = False,
                overwrite: bool = False) -> Path:
    """Line plot of named series sharing one x axis (default 0..n-1), written as PNG."""
    path = _check_target(path, overwrite, (".png",))
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    try:
        for name, ys in series.items():
            xs = x if x is not None else range(len(ys))
            ax.plot(list(xs)[: len(ys)], list(ys), label=name)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        if logy:
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend(frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        _write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return path


def plot_log(csv_path: str | Path, columns: Sequence[str], path: str | Path, *, x: str = "step",
             overwrite: bool = False, **kwargs) -> Path:
    """Plot ``columns`` of a run's ``log.csv`` / ``metrics.csv`` against ``x``."""
    import csv

    with Path(csv_path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in (x, *columns) if rows and c not in rows[0]]
    if not rows or missing:
        raise GanlstmError(f"{csv_path} has no rows or lacks column(s) {', '.join(missing)}; pick columns from its header.")
    xs = [float(r[x]) for r in rows]
    series = {c: [float(r[c]) if r[c] not in ("", None) else math.nan for r in rows] for c in columns}
    return plot_curves(series, path, x=xs, xlabel=x, overwrite=overwrite, **kwargs)
