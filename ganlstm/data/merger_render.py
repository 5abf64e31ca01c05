"""Rendering of the simulator's particles to frames: projected along a sampled line of sight, binned
into an S x S image, blurred by a Gaussian PSF and asinh-stretched, in one field of view per sequence."""
from __future__ import annotations

import math

import numpy as np

from .merger_params import MergerParams
from .merger_physics import axis_basis

DISK_MARGIN = 4.5  # the field keeps this many disk scale lengths around each core
# asinh stretch softening, as a fraction of the sequence's 99.9th-percentile brightness:
# linear below it, logarithmic above, so faint tails and bright cores both show.
ASINH_SOFTENING = 0.02


def camera_axes(params: MergerParams) -> np.ndarray:
    """(2, 3) rows: the image's x and y axes for the sampled line of sight and roll."""
    roll = math.radians(params.view_roll)
    basis = axis_basis(params.view_theta, params.view_phi)  # third row is the line of sight
    c, s = math.cos(roll), math.sin(roll)
    return np.stack([c * basis[0] + s * basis[1], -s * basis[0] + c * basis[1]])


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) matrix that blurs one image axis by a Gaussian (zero padding at the edges)."""
    idx = np.arange(size)
    k = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / max(sigma, 1e-6)) ** 2)
    return k / k.sum(axis=1, keepdims=True).max()


def render(
    xy: np.ndarray,
    size: int,
    half_width: float,
    psf: float,
    sky_noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Projected particle positions (T, 2, N) -> float32 frames (T, 1, size, size) in [0, 1].

    Surface density by binning, a separable Gaussian PSF as two small matrix products,
    optional Gaussian sky noise, then an asinh stretch normalised once per sequence (so
    brightness is comparable across frames).
    """
    t = xy.shape[0]
    pix = (xy * np.float32(0.5 * size / half_width) + np.float32(0.5 * size))  # (T, 2, N) pixel coordinates
    ok = ((pix >= 0) & (pix < size)).all(axis=1)  # (T, N); before truncation, which rounds towards 0
    col, row = pix[:, 0].astype(np.int32), (size - 1) - pix[:, 1].astype(np.int32)  # image y points up
    flat = (np.arange(t, dtype=np.int32)[:, None] * size + row) * size + col
    img = np.bincount(flat[ok], minlength=t * size * size).reshape(t, size, size).astype(np.float64)
    k = _gaussian_matrix(size, psf * size)
    img = k @ img @ k.T  # (T, S, S): blur rows and columns
    ref = np.quantile(img, 0.999)
    img /= max(ref, 1e-12)
    if sky_noise > 0:
        img += rng.normal(0.0, sky_noise, img.shape)
    out = np.arcsinh(img / ASINH_SOFTENING) / math.asinh(1.0 / ASINH_SOFTENING)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[:, None]


def field_half_width(core_xy: np.ndarray, params: MergerParams) -> float:
    """Half the field of view from the projected core tracks (T, 2 cores, 2): both disks always fit.

    One field per sequence (never per frame), so motion in the frames is real motion.
    Long tidal tails may run off the edge; following them would shrink the galaxies to dots.
    """
    margin = [DISK_MARGIN * hs * a for hs, a in zip((params.disk_scale1, params.disk_scale2), params.scales)]
    reach = np.abs(core_xy).max(axis=2) + np.asarray(margin)  # (T, 2)
    return float(reach.max())
