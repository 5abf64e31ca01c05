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

:class:`AdaptiveAugment` is the adaptive alternative (ADA: Karras, Aittala, Hellsten, Laine,
Lehtinen & Aila, "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020):
each image gets each operation with probability p, and p is not a flag but follows D's
overfitting, measured by r_t = E[sign(D(real))]: above the target, p rises; below, it falls.
Its operations are the paper's non-leaking "bgc" kinds that suit sky images: x-flip, 90-degree
rotation, integer translation (black fill), brightness and contrast. Faithful: the heuristic,
the per-image Bernoulli(p) gating, the update every few steps with a fixed step size.
Simplified: no colour/luma flips, no fractional geometry, and p may move from 0 to 1 in
:data:`ADA_IMAGES` images (the paper used 500k, too slow for a CPU budget of ~50k images).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
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


ADA_IMAGES = 20_000  # real images over which p can move by 1 (StyleGAN2-ADA: 500k)
ADA_INTERVAL = 4  # D steps between updates of p


def _gated(x: Tensor, y: Tensor, p: Tensor) -> Tensor:
    """Per image (B, ...): y with probability p, else x."""
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
    return torch.where(keep, y, x)


class AdaptiveAugment(nn.Module):
    """ADA for frames (B, C, S, S) in [-1, 1]; ``p`` (a buffer, so checkpoints carry it) adapts to ``target``."""

    def __init__(self, target: float = 0.6):
        super().__init__()
        if not 0 < target < 1:
            raise GanlstmError(f"ada_target={target} must be in (0, 1) (StyleGAN2-ADA used 0.6), or 0 to turn ADA off.")
        self.target = target
        self.register_buffer("p", torch.zeros(()))
        self.register_buffer("signs", torch.zeros(2))  # running (sum of sign(D(real)), count) since the last update
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        p = self.p
        b, _, h, w = x.shape
        x = _gated(x, x.flip(3), p)  # x-flip
        if h == w:
            k = torch.randint(0, 4, (b,), device=x.device)  # quarter turns
            turned = torch.stack([torch.rot90(x, i, dims=(2, 3)) for i in range(4)])  # (4, B, C, H, W)
            x = _gated(x, turned[k, torch.arange(b, device=x.device)], p)
        x = _gated(x, translation(x), p)
        x = _gated(x, x + 0.2 * torch.randn(b, 1, 1, 1, device=x.device, dtype=x.dtype), p)  # brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        scale = torch.exp2(0.5 * torch.randn(b, 1, 1, 1, device=x.device, dtype=x.dtype))  # contrast, lognormal
        return _gated(x, (x - mean) * scale + mean, p)

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """Accumulate sign(D(real)) (B,); every :data:`ADA_INTERVAL` calls, move p towards the target."""
        self.signs += torch.stack([real_logits.sign().sum(), torch.tensor(float(real_logits.numel()), device=real_logits.device)])
        self.steps += 1
        if int(self.steps) % ADA_INTERVAL == 0:
            rt = self.signs[0] / self.signs[1].clamp_min(1)
            step = self.signs[1] / ADA_IMAGES
            self.p.copy_((self.p + torch.sign(rt - self.target) * step).clamp(0.0, 1.0))
            self.signs.zero_()

    def extra_repr(self) -> str:
        return f"target={self.target}, p={float(self.p):.3f}"
