"""Stage two's encoder pieces: frames -> feature maps, feature maps -> a generator latent, and back.

The GAN-prior forecaster (Xu et al., "Satellite Image Prediction Relying on GAN and LSTM
Neural Networks", IEEE ICC 2019) reads each observed frame with a convolutional encoder,
carries the feature maps through time with a ConvLSTM, and maps the ConvLSTM's state to the
latent of the frozen DCGAN generator. Three small modules do the mapping:

* :class:`FrameEncoder`: frame (B, C, S, S) -> feature maps (B, F, 8, 8). Strided 4x4
  convolutions halve the resolution down to 8x8 whatever the frame size, so the ConvLSTM
  always runs on a small grid (the original project found stride-2 features much better for
  long rollouts than full-resolution ones).
* :class:`LatentHead`: feature maps -> latent (B, nz); used to read the latent of an observed
  frame and to predict the latent of the next frame.
* :class:`LatentLift`: latent (B, nz) -> feature maps (B, F, 8, 8), the inverse direction, used
  to feed a predicted latent back into the ConvLSTM without decoding it to pixels.

No normalisation layers: BatchNorm statistics would differ between teacher-forced training
batches and closed-loop rollouts, and the nets are small enough to train without it.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import GanlstmError
from . import fast_layout

FEATURE_SIZE = 8  # spatial size of the feature grid the ConvLSTM runs on


def num_downsamplings(image_size: int) -> int:
    """Stride-2 layers from ``image_size`` down to the 8x8 feature grid (16 -> 1, 32 -> 2, 64 -> 3)."""
    n = math.log2(image_size / FEATURE_SIZE) if image_size > 0 else -1
    if n < 1 or n != int(n):
        raise GanlstmError(f"image size {image_size} is not supported by the encoder; use a power of two >= 16 (e.g. --size 64).")
    return int(n)


class FrameEncoder(nn.Module):
    """frames (B, C, S, S) in [-1, 1] -> feature maps (B, features, 8, 8)."""

    def __init__(self, channels: int, image_size: int, features: int):
        super().__init__()
        n = num_downsamplings(image_size)
        width = max(features // 2, 8)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2, True)]  # (B, width, S, S)
        for i in range(n):
            w_out = features if i == n - 1 else min(2 * width, features)
            layers += [nn.Conv2d(width, w_out, 4, 2, 1), nn.LeakyReLU(0.2, True)]  # (B, w_out, H/2, W/2)
            width = w_out
        self.net = nn.Sequential(*layers)
        self.out_channels = features

    def forward(self, x: Tensor) -> Tensor:
        if not self.training and fast_layout.applies(x):  # CPU inference, large batch: the same layers in channels_last (models/fast_layout.py)
            return fast_layout.channels_last(self.net, x)
        return self.net(x)  # (B, C, S, S) -> (B, F, 8, 8)


class LatentHead(nn.Module):
    """feature maps (B, F, 8, 8) -> latent (B, nz)."""

    def __init__(self, features: int, nz: int):
        super().__init__()
        half = FEATURE_SIZE // 2
        self.net = nn.Sequential(
            nn.Conv2d(features, features, 4, 2, 1),  # (B, F, 4, 4)
            nn.LeakyReLU(0.2, True),
            nn.Flatten(),  # (B, F*16)
            nn.Linear(features * half * half, nz),  # (B, nz)
        )

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class LatentLift(nn.Module):
    """latent (B, nz) -> feature maps (B, F, 8, 8), shaped like :class:`FrameEncoder`'s output."""

    def __init__(self, nz: int, features: int):
        super().__init__()
        self.features = features
        self.linear = nn.Linear(nz, features * FEATURE_SIZE * FEATURE_SIZE)  # (B, F*64)
        self.conv = nn.Sequential(nn.LeakyReLU(0.2, True), nn.Conv2d(features, features, 3, 1, 1), nn.LeakyReLU(0.2, True))

    def forward(self, z: Tensor) -> Tensor:
        x = self.linear(z).view(z.shape[0], self.features, FEATURE_SIZE, FEATURE_SIZE)  # (B, F, 8, 8)
        return self.conv(x)  # (B, F, 8, 8)


class FrameReader(nn.Module):
    """frames (B, C, S, S) in [-1, 1] -> generator latents (B, nz): a :class:`FrameEncoder` then a :class:`LatentHead`.

    Stage one trains one beside G (``GanConfig.encoder`` = its width) so that G(E(x)) ~ x; its two
    parts have exactly the shapes of the GAN-LSTM's ``encoder`` and ``read``, which start from them.
    """

    def __init__(self, channels: int, image_size: int, features: int, nz: int):
        super().__init__()
        self.encoder = FrameEncoder(channels, image_size, features)  # (B, C, S, S) -> (B, F, 8, 8)
        self.read = LatentHead(features, nz)  # (B, F, 8, 8) -> (B, nz)

    def forward(self, x: Tensor) -> Tensor:
        return self.read(self.encoder(x))  # (B, nz)
