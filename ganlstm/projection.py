"""Latent inversion ("projection") of frames into a frozen generator, and the decoder-quality metric.

Stage two can only predict frames the generator can draw: for a target frame x, the best
any latent forecaster can do is ``min_z d(G(z), x)``. :func:`project` approximates that
minimum the usual way for GAN inversion (e.g. Zhu et al., "Generative Visual Manipulation on
the Natural Image Manifold", ECCV 2016; Creswell & Bharath 2018): Adam on z from several
random starts, keeping the best start per frame. :func:`projection_quality` reports the
SSIM and MSE of those best reconstructions ("projection SSIM", the ceiling for stage two)
and how far the generator's pixel-intensity distribution is from the data's.

Metric conventions are those of :mod:`ganlstm.metrics` (OpenSTL): ``mse`` is the per-frame
sum of squared errors over C*H*W, ``mse_pixel`` the per-pixel mean, SSIM as scikit-image.
Stage two reuses :func:`project` to obtain latents of true future frames.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .errors import GanlstmError
from .metrics import frame_metrics
from .models.dcgan import sample_latents


def _as_frames(frames: Tensor | np.ndarray, G: nn.Module) -> Tensor:
    x = torch.as_tensor(np.asarray(frames, dtype=np.float32) if isinstance(frames, np.ndarray) else frames).float()
    expected = (G.channels, G.image_size, G.image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise GanlstmError(f"frames to project must be (N, {expected[0]}, {expected[1]}, {expected[2]}) to match the generator, got {tuple(x.shape)}; read them with the generator's --size and --channels.")
    return x


def project(G: nn.Module, frames: Tensor | np.ndarray, steps: int = 200, restarts: int = 4, lr: float = 0.05,
            *, seed: int = 0, batch_size: int = 64, starts: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Find latents whose generated frames best match ``frames`` (N, C, H, W) in [0, 1].

    For every frame, ``restarts`` latents drawn from N(0, I) are optimised jointly with Adam
    for ``steps`` steps on the per-pixel MSE (learning rate ``lr`` with cosine decay to 0,
    so the last steps refine rather than jitter); the start with the lowest final error wins.
    G is run in eval mode and never receives gradients. Deterministic for a given ``seed``.
    ``starts`` (N, nz), e.g. an encoder's readings, adds one more start per frame (encoder-initialised
    inversion, Zhu et al. ECCV 2020); the best of all starts still wins.

    Returns ``(z, recon)``: latents (N, nz) and reconstructions (N, C, H, W) in [0, 1],
    both on G's device.
    """
    if steps < 1 or restarts < 1:
        raise GanlstmError(f"projection needs steps >= 1 and restarts >= 1 (got {steps}, {restarts}).")
    x_all = _as_frames(frames, G)
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    zs, recons = [], []
    try:
        with torch.enable_grad():
            for start in range(0, len(x_all), batch_size):
                x = x_all[start : start + batch_size].to(device)  # (n, C, H, W)
                # Each chunk gets its own seed so results do not depend on batch_size boundaries' RNG use.
                z0 = sample_latents(restarts * len(x), G.nz, seed * 1_000_003 + start, device)
                if starts is not None:
                    z0 = torch.cat([z0, starts[start : start + batch_size].to(device, z0.dtype).detach()])  # restart-major
                z, recon = _project_chunk(G, x, z0, steps, lr, restarts + (starts is not None))
                zs.append(z)
                recons.append(recon)
    finally:
        G.train(was_training)
    return torch.cat(zs), torch.cat(recons)


def _project_chunk(G: nn.Module, x: Tensor, z0: Tensor, steps: int, lr: float, restarts: int) -> tuple[Tensor, Tensor]:
    n = len(x)
    target = x.repeat(restarts, 1, 1, 1)  # (R*n, C, H, W), restart-major
    z = z0.clone().requires_grad_(True)  # (R*n, nz)
    opt = torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    for _ in range(steps):
        err = (G.render(z) - target).pow(2).flatten(1).mean(1)  # (R*n,) per-pixel MSE of each start
        # Gradients w.r.t. z only: G's parameters are never touched, frozen or not.
        (z.grad,) = torch.autograd.grad(err.sum(), z)
        opt.step()
        sched.step()
    with torch.no_grad():
        recon = G.render(z)  # (R*n, C, H, W)
        err = (recon - target).pow(2).flatten(1).mean(1).view(restarts, n)
        best = err.argmin(0)  # (n,) winning restart per frame
        idx = best * n + torch.arange(n, device=x.device)
        return z.detach()[idx], recon[idx]


