"""The astronomer's scores of a forecast, per horizon: does the predicted merger look and evolve like the true one?

For predictions and truths in [0, 1], shape (B, K, C, H, W), at every horizon step k, over frames:

* ``gini_err``, ``m20_err``, ``concentration_err``, ``asymmetry_err``: the mean absolute error of
  the prediction's :mod:`ganlstm.morphology` statistic against the truth's (each frame in its own
  default segmentation);
* ``class_agreement``: the fraction of frames whose Gini–M20 merger class (Lotz et al. 2004)
  is the truth's (1 by construction on the simulator's asinh frames, which all lie below the
  line: see :mod:`ganlstm.morphology`);
* ``separation_err``: the mean |pred - truth| nuclei separation in px (:mod:`ganlstm.nuclei`);
* ``hist_distance``: the mean per-frame 1-Wasserstein distance of pixel intensities
  (:func:`ganlstm.temporal_stats.histogram_distance`).

A frame whose statistic is NaN (an empty segmentation, a dark frame) on either side is left
out of that metric at that horizon; a horizon with no valid frame reads NaN. :meth:`AstroAccumulator.summary`
adds two per-sequence scores: ``coalescence_err`` (see :meth:`AstroAccumulator.update`) and
``flux_acf_err``, the mean |acf_pred - acf_truth| of the total-flux autocorrelation at lags
1..min(10, K - 1) (a constant-flux sequence, such as a persistence forecast, counts as acf 0).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import GanlstmError
from .morphology import SEGMENT_THRESHOLD, STATISTICS, morphology
from .nuclei import coalescence_index, nuclei
from .temporal_stats import flux_autocorrelation, histogram_distance

ASTRO_METRICS = ("gini_err", "m20_err", "concentration_err", "asymmetry_err", "class_agreement", "separation_err",
                 "hist_distance")
#: The per-sequence scores :meth:`AstroAccumulator.summary` adds to the horizon means.
SEQUENCE_SCORES = ("coalescence_err", "coalescence_count", "flux_acf_err")
#: Whether a larger value is better, per score (counts have no direction).
ASTRO_HIGHER_IS_BETTER = {**{m: False for m in ASTRO_METRICS}, "class_agreement": True, "coalescence_err": False,
                          "coalescence_count": None, "flux_acf_err": False}
MAX_ACF_LAG = 10


def _as5(x: Any, what: str) -> np.ndarray:
    a = x.detach().double().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)
    if a.ndim != 5:
        raise GanlstmError(f"{what} must be (B, K, C, H, W), got shape {a.shape}; add the batch and horizon axes.")
    return a


def _frame_scores(p: np.ndarray, t: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Per-frame values of every metric, each (B, K) with NaN where a frame is not valid, and the separations."""
    b, k = p.shape[:2]
    flat_p, flat_t = p.reshape(b * k, *p.shape[2:]), t.reshape(b * k, *t.shape[2:])  # (B*K, C, H, W)
    mp, mt = morphology(flat_p, threshold), morphology(flat_t, threshold)
    out = {f"{s}_err": np.abs(mp[s] - mt[s]) for s in STATISTICS}  # NaN propagates
    valid = np.isfinite(mp["gini"] + mp["m20"] + mt["gini"] + mt["m20"])
    out["class_agreement"] = np.where(valid, (mp["merger"] == mt["merger"]).astype(np.float64), np.nan)
    sep_p = np.array([nuclei(f).separation for f in flat_p])  # (B*K,)
    sep_t = np.array([nuclei(f).separation for f in flat_t])
    out["separation_err"] = np.abs(sep_p - sep_t)
    out["hist_distance"] = np.array([histogram_distance(a, b_) for a, b_ in zip(flat_p, flat_t)])
    out = {name: v.reshape(b, k) for name, v in out.items()}
    out["_sep_pred"], out["_sep_truth"] = sep_p.reshape(b, k), sep_t.reshape(b, k)
    return out


