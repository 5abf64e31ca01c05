"""Intensity scaling: map a sequence's raw float32 (T, C, H, W) values to [0, 1], per ``FrameOptions.scaling``.

``minmax``  (x - min) / (max - min) over the whole sequence (all frames and channels together,
            so relative brightness between frames is kept); a constant sequence maps to 0.
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

from pathlib import Path

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError

SCALINGS = ("minmax", "fixed", "asinh", "log", "none")
_NONE_TOLERANCE = 1e-6  # float rounding allowed outside [0, 1] under scaling="none"


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """What "fixed" maps to [0, 1] by default: an integer type's full range, else [0, 1] (float, bool)."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def scale_frames(x: np.ndarray, dtype: np.dtype, opts: FrameOptions, path: Path) -> np.ndarray:
    """Map raw float32 (T, C, H, W) values to [0, 1] in place, per ``opts.scaling``."""
    if opts.scaling == "none":
        lo, hi = float(x.min()), float(x.max())
        if lo < -_NONE_TOLERANCE or hi > 1 + _NONE_TOLERANCE:
            raise GanlstmError(
                f"{path} has values in [{lo:g}, {hi:g}] but scaling='none' needs [0, 1]; use --scaling minmax, fixed, asinh or log."
            )
        return np.clip(x, 0.0, 1.0, out=x)
    # fixed: the dtype's range; minmax, asinh, log: the sequence's own. vmin/vmax override either end.
    dlo, dhi = _dtype_range(dtype) if opts.scaling == "fixed" else (float(x.min()), float(x.max()))
    lo = dlo if opts.vmin is None else float(opts.vmin)
    hi = dhi if opts.vmax is None else float(opts.vmax)
    if not lo < hi:
        if opts.vmin is None and opts.vmax is None:  # a constant sequence carries no contrast
            return np.zeros_like(x)
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