def refine(G: nn.Module, frames: Tensor, z0: Tensor, steps: int, lr: float = 0.1) -> Tensor:
    """Improve latents ``z0`` (N, nz) of ``frames`` (N, C, H, W) in [0, 1] by ``steps`` Adam steps on the per-pixel MSE.

    The encoder-initialised inversion of Zhu et al. ("In-Domain GAN Inversion", ECCV 2020): an
    encoder's one-pass reading is a good start, and a few optimisation steps from it close most of
    the gap to a full :func:`project`. Same schedule as :func:`project` (cosine decay to 0), one
    start. Runs with gradients on ``z`` only, in full precision, even when called under
    ``torch.inference_mode`` or autocast; G is left untouched. Returns detached latents (N, nz).
    """
    if steps < 1:
        return z0.detach()
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(z0.device.type, enabled=False):
        dtype = next(G.parameters()).dtype
        x = frames.detach().clone().to(dtype)  # a normal tensor: inference tensors cannot enter autograd
        z, _ = _project_chunk(G, x, z0.detach().clone().to(dtype), steps, lr, 1)
    return z.to(z0.dtype)


def intensity_distance(real: Tensor, fake: Tensor, bins: int = 256) -> float:
    """1-Wasserstein distance between the pixel-intensity distributions of two frame sets in [0, 1].

    Computed from ``bins``-bin histograms as the area between the two CDFs: 0 for equal
    distributions, at most 1. It says in intensity units how far, e.g., the generator's
    sky level and brightness of the galaxies are from the data's.
    """
    def cdf(x: Tensor) -> Tensor:
        h = torch.histc(x.detach().float().clamp(0, 1).cpu(), bins=bins, min=0.0, max=1.0)
        return h.cumsum(0) / h.sum()

    return float((cdf(real) - cdf(fake)).abs().sum() / bins)


def projection_quality(G: nn.Module, frames: Tensor | np.ndarray, steps: int = 200, restarts: int = 4,
                       lr: float = 0.05, *, seed: int = 0, batch_size: int = 64, starts: Tensor | None = None) -> dict[str, float]:
    """How well the generator reproduces ``frames`` (N, C, H, W) in [0, 1], and how alike its output is.

    Returns ``ssim``, ``mse``, ``mse_pixel`` and ``psnr`` of the best projections (means over
    frames, :mod:`ganlstm.metrics` conventions), ``hist_distance`` (see
    :func:`intensity_distance`) between the frames and N random samples of G, and ``frames`` = N.
    """
    x = _as_frames(frames, G)
    _, recon = project(G, x, steps, restarts, lr, seed=seed, batch_size=batch_size, starts=starts)
    device = recon.device
    with torch.no_grad():
        m = frame_metrics(recon.unsqueeze(1), x.to(device).unsqueeze(1))  # each (N, 1)
        was_training = G.training
        G.eval()
        fake = torch.cat([G.render(sample_latents(min(batch_size, len(x) - i), G.nz, seed + 1 + i, device))
                          for i in range(0, len(x), batch_size)])
        G.train(was_training)
    out = {k: float(m[k].mean()) for k in ("ssim", "mse", "mse_pixel", "psnr")}
    from .metrics import MetricAccumulator

    acc = MetricAccumulator()
    acc.update(recon.unsqueeze(0).cpu(), x.unsqueeze(0).cpu())  # one "window" of N frames
    out["sharpness"] = acc.summary()["sharpness"]  # gradient energy of the projections over the frames' (1 = as sharp)
    out["hist_distance"] = intensity_distance(x, fake)
    out["frames"] = len(x)
    return out
