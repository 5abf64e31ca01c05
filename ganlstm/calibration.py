"""Calibration of an ensemble forecast: the spread-skill ratio and the CRPS, per horizon.

For members ``x_1 .. x_N`` (N, B, K, C, H, W) and the truth ``y`` (B, K, C, H, W), both in [0, 1],
at every horizon k, over every pixel of every window:

* ``rmse``: the root mean squared error of the ensemble mean;
* ``spread``: the root of the mean unbiased member variance, times ``sqrt((N + 1) / N)`` (Fortin
  et al., MWR 2014): for a calibrated ensemble of N members ``spread`` then equals ``rmse`` in
  expectation, so ``spread_skill = spread / rmse`` is 1 when the spread is honest, below 1 when
  the ensemble is over-confident, above 1 when it is under-confident;
* ``crps``: the continuous ranked probability score of the members' empirical distribution,
  ``mean_i |x_i - y| - (1 / 2N^2) sum_ij |x_i - x_j|`` (Gneiting & Raftery 2007), per pixel. For
  one member (a deterministic forecast) it is the absolute error, so ``crps`` is directly
  comparable with ``mae_pixel``, the per-pixel mean absolute error of any point forecast;
* ``mae_pixel``: the per-pixel mean absolute error of the ensemble mean.

Values are per-pixel means (unlike :mod:`ganlstm.metrics`' per-frame sums), in [0, 1] units.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

CALIBRATION_METRICS = ("spread_skill", "spread", "rmse", "crps", "mae_pixel")


def crps_ensemble(members: Tensor, truth: Tensor) -> Tensor:
    """Per-element CRPS of members (N, ...) against truth (...): (...). Exact for the N-member empirical distribution."""
    if members.shape[1:] != truth.shape:
        raise ValueError(f"members (N, ...) and truth (...) disagree: {tuple(members.shape)} vs {tuple(truth.shape)}")
    x = members.double()
    n = x.shape[0]
    skill = (x - truth.double()).abs().mean(0)  # E|X - y|
    # sum_ij |x_i - x_j| = 2 * sum_k (2k - N - 1) x_(k) over the sorted members (k = 1..N)
    weights = (2 * torch.arange(1, n + 1, dtype=x.dtype, device=x.device) - n - 1).view(-1, *([1] * truth.dim()))
    pair = 2 * (weights * x.sort(0).values).sum(0)
    return (skill - pair / (2 * n * n)).float()


class CalibrationAccumulator:
    """Sums per horizon over batches of ensembles, so a whole test set is one calibration table."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count: Tensor | None = None  # pixels per horizon (K,)
        self.members: int | None = None

    def update(self, members: Tensor, truth: Tensor) -> None:
        """members (N, B, K, C, H, W), truth (B, K, C, H, W), both in [0, 1]."""
        if members.dim() != 6 or members.shape[1:] != truth.shape:
            raise ValueError(f"members must be (N, B, K, C, H, W) over truth (B, K, C, H, W), got {tuple(members.shape)} and {tuple(truth.shape)}")
        n = members.shape[0]
        if self.members not in (None, n):
            raise ValueError(f"every update needs the same number of members ({self.members}), got {n}")
        self.members = n
        x, y = members.float(), truth.float()
        mean = x.mean(0)  # (B, K, C, H, W)
        var = x.var(0, correction=1) if n > 1 else torch.zeros_like(mean)
        dims = (0, 2, 3, 4)  # all but the horizon
        parts = {
            "var": var.double().sum(dims),
            "se": (mean - y).double().pow(2).sum(dims),
            "ae": (mean - y).double().abs().sum(dims),
            "crps": crps_ensemble(x, y).double().sum(dims),
        }
        for key, value in parts.items():
            self.sums[key] = self.sums.get(key, 0) + value
        pixels = torch.full((truth.shape[1],), float(truth[:, 0].numel()), dtype=torch.float64)
        self.count = pixels if self.count is None else self.count + pixels

    def per_horizon(self) -> dict[str, list[float]]:
        if self.count is None:
            raise ValueError("no ensembles were added")
        n = self.members
        rmse = (self.sums["se"] / self.count).sqrt()
        spread = (self.sums["var"] / self.count * (n + 1) / n).sqrt()
        out = {
            "spread_skill": spread / rmse.clamp_min(1e-12),
            "spread": spread,
            "rmse": rmse,
            "crps": self.sums["crps"] / self.count,
            "mae_pixel": self.sums["ae"] / self.count,
        }
        return {k: [float(v) for v in out[k]] for k in CALIBRATION_METRICS}

    def summary(self) -> dict[str, float]:
        """Means over horizons; ``spread_skill`` is the geometric mean (a ratio), so 0.5 and 2 average to 1."""
        per = self.per_horizon()
        out = {k: sum(v) / len(v) for k, v in per.items()}
        out["spread_skill"] = math.exp(sum(math.log(max(r, 1e-12)) for r in per["spread_skill"]) / len(per["spread_skill"]))
        return out


#: The spreads ``fit`` tries on its validation windows (:func:`calibrate_spread`), and the spread-skill band that counts as calibrated.
SPREAD_GRID = (0.3, 0.5, 0.7, 1.0, 1.4)
CALIBRATED_BAND = (0.8, 1.2)


def choose_spread(rows: list[tuple[float, float, float]], band: tuple[float, float] = CALIBRATED_BAND) -> float:
    """(spread, spread-skill, CRPS) rows -> the sharpest calibrated spread (Gneiting et al. 2007).

    Of the spreads whose spread-skill ratio lies in ``band``, the one with the lowest CRPS; when none
    does, the one whose ratio is nearest 1.
    """
    if not rows:
        raise ValueError("no spreads to choose from")
    calibrated = [r for r in rows if band[0] <= r[1] <= band[1]]
    if calibrated:
        return min(calibrated, key=lambda r: r[2])[0]
    return min(rows, key=lambda r: abs(math.log(max(r[1], 1e-12))))[0]


def calibrate_spread(model, context: Tensor, target: Tensor, *, spreads: tuple[float, ...] = SPREAD_GRID, members: int = 8,
                     seed: int = 0) -> tuple[float, list[dict[str, float]]]:
    """The spread for ``model``'s ensembles, chosen on windows context (B, J, C, H, W) / target (B, K, C, H, W) in [0, 1].

    Returns the chosen spread and one row per spread tried: ``spread``, ``spread_skill`` (geometric mean
    over horizons) and ``crps`` (mean over horizons).
    """
    from .ensemble import sample_futures

    rows = []
    for spread in spreads:
        acc = CalibrationAccumulator()
        acc.update(sample_futures(model, context, target.shape[1], members, spread=spread, seed=seed), target)
        summary = acc.summary()
        rows.append({"spread": float(spread), "spread_skill": summary["spread_skill"], "crps": summary["crps"]})
    return choose_spread([(r["spread"], r["spread_skill"], r["crps"]) for r in rows]), rows


def calibrate(members: Tensor, truth: Tensor) -> dict[str, list[float]]:
    """The per-horizon table for one ensemble: members (N, B, K, C, H, W), truth (B, K, C, H, W)."""
    acc = CalibrationAccumulator()
    acc.update(members, truth)
    return acc.per_horizon()


__all__ = ["CALIBRATION_METRICS", "CalibrationAccumulator", "crps_ensemble", "calibrate", "calibrate_spread", "choose_spread",
           "SPREAD_GRID"]
