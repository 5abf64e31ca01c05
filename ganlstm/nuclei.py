"""The two nuclei of a merger in each frame: where they are, how far apart, and when they coalesce.

A nucleus is a local maximum of the frame after a light Gaussian smoothing (which keeps a
single noisy or saturated pixel from counting as one); positions are refined to sub-pixel by
a parabola through the peak and its neighbours along each axis. The two brightest maxima are
the nuclei, unless the second is fainter than :data:`MIN_RATIO` of the first or closer than
``min_distance`` px: then one nucleus stands out and the separation is 0 (coalesced).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from .errors import GanlstmError

#: The second nucleus counts only if its smoothed peak is at least this fraction of the first's.
#: Measured on 12 simulated mergers (32 px, seed 12345, 600 frames): companions of mass ratio
#: 0.26-0.93 peak at 0.59-1.0 of the primary in the asinh-stretched frames, while the other
#: maxima (tidal knots, stray particles, the remnant's wings) stay at or below 0.18.
MIN_RATIO = 0.35


class Nuclei(NamedTuple):
    """The brightest nucleus and the second one, as (y, x) px, and their separation in px.

    When one nucleus stands out, ``second == first`` and ``separation == 0``; for a dark
    frame (no maximum above zero) all are NaN.
    """

    first: tuple[float, float]
    second: tuple[float, float]
    separation: float


def _image(frame: Any) -> np.ndarray:
    a = frame.detach().float().cpu().numpy() if hasattr(frame, "detach") else np.asarray(frame)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(axis=0)  # (C, H, W) -> (H, W)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise GanlstmError(f"nuclei needs one finite frame shaped (H, W) or (C, H, W), got shape {a.shape}; pass frames one at a time.")
    return a


def _refine(img: np.ndarray, y: int, x: int) -> tuple[float, float]:
    """Sub-pixel peak position: the vertex of a parabola through three samples along each axis."""
    def vertex(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return float(np.clip(0.5 * (a - c) / d, -0.5, 0.5)) if d < 0 else 0.0

    h, w = img.shape
    dy = vertex(img[y - 1, x], img[y, x], img[y + 1, x]) if 0 < y < h - 1 else 0.0
    dx = vertex(img[y, x - 1], img[y, x], img[y, x + 1]) if 0 < x < w - 1 else 0.0
    return y + dy, x + dx


def nuclei(frame: Any, min_distance: int = 2, smooth: float = 1.0, min_ratio: float = MIN_RATIO) -> Nuclei:
    """The two brightest local maxima of ``frame`` ((H, W) or (C, H, W), channels averaged) and their separation.

    The frame is smoothed by a Gaussian of ``smooth`` px (0 = none); a maximum is a pixel no
    lower than every other within ``min_distance`` px (a square window). The separation is 0 when
    no second maximum reaches ``min_ratio`` of the first's smoothed height or it lies closer than
    ``min_distance`` px.
    """
    if min_distance < 1 or smooth < 0 or not 0 < min_ratio <= 1:
        raise GanlstmError(f"nuclei needs min_distance >= 1, smooth >= 0 and 0 < min_ratio <= 1, got {min_distance}, {smooth}, {min_ratio}.")
    img = _image(frame)
    s = ndimage.gaussian_filter(img, smooth, mode="constant") if smooth > 0 else img  # (H, W)
    peak = ndimage.maximum_filter(s, size=2 * min_distance + 1, mode="constant", cval=-np.inf)
    ys, xs = np.nonzero((s == peak) & (s > 0))
    if ys.size == 0:
        nan = (float("nan"), float("nan"))
        return Nuclei(nan, nan, float("nan"))
    order = np.argsort(-s[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    first = _refine(s, int(ys[0]), int(xs[0]))
    for y, x in zip(ys[1:], xs[1:]):  # the next maximum that is not a tie on the same plateau
        second = _refine(s, int(y), int(x))
        sep = float(np.hypot(second[0] - first[0], second[1] - first[1]))
        if sep >= min_distance:
            if s[y, x] >= min_ratio * s[ys[0], xs[0]]:
                return Nuclei(first, second, sep)
            break
    return Nuclei(first, first, 0.0)


def separation_curve(frames: Any, **kwargs: Any) -> np.ndarray:
    """Nuclei separations (T,) in px of frames (T, C, H, W) or (T, H, W); ``kwargs`` go to :func:`nuclei`."""
    a = frames.detach().float().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if a.ndim not in (3, 4):
        raise GanlstmError(f"separation_curve needs frames (T, C, H, W) or (T, H, W), got shape {a.shape}; stack the frames first.")
    return np.array([nuclei(f, **kwargs).separation for f in a], dtype=np.float64).reshape(len(a))


def coalescence_index(curve: Any, threshold: float = 2.0) -> int | None:
    """The first index of ``curve`` (T,) from which the separation stays below ``threshold`` px, or None.

    None when the last value is not below it (the nuclei are still apart, or the frame is
    dark: NaN never counts as coalesced); 0 when every value is below it.
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise GanlstmError(f"coalescence_index needs a 1-D separation curve (T,), got shape {c.shape}; use separation_curve first.")
    below = c < threshold  # (T,) False for NaN
    if c.size == 0 or not below[-1]:
        return None
    apart = np.flatnonzero(~below)
    return int(apart[-1] + 1) if apart.size else 0
