"""Differentiable augmentation (DiffAugment) for GANs trained on little data.

Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient GAN Training"
(NeurIPS 2020). The same random transformations are drawn for real and generated batches
alike and applied *inside* the training step, before the discriminator, so D never sees an
un-augmented image and cannot memorise the few thousand training frames, while G still
receives gradients through the (differentiable) transformations.

Three of the paper's operations, on images in [-1, 1] (B, C, H, W):

* ``translation``: shift by up to 1/8 of the image size in x and y;
* ``cutout``: blank a random square of half the image size;
* ``brightness``: add one uniform offset in [-0.5, 0.5) per image.

Merger frames are black sky around bright galaxies, so pixels shifted in and cut out are
filled with black (-1) rather than the paper's 0 (mid-grey): the augmented frames stay
plausible sky. All randomness comes from torch's global RNG on the images' device, which
the training loop seeds and checkpoints.
"""
from __future__ import annotations

import torch
from torch import Tensor
import torch.nn.functional as F

from ..errors import GanlstmError

BLACK = -1.0  # the sky, in the models' [-1, 1] range
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def brightness(x: Tensor) -> Tensor:
    """Add a per-image offset drawn from U[-0.5, 0.5)."""
    return x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def translation(x: Tensor, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shift each image by an integer offset in [-ratio*S, ratio*S] per axis, filling with black."""
    b, _, h, w = x.shape
    ph, pw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-ph, ph + 1, (b, 1), device=x.device)
    dx = torch.randint(-pw, pw + 1, (b, 1), device=x.device)
    padded = F.pad(x, (pw, pw, ph, ph), value=BLACK)  # (B, C, H+2ph, W+2pw)
    rows = torch.arange(h, device=x.device) + ph - dy  # (B, H): source row for each output row
    cols = torch.arange(w, device=x.device) + pw - dx  # (B, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded[batch, :, rows.view(b, h, 1), cols.view(b, 1, w)]  # advanced indexing -> (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W)


def cutout(x: Tensor, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Blank one square of side ratio*S per image (centre uniform over the image, clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(0, h, (b, 1, 1), device=x.device) - ch // 2  # top-left corner from a uniform centre
    x0 = torch.randint(0, w, (b, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)  # (B, H, W)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, BLACK), x)


OPS = {"translation": translation, "cutout": cutout, "brightness": brightness}
# The paper's order: colour first, then geometry, then cutout.
_ORDER = ("brightness", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout,brightness"`` -> the operations in application order; ``""`` -> none."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = sorted(set(names) - set(OPS))
    if unknown:
        raise GanlstmError(f"unknown DiffAugment operation(s) {', '.join(unknown)}; use a comma-separated subset of {', '.join(_ORDER)}, or '' for none.")
    return tuple(op for op in _ORDER if op in names)


class DiffAugment:
    """Callable applying a policy's operations to a batch (B, C, H, W) in [-1, 1]; identity for ``""``."""

    def __init__(self, policy: str):
        self.ops = parse_policy(policy)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: Tensor) -> Tensor:
        for op in self.ops:
            x = OPS[op](x)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.ops)!r})"
