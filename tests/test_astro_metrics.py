"""The astronomer's metrics: morphology, nuclei and temporal statistics against values computed by hand, and statmorph."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from ganlstm.astro_scores import ASTRO_METRICS, AstroAccumulator, evaluate_astro
from ganlstm.errors import GanlstmError
from ganlstm.morphology import (asymmetry, asymmetry_with_centre, concentration, gini, m20, merger_by_gini_m20,
                                morphology, segment, statmorph_morphology)
from ganlstm.morphology_plot import plot_gini_m20
from ganlstm.nuclei import coalescence_index, nuclei, separation_curve
from ganlstm.temporal_stats import flux_autocorrelation, histogram_distance

S = 48


def gaussians(blobs: list[tuple[float, float, float, float]], size: int = S) -> np.ndarray:
    """Round Gaussians (amplitude, sigma, y, x) sampled at pixel centres: (size, size)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    return sum(a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s)) for a, s, y, x in blobs)


#: A merger-like pair: a bright broad primary and a fainter compact companion 9 px away.
PAIR = [(1.0, 2.5, 24.0, 20.0), (0.5, 1.5, 24.0, 29.0)]
MASK_THRESHOLD = 1e-4  # all pixels above it: the Gaussians' flux beyond it is < 0.03%


# ------------------------------------------------------------------ Gini, M20, C, A by hand


def hand_gini(values: np.ndarray) -> float:
    x = sorted(abs(float(v)) for v in values)
    n = len(x)
    mean = sum(x) / n
    return sum((2 * i - n - 1) * x[i - 1] for i in range(1, n + 1)) / (mean * n * (n - 1))


def hand_m20(image: np.ndarray, mask: np.ndarray) -> float:
    pixels = [(float(image[y, x]), y, x) for y in range(image.shape[0]) for x in range(image.shape[1]) if mask[y, x]]
    total = sum(f for f, _, _ in pixels)
    yc = sum(f * y for f, y, _ in pixels) / total
    xc = sum(f * x for f, _, x in pixels) / total
    moments = {(y, x): f * ((x - xc) ** 2 + (y - yc) ** 2) for f, y, x in pixels}
    m_tot = sum(moments.values())
    acc, m_top = 0.0, 0.0
    for f, y, x in sorted(pixels, reverse=True):  # brightest first, up to the pixel that reaches 20%
        acc += f
        m_top += moments[(y, x)]
        if acc >= 0.2 * total:
            break
    return math.log10(m_top / m_tot)


def continuous_concentration(blobs: list[tuple[float, float, float, float]]) -> float:
    """C of the analytic (unpixelated) Gaussians about their analytic centroid, by polar quadrature."""
    flux = [a * s * s for a, s, _, _ in blobs]  # each blob's flux / 2 pi
    yc = sum(f * b[2] for f, b in zip(flux, blobs)) / sum(flux)
    xc = sum(f * b[3] for f, b in zip(flux, blobs)) / sum(flux)
    rho = np.linspace(0, 40, 8001)[1:]
    theta = np.linspace(0, 2 * np.pi, 721)[:-1]
    y = yc + rho[:, None] * np.sin(theta)
    x = xc + rho[:, None] * np.cos(theta)
    value = sum(a * np.exp(-((y - by) ** 2 + (x - bx) ** 2) / (2 * s * s)) for a, s, by, bx in blobs)
    ring = value.mean(axis=1) * 2 * np.pi * rho * (rho[1] - rho[0])
    cum = np.cumsum(ring)
    r20, r80 = np.interp(0.2 * cum[-1], cum, rho), np.interp(0.8 * cum[-1], cum, rho)
    return 5 * math.log10(r80 / r20)


def test_gini_m20_concentration_of_two_gaussians_by_hand():
    img = gaussians(PAIR)
    mask = img > MASK_THRESHOLD
    assert gini(img, mask) == pytest.approx(hand_gini(img[mask]), abs=1e-12)
    assert m20(img, mask) == pytest.approx(hand_m20(img, mask), abs=1e-12)
    assert -2.0 < m20(img, mask) < -0.5  # a pair: between one core (-2.5) and clumps
    assert concentration(img, mask) == pytest.approx(continuous_concentration(PAIR), abs=0.03)


def test_single_gaussian_analytic_concentration_and_m20():
    """A round Gaussian: r_f = sigma sqrt(-2 ln(1 - f)), so C = 5 log10 sqrt(ln 5 / ln 1.25) = 2.145, and the
    brightest 20% (r < r20, u = ln 1.25) hold 1 - e^-u (1 + u) of the second moment: M20 = -1.668."""
    img = gaussians([(1.0, 3.0, 23.3, 24.6)])
    mask = img > 1e-6
    assert concentration(img, mask) == pytest.approx(5 * math.log10(math.sqrt(math.log(5) / math.log(1.25))), abs=0.01)
    u = math.log(1.25)
    assert m20(img, mask) == pytest.approx(math.log10(1 - math.exp(-u) * (1 + u)), abs=0.03)


