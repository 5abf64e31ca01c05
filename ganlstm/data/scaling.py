"""Intensity scaling: map a sequence's raw float32 (T, C, H, W) values to [0, 1], per ``FrameOptions.scaling``.

``minmax``  (x - min) / (max - min) over the whole sequence (all frames and channels together,
            so relative brightness between frames is kept); a constant sequence maps to 0, said in a
            :class:`~ganlstm.data.frame_files.ReaderWarning`.
``fixed``   (x - vmin) / (vmax - vmin), clipped; vmin/vmax default to the integer dtype's range
            (8-bit / 255, 16-bit / 65535) and to [0, 1] for float data.
``asinh``   u = clip((x - lo) / (hi - lo), 0, 1);  y = asinh(u / s) / asinh(1 / s)
``log``     u as above;                             y = log(1 + u / s) / log(1 + 1 / s)
``none``    values must already lie in [0, 1].

For the two stretches, ``s = stretch`` is the softening as a fraction of the range [lo, hi]
(vmin/vmax if given, else the sequence's min/max): below ``s`` the map is nearly linear, above it
logarithmic, so a small ``s`` lifts faint tidal tails out of a bright galaxy core. They are the
asinh (Lupton, Gunn & Szalay 1999) and log stretches of ``astropy.visualization`` with a = s and
a = 1/s, and both send lo -> 0 and hi -> 1.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError
from .frame_files import ReaderWarning

SCALINGS = ("minmax", "fixed", "asinh", "log", "none")
_NONE_TOLERANCE = 1e-6  # float rounding allowed outside [0, 1] under scaling="none"


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """What "fixed" maps to [0, 1] by default: an integer type's full range, else [0, 1] (float, bool)."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def scaling_range(x: np.ndarray, dtype: np.dtype, opts: FrameOptions) -> tuple[float, float]:
    """The raw values ``[lo, hi]`` that ``opts.scaling`` maps onto [0, 1] for the raw (T, C, H, W) array ``x``.

    fixed: the dtype's range; minmax, asinh, log: the sequence's own; vmin/vmax override either end.
    """
    if opts.scaling == "none":
        return 0.0, 1.0
    dlo, dhi = _dtype_range(dtype) if opts.scaling == "fixed" else (float(x.min()), float(x.max()))
    return (dlo if opts.vmin is None else float(opts.vmin)), (dhi if opts.vmax is None else float(opts.vmax))


def unscale_frames(y: np.ndarray, lo: float, hi: float, opts: FrameOptions) -> np.ndarray:
    """The inverse of :func:`scale_frames`: frames ``y`` in [0, 1] back to raw units, given the range [lo, hi]."""
    u = np.asarray(y, dtype=np.float64)
    s = float(opts.stretch)
    if opts.scaling == "asinh":
        u = s * np.sinh(u * np.arcsinh(1.0 / s))
    elif opts.scaling == "log":
        u = s * np.expm1(u * np.log1p(1.0 / s))
    return (u * (hi - lo) + lo).astype(np.float32)


def scale_frames(x: np.ndarray, dtype: np.dtype, opts: FrameOptions, path: Path) -> np.ndarray:
    """Map raw float32 (T, C, H, W) values to [0, 1] in place, per ``opts.scaling``."""
    if opts.scaling == "none":
        lo, hi = float(x.min()), float(x.max())
        if lo < -_NONE_TOLERANCE or hi > 1 + _NONE_TOLERANCE:
            raise GanlstmError(
                f"{path} has values in [{lo:g}, {hi:g}] but scaling='none' needs [0, 1]; use --scaling minmax, fixed, asinh or log."
            )
        return np.clip(x, 0.0, 1.0, out=x)
    lo, hi = scaling_range(x, dtype, opts)
    if not lo < hi:
        if opts.vmin is None and opts.vmax is None:  # a constant sequence carries no contrast
            warnings.warn(f"{path} is constant (every value is {lo:g}): {opts.scaling} scaling maps it to 0, so its level is "
                          f"lost and nothing in it moves; check the data, or pass --scaling fixed to keep the level.",
                          ReaderWarning, stacklevel=3)
            x.fill(0.0)  # in place: a second array the size of the result would double the read's memory
            return x
        raise GanlstmError(f"{path}: the {opts.scaling} scaling range [{lo:g}, {hi:g}] is empty; set --vmin below --vmax.")
    x -= lo
    x /= hi - lo
    np.clip(x, 0.0, 1.0, out=x)
    s = float(opts.stretch)
    if opts.scaling == "asinh":
        x /= s
        np.arcsinh(x, out=x)
        x /= np.arcsinh(1.0 / s)
    elif opts.scaling == "log":
        x /= s
        np.log1p(x, out=x)
        x /= np.log1p(1.0 / s)
    return np.clip(x, 0.0, 1.0, out=x)  # float rounding of the stretches can leave 1 + 1e-7
