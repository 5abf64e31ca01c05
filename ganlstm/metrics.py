"""Per-horizon forecast metrics, with OpenSTL's conventions so numbers compare with published tables.

For predictions and truths in [0, 1], shape (B, K, C, H, W), at every horizon step k:

* ``mse`` / ``mae``: the per-frame **sum** over C*H*W of squared / absolute error,
  averaged over frames (OpenSTL, and the Moving-MNIST literature);
* ``mse_pixel``: the per-pixel mean squared error;
* ``psnr``: per frame, ``10 log10(1 / mse_pixel)`` (data range 1), averaged over frames;
* ``ssim``: per frame, identical to ``skimage.metrics.structural_similarity`` with
  Gaussian weights (see :mod:`ganlstm.losses`), averaged over frames;
* ``sharpness``: mean gradient magnitude of the prediction divided by that of the truth.
  1.0 is ideal; blurry forecasts fall below it (the failure the GAN prior is meant to avoid).

:class:`MetricAccumulator` sums over batches so a whole test set is one table.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .losses import psnr_from_mse, ssim

METRICS = ("mse", "mae", "mse_pixel", "psnr", "ssim", "sharpness")
#: Whether a larger value is better, per metric (sharpness: closest to 1 is best).
HIGHER_IS_BETTER = {"mse": False, "mae": False, "mse_pixel": False, "psnr": True, "ssim": True, "sharpness": None}


def gradient_magnitude(x: Tensor) -> Tensor:
    """Mean absolute finite-difference gradient per frame: (N, C, H, W) -> (N,)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(-3, -2, -1))
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(-3, -2, -1))
    return dx + dy


def _precise_ssim(pred: Tensor, truth: Tensor) -> Tensor:
    """Per-frame SSIM in float64 where the device has it (MPS has not): in flat bright regions
    float32's E[x^2] - E[x]^2 cancels enough to drift ~2e-4 from scikit-image."""
    dtype = torch.float32 if pred.device.type == "mps" else torch.float64
    return ssim(pred.to(dtype), truth.to(dtype), reduction="none").float()


def frame_metrics(pred: Tensor, truth: Tensor) -> dict[str, Tensor]:
    """Per-frame metrics for (B, K, C, H, W) in [0, 1]; each value (B, K). Sharpness parts are summed later."""
    if pred.shape != truth.shape or pred.dim() != 5:
        raise ValueError(f"pred and truth must both be (B, K, C, H, W), got {tuple(pred.shape)} and {tuple(truth.shape)}")
    pred, truth = pred.float(), truth.float()
    b, k = pred.shape[:2]
    err = pred - truth
    se = err.pow(2).flatten(2)  # (B, K, C*H*W)
    mse_pixel = se.mean(-1)
    flat_p, flat_t = pred.flatten(0, 1), truth.flatten(0, 1)  # (B*K, C, H, W)
    return {
        "mse": se.sum(-1),
        "mae": err.abs().flatten(2).sum(-1),
        "mse_pixel": mse_pixel,
        "psnr": psnr_from_mse(mse_pixel),
        "ssim": _precise_ssim(flat_p, flat_t).view(b, k),
        "_grad_pred": gradient_magnitude(flat_p).view(b, k),
        "_grad_truth": gradient_magnitude(flat_t).view(b, k),
    }


class MetricAccumulator:
    """Accumulate per-horizon sums over batches; ``result()`` gives {metric: (K,) tensor} and the means."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def update(self, pred: Tensor, truth: Tensor) -> None:
        for name, v in frame_metrics(pred, truth).items():
            s = v.sum(0).double().cpu()  # (K,)
            self.sums[name] = self.sums[name] + s if name in self.sums else s
        self.count += pred.shape[0]

    def per_horizon(self) -> dict[str, Tensor]:
        """{metric: (K,)} averaged over every frame seen at that horizon."""
        if not self.count:
            raise ValueError("no predictions were accumulated")
        out = {m: self.sums[m] / self.count for m in METRICS if m != "sharpness"}
        out["sharpness"] = self.sums["_grad_pred"] / self.sums["_grad_truth"].clamp_min(1e-12)
        return out

    def summary(self) -> dict[str, float]:
        """Each metric averaged over horizons (sharpness: ratio of the summed gradients)."""
        ph = self.per_horizon()
        out = {m: float(v.mean()) for m, v in ph.items() if m != "sharpness"}
        out["sharpness"] = float(self.sums["_grad_pred"].sum() / self.sums["_grad_truth"].sum().clamp_min(1e-12))
        return out


def evaluate_metrics(pred: Tensor, truth: Tensor) -> dict[str, list[float]]:
    """One-shot per-horizon metrics as plain lists (for JSON)."""
    acc = MetricAccumulator()
    acc.update(pred, truth)
    return {m: [float(x) for x in v] for m, v in acc.per_horizon().items()}