def test_asymmetry_of_symmetric_and_unequal_pairs():
    equal = gaussians([(1.0, 2.0, 24.0, 14.0), (1.0, 2.0, 24.0, 34.0)])
    a, (cy, cx) = asymmetry_with_centre(equal, equal > MASK_THRESHOLD)
    assert a < 1e-6 and (cy, cx) == (pytest.approx(24.0, abs=0.05), pytest.approx(24.0, abs=0.05))
    # Unequal amplitudes break the symmetry: about the midpoint (24, 24) the rotation swaps the
    # blobs, leaving |1.0 - 0.6| of each: A = 2 * 0.4 / 1.6 = 0.5. By hand, pixel by pixel:
    img = gaussians([(1.0, 2.0, 24.0, 14.0), (0.6, 2.0, 24.0, 34.0)])
    mask = img > MASK_THRESHOLD
    masked = np.where(mask, img, 0.0)
    diff = sum(abs(masked[y, x] - (masked[48 - y, 48 - x] if 48 - y < S and 48 - x < S else 0.0))
               for y in range(S) for x in range(S))
    by_hand = diff / masked.sum()
    assert by_hand == pytest.approx(0.5, abs=0.01)
    a, (cy, cx) = asymmetry_with_centre(img, mask)  # the search starts at the centroid, 2.5 px off the midpoint
    assert a == pytest.approx(by_hand, abs=0.005) and cx == pytest.approx(24.0, abs=0.1)
    one = gaussians([(1.0, 2.0, 23.6, 24.3)])
    assert asymmetry(one, one > MASK_THRESHOLD) < 0.01  # one Gaussian, off the pixel grid


def test_gini_extremes():
    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 100).astype(np.float64)
    assert gini(disc, disc > 0) == pytest.approx(0.0, abs=1e-12)
    point = np.zeros((32, 32))
    point[10, 20] = 1.0
    assert gini(point, np.ones_like(point, dtype=bool)) == pytest.approx(1.0, abs=1e-12)


def test_segmentation_keeps_the_brightest_component_and_empty_frames_give_nan():
    img = gaussians([(1.0, 1.5, 10.0, 10.0), (0.6, 1.5, 36.0, 36.0)])
    mask = segment(img)  # default threshold 0.1
    assert mask[10, 10] and not mask[36, 36] and mask.sum() == (img[:24, :24] > 0.1).sum()
    dark = np.zeros((16, 16))
    assert not segment(dark).any()
    stats = morphology(np.stack([dark, img[:16, :16]])[:, None])  # (2, 1, 16, 16)
    for k in ("gini", "m20", "concentration", "asymmetry"):
        assert np.isnan(stats[k][0]) and np.isfinite(stats[k][1])
    assert stats["merger"].dtype == bool and not stats["merger"][0]
    with pytest.raises(GanlstmError, match="shaped"):
        morphology(np.zeros((2, 3)))


def test_lotz_merger_line():
    assert merger_by_gini_m20(0.60, -1.0)  # above G = -0.115 M20 + 0.384 = 0.499
    assert not merger_by_gini_m20(0.45, -1.0)
    assert not merger_by_gini_m20(0.60, -2.0)  # the line is at 0.614 there
    assert merger_by_gini_m20(np.array([0.6, np.nan]), np.array([-1.0, -1.0])).tolist() == [True, False]


def test_morphology_of_rgb_averages_channels():
    img = gaussians(PAIR)
    rgb = np.stack([img, 0.5 * img, 1.5 * img])[None]  # (1, 3, H, W), mean = img
    grey = morphology(img[None])
    for k in ("gini", "m20", "concentration", "asymmetry"):
        assert morphology(rgb)[k][0] == pytest.approx(grey[k][0], abs=1e-9)


# ------------------------------------------------------------------ nuclei


def test_nuclei_of_two_gaussians_ten_px_apart():
    frame = gaussians([(1.0, 1.5, 16.3, 10.2), (0.7, 1.5, 16.3, 20.2)], size=32)
    n = nuclei(frame)
    assert n.separation == pytest.approx(10.0, abs=0.5)
    assert n.first == (pytest.approx(16.3, abs=0.3), pytest.approx(10.2, abs=0.3))
    assert nuclei(torch.from_numpy(frame)[None]).separation == pytest.approx(n.separation)  # (C, H, W) tensor


