"""Training losses: differentiable SSIM, the original project's SSIM+MSE mix, and GAN losses.

SSIM follows Wang et al. (2004) with the exact settings of
``skimage.metrics.structural_similarity(a, b, data_range=1, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, channel_axis=0)``: an 11x11 Gaussian window
(truncate 3.5), statistics on the valid region only, the mean over channels. The test
suite checks agreement with scikit-image, so the metric reported in benchmarks and the
quantity the models optimise are the same thing.

GAN losses: the non-saturating loss of Goodfellow et al. (2014), the hinge loss of
Lim & Ye (2017) / Miyato et al. (2018), and the R1 penalty of Mescheder et al. (2018).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

# The scikit-image call our SSIM reproduces (tests and metrics use these settings).
SKIMAGE_SSIM_KWARGS = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # scipy.ndimage's truncate=3.5 -> 11 taps
_C1 = (0.01 * 1.0) ** 2
_C2 = (0.03 * 1.0) ** 2


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(-_RADIUS, _RADIUS + 1, device=device, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * _SIGMA**2))
    return (g / g.sum()).to(dtype)  # (11,)


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel SSIM of images in [0, 1]; (N, C, H, W) -> (N, C, H-10, W-10).

    Computed in float32 even under autocast: the variance terms cancel badly in half precision.
    float64 inputs stay float64 (the metrics use it: in flat bright regions float32 drifts ~2e-4).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim expects two (N, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < 2 * _RADIUS + 1:
        raise ValueError(f"ssim needs images of at least {2 * _RADIUS + 1}x{2 * _RADIUS + 1} pixels, got {tuple(x.shape[-2:])}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    n, c, h, w = x.shape
    g = _gaussian_window(x.device, x.dtype)
    # Separable Gaussian filter, 'valid' region only: the same numbers scikit-image keeps after cropping.
    gh = g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1)
    gv = g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5C, H, W)
    f = F.conv2d(F.conv2d(stack, gh, groups=5 * c), gv, groups=5 * c)  # (N, 5C, H-10, W-10)
    mx, my, mxx, myy, mxy = f.split(c, dim=1)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    num = (2 * mx * my + _C1) * (2 * cxy + _C2)
    den = (mx * mx + my * my + _C1) * (vx + vy + _C2)
    return num / den


def ssim(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """SSIM of images in [0, 1], (N, C, H, W). ``reduction='none'`` gives one value per image."""
    per_image = ssim_map(x, y).mean(dim=(1, 2, 3))  # mean over channels, as scikit-image does
    return per_image.mean() if reduction == "mean" else per_image


def pixel_loss(pred: Tensor, target: Tensor, alpha: float = 0.5, bright_weight: float = 0.0) -> Tensor:
    """The original project's loss, ``alpha*(1-SSIM) + (1-alpha)*MSE``, on frames in [0, 1].

    Merger frames are mostly black sky, which inflates SSIM and lets a model ignore the
    galaxies; ``bright_weight`` > 0 weights each pixel's squared error by
    ``1 + bright_weight * target`` so that errors on the bright structure count more.
    Accepts (..., C, H, W); leading dims are flattened.
    """
    pred = pred.reshape(-1, *pred.shape[-3:])
    target = target.reshape(-1, *target.shape[-3:])
    se = (pred.float() - target.float()) ** 2
    if bright_weight > 0:
        w = 1.0 + bright_weight * target.float()
        mse = (se * w).sum() / w.sum()
    else:
        mse = se.mean()
    if alpha == 0:
        return mse
    return alpha * (1.0 - ssim(pred, target)) + (1.0 - alpha) * mse


def gradient_difference_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean |(|d pred| - |d target|)| over horizontal and vertical neighbour differences, frames (..., C, H, W).

    The gradient difference loss of Mathieu, Couprie & LeCun ("Deep multi-scale video prediction
    beyond mean square error", ICLR 2016, with their alpha = 1): zero only when the prediction has
    the target's edges, where MSE and SSIM are content with a blurred average of the futures.
    """
    pred, target = pred.float(), target.float()
    dy = ((pred[..., 1:, :] - pred[..., :-1, :]).abs() - (target[..., 1:, :] - target[..., :-1, :]).abs()).abs()
    dx = ((pred[..., :, 1:] - pred[..., :, :-1]).abs() - (target[..., :, 1:] - target[..., :, :-1]).abs()).abs()
    return (dy.mean() + dx.mean()) / 2


def rollout_pixel_loss(pred: Tensor, target: Tensor, alpha: float = 0.5, bright_weight: float = 0.0,
                       gdl_weight: float = 0.0) -> Tensor:
    """:func:`pixel_loss` of a rollout (B, K, C, H, W) over all its frames, plus ``gdl_weight`` times
    :func:`gradient_difference_loss` (0 = none)."""
    loss = pixel_loss(pred, target, alpha=alpha, bright_weight=bright_weight)
    if gdl_weight > 0:
        loss = loss + gdl_weight * gradient_difference_loss(pred, target)
    return loss


def d_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "hinge") -> Tensor:
    """Discriminator loss on logits (D outputs logits, never probabilities)."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "ns":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # BCE-with-logits, labels 1/0
    raise ValueError(f"unknown GAN loss {kind!r}; use 'hinge' or 'ns'")


def g_loss(fake_logits: Tensor, kind: str = "hinge") -> Tensor:
    """Generator loss on the discriminator's logits for generated images."""
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "ns":
        return F.softplus(-fake_logits).mean()  # non-saturating: -log sigmoid(D(G(z)))
    raise ValueError(f"unknown GAN loss {kind!r}; use 'hinge' or 'ns'")


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1: squared gradient norm of D's logits w.r.t. real inputs (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def psnr_from_mse(mse: Tensor) -> Tensor:
    """PSNR in dB for data range 1 from a per-pixel MSE (clamped to avoid infinities)."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


__all__ = [
    "SKIMAGE_SSIM_KWARGS",
    "ssim_map",
    "ssim",
    "pixel_loss",
    "gradient_difference_loss",
    "rollout_pixel_loss",
    "d_loss",
    "g_loss",
    "r1_penalty",
    "psnr_from_mse",
]
