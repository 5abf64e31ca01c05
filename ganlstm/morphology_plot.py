"""The Gini–M20 plane as a picture: predicted and true frames side by side with the Lotz et al. (2004) merger line.

Each point is one frame (:func:`ganlstm.morphology.morphology`): truth as open black circles,
the prediction of the same frame as a filled dot joined to it by a thin line, so the length of
the line is the forecast's morphological error. M20 runs from 0 on the left to -3 on the right,
as in Lotz, Primack & Madau (2004, AJ 128, 163, fig. 8); mergers lie above the line.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GanlstmError
from .morphology import LOTZ_INTERCEPT, LOTZ_SLOPE

Stats = Mapping[str, Any]


def _panels(stats: Stats | Sequence[Stats], what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    items = [stats] if isinstance(stats, Mapping) else list(stats)
    out = []
    for s in items:
        if not isinstance(s, Mapping) or "gini" not in s or "m20" not in s:
            raise GanlstmError(f"{what} must be morphology() dicts with 'gini' and 'm20' (one per panel); pass morphology(frames).")
        out.append((np.asarray(s["gini"], dtype=np.float64).ravel(), np.asarray(s["m20"], dtype=np.float64).ravel()))
    return out


def plot_gini_m20(pred_stats: Stats | Sequence[Stats], true_stats: Stats | Sequence[Stats], path: str | Path, *,
                  titles: Sequence[str] | None = None, title: str = "", overwrite: bool = False) -> Path:
    """Draw the Gini–M20 plane of predicted vs true frames and write it as a PNG; returns the path.

    ``pred_stats`` and ``true_stats`` are :func:`~ganlstm.morphology.morphology` dicts of the same
    frames (pred_stats[i] predicts true_stats[i]), or equal-length lists of them, one panel each
    (e.g. one per horizon), titled by ``titles``. Frames with NaN statistics are left out.
    """
    from .viz import _check_target, _write

    pred, true = _panels(pred_stats, "pred_stats"), _panels(true_stats, "true_stats")
    if len(pred) != len(true) or any(p[0].shape != t[0].shape for p, t in zip(pred, true)):
        raise GanlstmError("pred_stats and true_stats must describe the same frames, panel by panel; measure both on matching frames.")
    if titles is not None and len(titles) != len(pred):
        raise GanlstmError(f"got {len(titles)} titles for {len(pred)} panels; pass one title per panel.")
    path = _check_target(path, overwrite, (".png",))
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    every_g = np.concatenate([p[0] for p in pred + true])
    every_m = np.concatenate([p[1] for p in pred + true])
    ok = np.isfinite(every_g) & np.isfinite(every_m)
    if not ok.any():
        raise GanlstmError("no frame has finite Gini and M20 to plot; check that the frames are not dark (all below the segmentation threshold).")
    g_lo, g_hi = min(0.3, every_g[ok].min() - 0.03), max(0.65, every_g[ok].max() + 0.03)
    m_lo, m_hi = min(-2.6, every_m[ok].min() - 0.1), max(-0.4, every_m[ok].max() + 0.1)
    fig, axes = plt.subplots(1, len(pred), figsize=(3.6 * len(pred) + 0.4, 3.5), dpi=100, squeeze=False)
    try:
        for i, (ax, (gp, mp), (gt, mt)) in enumerate(zip(axes.flat, pred, true)):
            ok_p, ok_t = np.isfinite(gp) & np.isfinite(mp), np.isfinite(gt) & np.isfinite(mt)  # (N,) each
            both = ok_p & ok_t
            ax.plot(np.stack([mt[both], mp[both]]), np.stack([gt[both], gp[both]]), color="0.7", lw=0.6, zorder=1)
            ax.scatter(mt[ok_t], gt[ok_t], s=22, facecolors="none", edgecolors="k", lw=0.8, label="truth", zorder=2)
            ax.scatter(mp[ok_p], gp[ok_p], s=12, color="C3", label="prediction", zorder=3)
            xs = np.array([m_lo, m_hi])
            ax.plot(xs, LOTZ_SLOPE * xs + LOTZ_INTERCEPT, color="C0", lw=1.2, ls="--", label="Lotz+04 merger line")
            ax.text(0.04, 0.95, "mergers", transform=ax.transAxes, va="top", fontsize=8, color="C0")
            ax.set(xlim=(m_hi, m_lo), ylim=(g_lo, g_hi), xlabel="$M_{20}$", ylabel="Gini" if i == 0 else "")
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
            ax.grid(alpha=0.3)
        axes.flat[0].legend(loc="center right", fontsize=7, frameon=False)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        _write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return path