class AstroAccumulator:
    """Accumulate the astronomer's scores over batches, like :class:`ganlstm.metrics.MetricAccumulator`.

    ``per_horizon()`` gives {metric: list of K floats}, ``summary()`` their means over horizons
    and the per-sequence scores. ``threshold`` is the segmentation threshold of every frame
    (:data:`ganlstm.morphology.SEGMENT_THRESHOLD`); ``coalescence_threshold`` the separation in px
    below which the nuclei count as one (:func:`ganlstm.nuclei.coalescence_index`).
    """

    def __init__(self, threshold: float = SEGMENT_THRESHOLD, coalescence_threshold: float = 2.0) -> None:
        self.threshold = threshold
        self.coalescence_threshold = coalescence_threshold
        self.sums: dict[str, np.ndarray] = {}  # metric -> (K,) sum over valid frames
        self.valid: dict[str, np.ndarray] = {}  # metric -> (K,) number of valid frames
        self.coalescence: list[float] = []  # |index error| of each sequence whose truth coalesces in the window
        self.flux_acf: list[float] = []  # mean |acf error| of each sequence
        self.count = 0
        self.horizon: int | None = None

    def update(self, pred: Any, truth: Any) -> None:
        """Add a batch: ``pred`` and ``truth`` (B, K, C, H, W) arrays or tensors in [0, 1].

        Coalescence: for each sequence whose true nuclei coalesce inside the window (the truth's
        :func:`~ganlstm.nuclei.coalescence_index` is 1..K-1; a truth already coalesced at the first
        predicted frame shows no merger to time, and one still apart at the end none to score),
        the error is |pred index - truth index| in frames, or K - truth index when the
        prediction never coalesces.
        """
        p, t = _as5(pred, "pred"), _as5(truth, "truth")
        if p.shape != t.shape:
            raise GanlstmError(f"pred and truth must have the same shape, got {p.shape} and {t.shape}; predict as many frames as the truth holds.")
        b, k = p.shape[:2]
        if self.horizon is not None and k != self.horizon:
            raise GanlstmError(f"this accumulator holds horizon {self.horizon}, got a batch of horizon {k}; use one accumulator per horizon.")
        self.horizon = k
        scores = _frame_scores(p, t, self.threshold)
        for name in ASTRO_METRICS:
            v = scores[name]  # (B, K)
            ok = np.isfinite(v)
            s, n = np.where(ok, v, 0.0).sum(0), ok.sum(0)
            self.sums[name] = self.sums[name] + s if name in self.sums else s
            self.valid[name] = self.valid[name] + n if name in self.valid else n
        lags = min(MAX_ACF_LAG, k - 1)
        for i in range(b):
            truth_at = coalescence_index(scores["_sep_truth"][i], self.coalescence_threshold)
            if truth_at is not None and 1 <= truth_at <= k - 1:
                pred_at = coalescence_index(scores["_sep_pred"][i], self.coalescence_threshold)
                self.coalescence.append(float(k - truth_at if pred_at is None else abs(pred_at - truth_at)))
            if lags >= 1:
                acf_p = np.nan_to_num(flux_autocorrelation(p[i], lags), nan=0.0)  # (lags,) constant flux -> 0
                acf_t = np.nan_to_num(flux_autocorrelation(t[i], lags), nan=0.0)
                self.flux_acf.append(float(np.abs(acf_p - acf_t).mean()))
        self.count += b

    def per_horizon(self) -> dict[str, list[float]]:
        """{metric: [K floats]}: each the mean over the valid frames seen at that horizon (NaN where none)."""
        if not self.count:
            raise GanlstmError("no predictions were accumulated; call update(pred, truth) first.")
        with np.errstate(invalid="ignore", divide="ignore"):
            return {m: [float(x) for x in np.where(self.valid[m] > 0, self.sums[m] / self.valid[m], np.nan)]
                    for m in ASTRO_METRICS}

    def summary(self) -> dict[str, float]:
        """Each metric's mean over the horizons that have a value, plus ``coalescence_err`` (NaN when no
        truth coalesced in the window), ``coalescence_count`` (how many sequences it averages) and ``flux_acf_err``."""
        out = {}
        for m, v in self.per_horizon().items():
            finite = [x for x in v if math.isfinite(x)]
            out[m] = float(np.mean(finite)) if finite else math.nan
        out["coalescence_err"] = float(np.mean(self.coalescence)) if self.coalescence else math.nan
        out["coalescence_count"] = float(len(self.coalescence))
        out["flux_acf_err"] = float(np.mean(self.flux_acf)) if self.flux_acf else math.nan
        return out


def evaluate_astro(pred: Any, truth: Any, **kwargs: Any) -> tuple[dict[str, list[float]], dict[str, float]]:
    """One-shot scores of (B, K, C, H, W) ``pred`` against ``truth``: (per_horizon, summary); kwargs go to :class:`AstroAccumulator`."""
    acc = AstroAccumulator(**kwargs)
    acc.update(pred, truth)
    return acc.per_horizon(), acc.summary()
