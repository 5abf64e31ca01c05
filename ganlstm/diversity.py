"""Diversity of forecasts: do different mergers get different futures, as different as the truth's?

A prior that draws one generic blob for every merger can score well on MSE far ahead (the blob is
near the mean remnant) while saying nothing about each merger. At every horizon k this module
measures the mean pairwise distance between the predicted frames of different windows,

    D_k(pred) = mean over pairs i != j of  RMS(pred_i,k - pred_j,k)

and reports ``diversity = D_k(pred) / D_k(truth)``: 1 when the forecasts differ from each other as
much as the true futures do, near 0 when every window gets the same frame, above 1 when they differ
more than the truth (noise). Copy-last-frame sets the scale: its diversity is that of the last
observed frames. Distances are per-pixel RMS in [0, 1] units, so sizes compare.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: Windows kept per horizon; beyond it the first ones are used (pairs grow as the square).
MAX_WINDOWS = 1024


def mean_pairwise_distance(frames: Tensor) -> float:
    """Frames (N, C, H, W) (or (N, D)) -> the mean per-pixel RMS distance between distinct pairs; NaN for N < 2."""
    n = frames.shape[0]
    if n < 2:
        return float("nan")
    flat = frames.reshape(n, -1).double()  # (N, D)
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5  # (N, N), zero diagonal
    return float(d.sum() / (n * (n - 1)))


class DiversityAccumulator:
    """Collects predictions and truths over batches; :meth:`per_horizon` gives the ratio at every horizon."""

    def __init__(self) -> None:
        self.pred: list[Tensor] = []  # (B, K, C, H, W) chunks
        self.truth: list[Tensor] = []
        self.kept = 0

    def update(self, pred: Tensor, truth: Tensor) -> None:
        """pred and truth (B, K, C, H, W) in [0, 1]."""
        if pred.shape != truth.shape or pred.dim() != 5:
            raise ValueError(f"pred and truth must both be (B, K, C, H, W), got {tuple(pred.shape)} and {tuple(truth.shape)}")
        room = MAX_WINDOWS - self.kept
        if room <= 0:
            return
        self.pred.append(pred[:room].detach().float().cpu())
        self.truth.append(truth[:room].detach().float().cpu())
        self.kept += min(room, len(pred))

    def per_horizon(self) -> dict[str, list[float]]:
        """``diversity`` (the ratio), ``pairwise_pred`` and ``pairwise_truth`` per horizon."""
        if not self.pred:
            raise ValueError("no predictions were added")
        pred, truth = torch.cat(self.pred), torch.cat(self.truth)  # (N, K, C, H, W)
        dp = [mean_pairwise_distance(pred[:, k]) for k in range(pred.shape[1])]
        dt = [mean_pairwise_distance(truth[:, k]) for k in range(truth.shape[1])]
        ratio = [p / t if t > 0 else float("nan") for p, t in zip(dp, dt)]
        return {"diversity": ratio, "pairwise_pred": dp, "pairwise_truth": dt}

    def summary(self) -> dict[str, float]:
        per = self.per_horizon()
        return {k: sum(v) / len(v) for k, v in per.items()}


def diversity_ratio(pred: Tensor, truth: Tensor) -> list[float]:
    """The per-horizon diversity of pred against truth, both (B, K, C, H, W) in [0, 1]."""
    acc = DiversityAccumulator()
    acc.update(pred, truth)
    return acc.per_horizon()["diversity"]


__all__ = ["DiversityAccumulator", "diversity_ratio", "mean_pairwise_distance", "MAX_WINDOWS"]
