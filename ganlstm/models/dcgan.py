"""Stage one's networks: the DCGAN generator (the frozen decoder of every prediction) and discriminator.

Architecture after Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks" (ICLR 2016), as in pytorch/examples
``dcgan``: strided 4x4 (transposed) convolutions, BatchNorm + ReLU in the generator, a tanh
output in [-1, 1], LeakyReLU(0.2) in the discriminator. The depth follows the image size:
every stride-2 layer doubles (G) or halves (D) the resolution between 4x4 and ``image_size``,
and the width doubles per layer away from the image, capped at 8x the base width so that
128 px stays affordable.

The discriminator returns logits (pair it with the hinge or non-saturating losses of
:mod:`ganlstm.losses`). With ``spectral_norm=True`` every D layer is spectrally normalised
(Miyato et al., ICLR 2018) and BatchNorm is dropped from D, as SN-GAN does; without it, D is
the original DCGAN discriminator with BatchNorm.

``latent_grid=4`` (not in the original DCGAN) feeds z to G as a (nz/16, 4, 4) grid instead of a
(nz, 1, 1) vector, so every region of the first 4x4 feature map has latents of its own; a
decoder that must reproduce held-out frames (stage two's) gains from it (docs/benchmarks.md).
Everything outside G still sees a flat (B, nz) latent.

Latent helpers (:func:`slerp`, :func:`latent_walk`) follow White, "Sampling Generative
Networks" (2016): spherical interpolation keeps intermediate Gaussian latents at a typical norm.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from ..config import GanConfig, from_dict
from ..errors import GanlstmError
from ..pixel_range import to_unit_range
from . import fast_layout

SIZES = (16, 32, 64, 128)
LATENT_GRIDS = (1, 4)  # z as (nz, 1, 1), DCGAN's, or as (nz/16, 4, 4), a spatial latent
MAX_WIDTH_MULT = 8  # widest layer = 8 x ngf / ndf (pytorch/examples' 64 px DCGAN uses exactly this)


def _num_doublings(image_size: int) -> int:
    """Stride-2 layers between 4x4 and ``image_size`` (16 -> 2, 32 -> 3, 64 -> 4, 128 -> 5)."""
    if image_size not in SIZES:
        raise GanlstmError(f"image size {image_size} is not supported by the DCGAN; use one of {', '.join(map(str, SIZES))} (e.g. --size 64).")
    return int(math.log2(image_size)) - 2


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise GanlstmError(f"channels={channels} is not supported; use 1 (grayscale) or 3 (RGB).")


class Generator(nn.Module):
    """z (B, nz) -> frames (B, C, S, S) in [-1, 1]."""

    def __init__(self, nz: int = 64, image_size: int = 64, channels: int = 1, ngf: int = 64, latent_grid: int = 1):
        super().__init__()
        n = _num_doublings(image_size)
        _check_channels(channels)
        if latent_grid not in LATENT_GRIDS or nz % (latent_grid * latent_grid):
            raise GanlstmError(f"latent grid {latent_grid} with nz={nz} is not supported; use --latent-grid 1, or 4 with nz a multiple of 16.")
        self.nz, self.image_size, self.channels, self.latent_grid = nz, image_size, channels, latent_grid
        # Width at resolution 4 * 2**i, for i = 0 .. n-1 (the last entry feeds the output layer).
        widths = [ngf * min(2 ** (n - 1 - i), MAX_WIDTH_MULT) for i in range(n)]
        self.z_channels = nz // (latent_grid * latent_grid)
        first = (nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False) if latent_grid == 1  # (B, nz, 1, 1) -> (B, w0, 4, 4)
                 else nn.ConvTranspose2d(self.z_channels, widths[0], 3, 1, 1, bias=False))  # (B, nz/16, 4, 4) -> (B, w0, 4, 4)
        layers: list[nn.Module] = [
            first,  # (B, w0, 4, 4)
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),  # (B, w_out, 2H, 2W)
                nn.BatchNorm2d(w_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]  # (B, C, S, S)
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        g = self.latent_grid
        h = z.view(z.shape[0], self.z_channels, g, g)  # (B, nz) -> (B, nz/g^2, g, g)
        if not fast_layout.applies(h):
            return self.net(h)  # (B, C, S, S)
        # CPU inference on a large batch: the same output layer as a sub-pixel convolution (models/fast_layout.py)
        *body, last, tanh = self.net
        for layer in body:
            h = layer(h)
        return tanh(fast_layout.subpixel_conv_transpose(h, last))  # (B, C, S, S)

    def render(self, z: Tensor) -> Tensor:
        """Latents (B, nz) -> frames (B, C, S, S) in [0, 1], the public pixel range."""
        return to_unit_range(self(z))


class Discriminator(nn.Module):
    """frames (B, C, S, S) in [-1, 1] -> logits (B,)."""

    def __init__(self, image_size: int = 64, channels: int = 1, ndf: int = 64, spectral_norm: bool = True):
        super().__init__()
        n = _num_doublings(image_size)
        _check_channels(channels)
        # Width at resolution S / 2**(i+1), for i = 0 .. n-1 (the last one is 4x4).
        widths = [ndf * min(2**i, MAX_WIDTH_MULT) for i in range(n)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]  # (B, w0, S/2, S/2)
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=spectral_norm))  # (B, w_out, H/2, W/2)
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(0.2, True))
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0))  # (B, 1, 1, 1)
        for m in layers:
            _dcgan_init(m)
        if spectral_norm:
            # Wrapped after init, so the power-iteration vectors start from the final weights.
            layers = [_sn(m) if isinstance(m, nn.Conv2d) else m for m in layers]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(x.shape[0])  # (B, C, S, S) -> (B,)


def _dcgan_init(m: nn.Module) -> None:
    # Radford et al.: all weights from N(0, 0.02); BatchNorm scale from N(1, 0.02).
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_generator(cfg: GanConfig) -> Generator:
    """An untrained generator with the architecture of ``cfg``."""
    return Generator(nz=cfg.nz, image_size=cfg.image_size, channels=cfg.channels, ngf=cfg.ngf, latent_grid=cfg.latent_grid)


def build_discriminator(cfg: GanConfig) -> Discriminator:
    """An untrained discriminator with the architecture of ``cfg``."""
    return Discriminator(image_size=cfg.image_size, channels=cfg.channels, ndf=cfg.ndf, spectral_norm=cfg.spectral_norm)


def gan_config_from_checkpoint(ckpt: dict) -> GanConfig:
    """The generator architecture recorded in a stage-one checkpoint (``config["train"]["model"]``)."""
    path = ckpt.get("path", "checkpoint")
    try:
        model = ckpt["config"]["train"]["model"]
    except (KeyError, TypeError):
        raise GanlstmError(f"{path} has no GAN architecture in its config; pass a checkpoint written by `ganlstm train-gan`.") from None
    if isinstance(model, dict):
        model = {"encoder": 0, **model}  # written before stage one had an encoder: it had none
    return from_dict(GanConfig, model, where=f"{path}: config.train.model")


def load_generator(ckpt_or_path: str | Path | dict[str, Any], ema: bool = True, map_location: str | torch.device = "cpu") -> Generator:
    """The trained generator of a stage-one checkpoint, FROZEN: ``eval()`` and ``requires_grad_(False)``.

    ``ema=True`` returns the EMA weights (``G_ema``), the decoder that stage two uses;
    ``ema=False`` returns the raw training weights ``G``. Accepts a path (file or run
    directory) or an already-loaded checkpoint dict.
    """
    from ..checkpoint import build_checked, load_checkpoint, load_state

    ckpt = ckpt_or_path if isinstance(ckpt_or_path, dict) else load_checkpoint(ckpt_or_path, kind="gan", map_location=map_location)
    path = ckpt.get("path", "checkpoint")
    if ckpt.get("kind") != "gan":
        raise GanlstmError(f"{path} is a {ckpt.get('kind')!r} checkpoint, not a stage-one GAN; pass a file written by `ganlstm train-gan`.")
    name = "G_ema" if ema else "G"
    if name not in ckpt.get("models", {}):
        raise GanlstmError(f"{path} holds no {name!r} weights; pass a checkpoint written by `ganlstm train-gan`.")
    cfg = gan_config_from_checkpoint(ckpt)
    G = build_checked(lambda: build_generator(cfg), ckpt["models"][name], name=name, path=path)
    load_state(G, ckpt["models"][name], name=name, path=path)
    return G.eval().requires_grad_(False)


# ---------------------------------------------------------------- latent helpers


def sample_latents(n: int, nz: int, seed: int, device: torch.device | str = "cpu") -> Tensor:
    """``n`` standard-normal latents (n, nz) from a private generator: the same seed gives the same z everywhere."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, nz, generator=g).to(device)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between latents a, b (nz,) at fractions t (T,) -> (T, nz).

    Falls back to linear interpolation when a and b are (nearly) parallel.
    """
    t = t.to(a.dtype).unsqueeze(1)  # (T, 1)
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def latent_walk(points: Tensor, steps: int) -> Tensor:
    """A closed slerp loop through ``points`` (K, nz): ``steps`` latents (steps, nz), ending next to the start.

    Closing the loop makes a GIF of the walk repeat without a jump.
    """
    k = points.shape[0]
    if k < 2 or steps < 2:
        raise GanlstmError(f"a latent walk needs at least 2 points and 2 steps (got {k} points, {steps} steps); raise --points / --steps.")
    pos = torch.arange(steps, dtype=torch.float64) * k / steps  # position along the loop, in segments
    seg = pos.floor().long()
    frac = pos - seg
    out = [slerp(points[i], points[(i + 1) % k], frac[seg == i]) for i in range(k)]
    return torch.cat(out).to(points.dtype)