def test_one_nucleus_is_coalesced_and_dark_frames_are_nan():
    assert nuclei(gaussians([(1.0, 2.0, 16.0, 16.0)], size=32)).separation == 0.0
    faint = gaussians([(1.0, 1.5, 16.0, 10.0), (0.2, 1.5, 16.0, 22.0)], size=32)  # below MIN_RATIO of the first
    assert nuclei(faint).separation == 0.0
    assert math.isnan(nuclei(np.zeros((16, 16))).separation)


def test_separation_curve_and_coalescence_index():
    seps = [12.0, 9.0, 6.0, 0.0, 0.0]
    frames = np.stack([gaussians([(1.0, 1.2, 16.0, 10.0), (0.8, 1.2, 16.0, 10.0 + s)] if s else [(1.0, 1.2, 16.0, 10.0)],
                                 size=32) for s in seps])[:, None]  # (T, 1, 32, 32)
    assert separation_curve(frames) == pytest.approx(np.array(seps), abs=0.5)
    assert coalescence_index([10.0, 8.0, 5.0, 1.5, 0.0, 0.0]) == 3
    assert coalescence_index([10.0, 1.0, 5.0, 0.0]) == 3  # a close pass is not coalescence
    assert coalescence_index([5.0, 4.0]) is None
    assert coalescence_index([1.0, 0.0]) == 0
    assert coalescence_index([0.0, float("nan")]) is None


# ------------------------------------------------------------------ temporal statistics


def test_flux_autocorrelation_of_a_periodic_signal():
    t = np.arange(64)
    flux = 1.0 + 0.5 * np.sin(2 * np.pi * t / 8)  # period 8 frames
    frames = np.ones((64, 1, 4, 4)) * (flux / 16)[:, None, None, None]
    acf = flux_autocorrelation(frames, 8)
    assert acf[7] == pytest.approx((64 - 8) / 64, abs=0.02)  # lag 8: in phase, biased estimator (T - l) / T
    assert acf[3] == pytest.approx(-(64 - 4) / 64, abs=0.02)  # lag 4: half a period
    assert acf[1] == pytest.approx(0.0, abs=0.02)  # lag 2: a quarter period
    assert flux_autocorrelation(flux, 8) == pytest.approx(acf)
    assert np.isnan(flux_autocorrelation(np.ones(10), 3)).all()
    with pytest.raises(GanlstmError, match="max_lag"):
        flux_autocorrelation(flux, 64)


def test_histogram_distance():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 16, 16))
    assert histogram_distance(x, x.copy()) == 0.0
    assert histogram_distance(np.full((8, 8), 0.25), np.full((8, 8), 0.75)) == pytest.approx(0.5, abs=1 / 256)
    assert histogram_distance(torch.full((8, 8), 0.75), np.full((8, 8), 0.25)) == pytest.approx(0.5, abs=1 / 256)


# ------------------------------------------------------------------ the accumulator


def merger_sequence(seps: list[float], size: int = 32) -> np.ndarray:
    """Frames (T, 1, size, size) of a primary and a companion at the given separations (0 = one nucleus)."""
    return np.stack([gaussians([(1.0, 1.2, 16.0, 8.0), (0.8, 1.2, 16.0, 8.0 + s)] if s else [(1.0, 1.6, 16.0, 8.0)],
                               size=size) for s in seps])[:, None].clip(0, 1)


def test_accumulator_is_zero_for_a_perfect_forecast():
    truth = np.stack([merger_sequence([12, 10, 8, 6, 0, 0]), merger_sequence([14, 13, 12, 11, 10, 9])])  # (2, 6, 1, 32, 32)
    acc = AstroAccumulator()
    acc.update(torch.from_numpy(truth), truth)
    per_h = acc.per_horizon()
    assert set(per_h) == set(ASTRO_METRICS) and all(len(v) == 6 for v in per_h.values())
    s = acc.summary()
    for m in ASTRO_METRICS:
        assert s[m] == (1.0 if m == "class_agreement" else 0.0), m
    assert s["coalescence_err"] == 0.0 and s["coalescence_count"] == 1.0 and s["flux_acf_err"] == 0.0


def test_accumulator_coalescence_and_errors():
    truth = np.stack([merger_sequence([12, 10, 8, 6, 0, 0])] * 2)  # truth coalesces at index 4 of K = 6
    pred = np.stack([merger_sequence([12, 12, 12, 12, 12, 12]), merger_sequence([12, 10, 8, 0, 0, 0])])
    per_h, s = evaluate_astro(pred, truth)
    assert s["coalescence_count"] == 2.0
    assert s["coalescence_err"] == pytest.approx(((6 - 4) + 1) / 2)  # never coalesces: K - 4; early by one: 1
    assert per_h["separation_err"][0] == pytest.approx(0.0, abs=0.3)
    assert per_h["separation_err"][5] == pytest.approx(12 / 2, abs=0.5)  # one forecast 12 px off, one exact
    assert s["flux_acf_err"] > 0 and s["m20_err"] > 0


