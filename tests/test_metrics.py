"""Metrics: hand-computed values for persistence, agreement with scikit-image's SSIM, sharpness."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from ganlstm.config import ForecasterConfig
from ganlstm.losses import SKIMAGE_SSIM_KWARGS
from ganlstm.metrics import METRICS, MetricAccumulator, evaluate_metrics, frame_metrics
from ganlstm.models.base import build_forecaster
from ganlstm.rollout import predict

S = 16  # SSIM's 11x11 window needs at least 11 pixels


def test_persistence_metrics_by_hand():
    """Constant frames make every metric a closed-form number."""
    context = torch.tensor([0.3, 0.5]).view(1, 2, 1, 1, 1).expand(1, 2, 1, S, S)
    truth = torch.tensor([0.7, 0.2]).view(1, 2, 1, 1, 1).expand(1, 2, 1, S, S)
    pred = predict(build_forecaster(ForecasterConfig(model="persistence", image_size=S)), context, steps=2)
    m = evaluate_metrics(pred, truth)
    n = S * S
    err = [0.2, 0.3]  # |0.5 - 0.7|, |0.5 - 0.2|
    for k, e in enumerate(err):
        assert m["mse"][k] == pytest.approx(n * e**2, rel=1e-5)  # OpenSTL: per-frame sum
        assert m["mae"][k] == pytest.approx(n * e, rel=1e-5)
        assert m["mse_pixel"][k] == pytest.approx(e**2, rel=1e-5)
        assert m["psnr"][k] == pytest.approx(10 * math.log10(1 / e**2), rel=1e-5)
    # Zero variance: SSIM reduces to the luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    c1 = 0.01**2
    for k, y in enumerate([0.7, 0.2]):
        assert m["ssim"][k] == pytest.approx((2 * 0.5 * y + c1) / (0.25 + y * y + c1), rel=1e-5)


def test_accumulator_over_batches_equals_one_batch():
    g = torch.Generator().manual_seed(0)
    pred, truth = torch.rand(5, 3, 1, S, S, generator=g), torch.rand(5, 3, 1, S, S, generator=g)
    acc = MetricAccumulator()
    acc.update(pred[:2], truth[:2])
    acc.update(pred[2:], truth[2:])
    whole = evaluate_metrics(pred, truth)
    for name, values in acc.per_horizon().items():
        np.testing.assert_allclose(values.numpy(), whole[name], rtol=1e-6)
    assert set(acc.summary()) == set(METRICS)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels):
    rng = np.random.default_rng(1)
    # Structured images (a smooth blob plus noise) and a distorted copy: SSIM far from 0 and 1.
    yy, xx = np.mgrid[:24, :20] / 10.0
    base = np.exp(-((xx - 1) ** 2 + (yy - 1.2) ** 2)).astype(np.float32)
    a = np.clip(base[None] + 0.1 * rng.standard_normal((channels, 24, 20)), 0, 1).astype(np.float32)
    b = np.clip(0.8 * a + 0.15 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ours = frame_metrics(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])["ssim"].item()
    ref = structural_similarity(a, b, **SKIMAGE_SSIM_KWARGS, channel_axis=0)
    assert 0.1 < ref < 0.95
    assert ours == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize(("va", "vb"), [(0.7, 0.8), (1.0, 0.9), (0.0, 0.05)])
def test_ssim_matches_scikit_image_on_flat_frames(va, vb):
    # Flat bright frames are where float32 statistics cancel worst (they drift ~2e-4 there).
    a, b = np.full((1, S, S), va, np.float32), np.full((1, S, S), vb, np.float32)
    ours = frame_metrics(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])["ssim"].item()
    assert ours == pytest.approx(structural_similarity(a, b, **SKIMAGE_SSIM_KWARGS, channel_axis=0), abs=1e-5)


def test_sharpness_is_one_for_truth_and_below_one_for_blur():
    g = torch.Generator().manual_seed(2)
    truth = torch.rand(2, 2, 1, S, S, generator=g)
    kernel = torch.full((1, 1, 3, 3), 1 / 9)
    blurred = F.conv2d(truth.flatten(0, 1), kernel, padding=1).view_as(truth)
    assert evaluate_metrics(truth, truth)["sharpness"] == pytest.approx([1.0, 1.0])
    assert max(evaluate_metrics(blurred, truth)["sharpness"]) < 0.7


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="both be"):
        frame_metrics(torch.rand(1, 2, 1, S, S), torch.rand(1, 3, 1, S, S))
