"""Pictures of phase labels: one coloured strip per sequence (the true phases in a thin strip beneath), and a few frames of each phase.

Labels are int arrays (T,) indexing ``names`` (as :func:`ganlstm.phases.label_phases` returns
them); colours run along viridis in phase order, so the same colour is the same place in time
in the predicted and the true strips. Files are written through :mod:`ganlstm.viz`'s writers
(PNG, atomically, refusing an existing file unless ``overwrite``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import GanlstmError
from .viz import _check_target, _write, make_grid, upscale

MAX_STRIPS = 40  # more sequences than this: the first MAX_STRIPS are drawn (phases.json holds them all)


def _colours(k: int) -> np.ndarray:
    """k RGBA colours (k, 4) along viridis, in phase order."""
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0.0, 1.0, max(k, 2)))[:k]


def plot_phase_strips(labels_per_sequence: Sequence[np.ndarray], names: Sequence[str], path: str | Path,
                      true: Sequence[np.ndarray] | None = None, titles: Sequence[str] | None = None, *,
                      true_names: Sequence[str] | None = None, overwrite: bool = False) -> Path:
    """One horizontal strip per sequence, coloured by phase along normalised time t / (T - 1), with a legend.

    With ``true`` (per sequence (T,) ints into ``true_names``, default ``names``) a thin strip of the
    true phases lies under each predicted one. ``titles`` label the strips (default: their index).
    """
    path = _check_target(path, overwrite, (".png",))
    labels = [np.asarray(s, dtype=np.int64) for s in labels_per_sequence][:MAX_STRIPS]  # each (T,)
    true_names = list(true_names or names)
    if not labels or any(s.ndim != 1 or not len(s) for s in labels):
        raise GanlstmError("plot_phase_strips needs at least one sequence of labels, each a non-empty (T,) array.")
    truth = [np.asarray(s, dtype=np.int64) for s in true][: len(labels)] if true is not None else None
    if truth is not None and [len(s) for s in truth] != [len(s) for s in labels]:
        raise GanlstmError("plot_phase_strips needs one true label per predicted label; pass true strips of the same lengths.")
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    k = len(names)
    colours, true_colours = _colours(k), _colours(len(true_names))
    rows = len(labels)
    fig, axes = plt.subplots(rows, 1, figsize=(6.4, 0.7 + 0.4 * rows), dpi=100, squeeze=False)
    try:
        for i, (ax, lab) in enumerate(zip(axes[:, 0], labels)):
            top = 0.42 if truth is not None else 0.0  # predicted above, the true phases in a thin strip beneath
            ax.imshow(lab[None, :], cmap=ListedColormap(colours), vmin=-0.5, vmax=k - 0.5, aspect="auto",
                      interpolation="nearest", extent=(0, 1, top, 1.0))  # (1, T) image
            if truth is not None:
                ax.imshow(truth[i][None, :], cmap=ListedColormap(true_colours), vmin=-0.5, vmax=len(true_names) - 0.5,
                          aspect="auto", interpolation="nearest", extent=(0, 1, 0.0, 0.3))
            ax.set(xlim=(0, 1), ylim=(0, 1), yticks=[])
            ax.set_ylabel(titles[i] if titles is not None else str(i), rotation=0, ha="right", va="center", fontsize=7)
            ax.tick_params(axis="x", labelsize=7, labelbottom=i == rows - 1)
            for side in ("top", "right", "left"):
                ax.spines[side].set_visible(False)
        axes[-1, 0].set_xlabel("normalised time t / (T - 1)" + ("   (thin strip: true phase)" if truth is not None else ""), fontsize=8)
        handles = [Patch(color=c, label=n) for c, n in zip(colours, names)]
        fig.legend(handles=handles, loc="upper center", ncol=min(k, 4), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (0.7 + 0.4 * rows)))
        _write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return path


def plot_cluster_frames(frames_per_sequence: Sequence[np.ndarray], labels_per_sequence: Sequence[np.ndarray], names: Sequence[str],
                        path: str | Path, *, per_phase: int = 8, seed: int = 0, overwrite: bool = False) -> Path:
    """A grid with one row per phase: ``per_phase`` of its frames (T, C, H, W in [0, 1]), drawn at random, left to right in time.

    A phase with fewer frames leaves its row's end grey; the row order is the order of ``names``.
    """
    path = _check_target(path, overwrite, (".png",))
    frames = np.concatenate([np.asarray(f, dtype=np.float32) for f in frames_per_sequence])  # (N, C, H, W)
    labels = np.concatenate([np.asarray(s, dtype=np.int64) for s in labels_per_sequence])  # (N,)
    times = np.concatenate([np.arange(len(s)) / max(len(s) - 1, 1) for s in labels_per_sequence])  # (N,)
    if len(frames) != len(labels) or frames.ndim != 4:
        raise GanlstmError("plot_cluster_frames needs one label per frame and frames shaped (T, C, H, W); pass matching arrays.")
    rng = np.random.default_rng(seed)
    tiles = np.full((len(names) * per_phase, *frames.shape[1:]), 0.5, dtype=np.float32)  # (k * per_phase, C, H, W)
    for j in range(len(names)):
        members = np.flatnonzero(labels == j)
        pick = np.sort(rng.choice(members, size=min(per_phase, len(members)), replace=False)) if len(members) else members
        pick = pick[np.argsort(times[pick], kind="stable")]
        tiles[j * per_phase : j * per_phase + len(pick)] = frames[pick]
    scale = max(1, 64 // frames.shape[-1])
    grid = make_grid(upscale(tiles, scale), nrow=per_phase)  # (C, H', W')
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = grid.shape[1] / 100 + 0.3
    fig, ax = plt.subplots(figsize=(grid.shape[2] / 100 + 1.3, height), dpi=100)
    try:
        image = grid[0] if grid.shape[0] == 1 else grid.transpose(1, 2, 0)
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        step = grid.shape[1] / len(names)
        ax.set_yticks([(j + 0.5) * step for j in range(len(names))], list(names), fontsize=8)
        ax.set_xticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        _write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight", pad_inches=0.05))  # room for the phase names
    finally:
        plt.close(fig)
    return path