def test_accumulator_survives_dark_frames_and_checks_shapes():
    truth = merger_sequence([12, 10, 8])[None].repeat(2, axis=0)  # (2, 3, 1, 32, 32)
    truth[:, 1] = 0.0  # horizon 2 is dark in every sequence
    pred = truth.copy()
    pred[0, 2] = 0.0  # one more dark frame, in the prediction only
    acc = AstroAccumulator()
    acc.update(pred, truth)
    per_h = acc.per_horizon()
    assert all(math.isnan(per_h[m][1]) for m in ASTRO_METRICS if m not in ("separation_err", "hist_distance"))
    assert per_h["gini_err"][0] == 0.0 and math.isfinite(per_h["gini_err"][2])  # horizon 3 keeps sequence 1
    s = acc.summary()  # the NaN horizon is left out of the means
    assert s["gini_err"] == pytest.approx(np.mean([per_h["gini_err"][0], per_h["gini_err"][2]]))
    with pytest.raises(GanlstmError, match="same shape"):
        acc.update(pred[:, :2], truth)
    with pytest.raises(GanlstmError, match="horizon"):
        acc.update(pred[:, :2], truth[:, :2])
    with pytest.raises(GanlstmError, match="no predictions"):
        AstroAccumulator().per_horizon()


# ------------------------------------------------------------------ statmorph and the plot


def exponential_galaxy(seed: int, noise: float = 0.005) -> np.ndarray:
    """A smooth inclined exponential disc (scale 3 px, axis ratio 0.8) on 64 px, plus Gaussian noise."""
    yy, xx = np.mgrid[:64, :64].astype(np.float64)
    r = np.hypot((yy - 31.6) / 0.8, xx - 32.2)
    return np.exp(-r / 3.0) + np.random.default_rng(seed).normal(0.0, noise, r.shape)


@pytest.mark.parametrize("seed", [0, 1])
def test_statmorph_agrees_on_a_smooth_galaxy(seed):
    """In the same pixels (statmorph's Gini segmap) Gini and M20 are identical definitions, to 1e-9.

    With our own segmentation at 5 sigma, ours - statmorph over 8 noise seeds measured dG in
    [-0.003, +0.010] and dM20 in [-0.03, +0.04]: close. dC in [-0.17, -0.16]: our total flux is the
    segmentation's, not 1.5 Petrosian radii's. dA in [+0.07, +0.10]: we subtract no sky asymmetry
    (statmorph's A is ~0; ours is 0.023 without noise, the cusp of the disc, and the rest is noise).
    """
    pytest.importorskip("statmorph")
    img = exponential_galaxy(seed)
    ours_mask = segment(img, 5 * 0.005)
    ref = statmorph_morphology(img, ours_mask, noise=0.005)
    assert ref["flag"] <= 1
    same = ref["gini_mask"]
    assert gini(img, same) == pytest.approx(ref["gini"], abs=1e-9)
    assert m20(img, same) == pytest.approx(ref["m20"], abs=1e-9)
    ours = morphology(img[None], threshold=5 * 0.005)
    assert ours["gini"][0] == pytest.approx(ref["gini"], abs=0.03)
    assert ours["m20"][0] == pytest.approx(ref["m20"], abs=0.08)
    assert ours["concentration"][0] == pytest.approx(ref["concentration"], abs=0.3)
    assert ours["asymmetry"][0] == pytest.approx(ref["asymmetry"], abs=0.15)
    assert ours["asymmetry"][0] < 0.15 and abs(ref["asymmetry"]) < 0.1  # both see a symmetric disc


def test_statmorph_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "statmorph", None)  # import statmorph -> ImportError
    with pytest.raises(GanlstmError, match=r"ganlstm\[astro\]"):
        statmorph_morphology(exponential_galaxy(0))


def test_plot_gini_m20(tmp_path):
    frames = np.stack([gaussians(PAIR), gaussians([(1.0, 2.0, 24.0, 24.0)])])[:, None]  # (2, 1, 48, 48)
    stats = morphology(frames, threshold=0.01)
    path = plot_gini_m20([stats, stats], [stats, stats], tmp_path / "gm.png", titles=["a", "b"])
    assert path.stat().st_size < 150_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(GanlstmError, match="exists"):
        plot_gini_m20(stats, stats, path)
    with pytest.raises(GanlstmError, match="same frames"):
        plot_gini_m20(stats, {"gini": [0.5], "m20": [-1.0]}, tmp_path / "other.png")
