"""Distribution-level statistics of a predicted sequence, after DoppelGANger's evaluation (Lin et al., IMC 2020).

Lin, Jain, Wang, Fanti & Sekar ("Using GANs for Sharing Networked Time Series Data", IMC 2020)
judge generated sequences by whether their temporal correlations and their value distributions
match the real ones, not by pixel error. Here:

* :func:`flux_autocorrelation`: the autocorrelation of a sequence's total flux, lags 1..max_lag
  (does the forecast brighten and fade on the truth's time scales?);
* :func:`histogram_distance`: the 1-Wasserstein distance between pixel-intensity distributions
  in [0, 1], :func:`ganlstm.projection.intensity_distance` (does it have the truth's sky and brightness?).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import GanlstmError


def total_flux(frames: Any) -> np.ndarray:
    """Total flux per frame: frames (T, ...) -> (T,) float64; a 1-D input is already the flux series."""
    a = frames.detach().double().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames, dtype=np.float64)
    if a.ndim < 1 or not np.isfinite(a).all():
        raise GanlstmError(f"flux needs finite frames shaped (T, ...), got shape {a.shape}; replace NaN/Inf first.")
    return a.reshape(len(a), -1).sum(axis=1) if a.ndim > 1 else a.astype(np.float64)


def flux_autocorrelation(frames: Any, max_lag: int) -> np.ndarray:
    """Autocorrelation of total flux over a window: frames (T, C, H, W), (T, H, W) or a flux series (T,) -> (max_lag,).

    ``acf[l - 1] = sum_t (f_t - m)(f_{t+l} - m) / sum_t (f_t - m)^2`` for lags l = 1..max_lag,
    with m the window's mean flux (the standard biased estimator, which shrinks towards 0 at
    long lags and keeps |acf| <= 1). All NaN when the flux is constant: then it is undefined.
    """
    f = total_flux(frames)  # (T,)
    if not 1 <= max_lag < len(f):
        raise GanlstmError(f"max_lag={max_lag} needs 1 <= max_lag < T = {len(f)}; use a longer window or a smaller lag.")
    d = f - f.mean()
    var = float(d @ d)
    if var <= 1e-12 * max(float(f @ f), 1e-300):
        return np.full(max_lag, np.nan)
    return np.array([float(d[:-lag] @ d[lag:]) / var for lag in range(1, max_lag + 1)])


def histogram_distance(pred: Any, truth: Any, bins: int = 256) -> float:
    """1-Wasserstein distance between the pixel-intensity distributions of ``pred`` and ``truth`` (any shapes, [0, 1]).

    The area between the two CDFs of ``bins``-bin histograms (:func:`ganlstm.projection.intensity_distance`):
    0 for equal distributions, |a - b| for constant frames a and b (to the bin width), at most 1.
    """
    import torch

    from .projection import intensity_distance

    p, t = (torch.as_tensor(np.asarray(x, dtype=np.float32)) if not hasattr(x, "detach") else x for x in (pred, truth))
    if p.numel() == 0 or t.numel() == 0:
        raise GanlstmError("histogram_distance needs non-empty frame sets; pass at least one pixel of each.")
    return intensity_distance(t, p, bins=bins)
