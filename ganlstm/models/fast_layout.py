"""Exact CPU rewrites of two small layers, used only for large batches at inference.

Profiling the 64 px GAN-LSTM rollout (issue 21, item 2; docs/benchmarks.md "Small layers") found
two layers off the fast CPU kernels:

* **The generator's output layer**, a stride-2 4x4 ``ConvTranspose2d(Cin, C, 4, 2, 1)`` to C = 1
  or 3 channels, runs at ~0.5 GFLOP/s. :func:`subpixel_conv_transpose` computes the same thing as
  a 3x3 convolution to 4C channels followed by ``pixel_shuffle(2)`` (Shi et al., "Real-Time
  Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural
  Network", CVPR 2016)::

      x (B, Cin, H, W) --conv3x3, weight (4C, Cin, 3, 3), padding 1--> (B, 4C, H, W)
                       --pixel_shuffle(2)--> (B, C, 2H, 2W)  ==  conv_transpose(x)

  Output pixel (2m + a, 2n + b) of the transposed convolution sums input pixels (m + dy, n + dx),
  dy, dx in {-1, 0, 1}, with tap (a + 1 - 2 dy, b + 1 - 2 dx) of its 4x4 kernel where that tap
  exists (2 of the 3 offsets per axis); the 3x3 weight holds those taps and zeros elsewhere. It is
  derived from the layer's own weight at run time (:func:`subpixel_weight`) and cached on the
  layer, keyed on the weight's storage and version counter, so a ``load_state_dict`` or any other
  in-place change rebuilds it; nothing new enters the ``state_dict``. Equal to the original within
  2e-6 (float32); 1.5x faster as a layer at batch 16 (1.65 against 2.5 ms at 64 px) and 64.
* **The frame encoder** (3x3 conv C -> 16 at full resolution, then stride-2 4x4 convs) takes
  oneDNN's slower NCHW kernels at large batches. :func:`channels_last` runs it on a channels_last
  copy of its input and returns a contiguous (NCHW) result, the layout the rest of the model
  expects. At 64 px, B = 16, the whole encoder took 4.8 ms against 10.7 ms (C = 1; 5.4 against 10.6
  for C = 3), its second convolution alone 2.6 against 5.8 ms; at B = 1 it was 13 % slower.

Used only where :func:`applies`: CPU tensors, batches of :data:`MIN_BATCH` or more, autograd off.
Training (autograd on, or an encoder in training mode) and CUDA always take the original layers. Rollout speed-up
(fast layout on vs off, ``predict``, 10 -> 30, random weights, 1 thread, median of 15-30 paired
rounds; the machine was loaded 3-4 on 2 cores, docs/benchmarks.md): 64 px, pixel feedback 1.14x at
B = 16, 1.10x at B = 8, 1.13x at B = 4; latent feedback 1.07x at 16 and 8. Below the threshold the
original layers run: forced on, B = 1 was 0.93x and 32 px latent feedback at B = 4 0.93x, hence 8.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Batches (the leading size of a layer's input) from which the rewrites are used on CPU (see the docstring).
MIN_BATCH = 8
ENABLED = True  # the switch benchmarks/speed.py flips to time both paths in one process


def applies(x: Tensor) -> bool:
    """Whether a call on ``x`` (B, ...) takes the fast layout: CPU, B >= MIN_BATCH, no autograd, and switched on."""
    return ENABLED and x.device.type == "cpu" and x.dim() == 4 and x.shape[0] >= MIN_BATCH and not torch.is_grad_enabled()


@contextmanager
def disabled() -> Iterator[None]:
    """Run the original layers whatever the batch (benchmarks time both paths in one process; FLOPs are counted so)."""
    global ENABLED
    was, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = was


def subpixel_weight(w: Tensor) -> Tensor:
    """A stride-2 4x4 transposed-convolution weight (Cin, C, 4, 4) -> the sub-pixel 3x3 weight (4C, Cin, 3, 3).

    Output channel ``c*4 + a*2 + b`` (pixel_shuffle's order) is phase (a, b) of channel c; its tap
    (dy + 1, dx + 1) is ``w[:, c, a + 1 - 2 dy, b + 1 - 2 dx]`` where that index lies in 0..3, else 0.
    """
    cin, c = w.shape[:2]
    out = w.new_zeros(c, 2, 2, cin, 3, 3)
    for a in range(2):
        for b in range(2):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ky, kx = a + 1 - 2 * dy, b + 1 - 2 * dx
                    if 0 <= ky < 4 and 0 <= kx < 4:
                        out[:, a, b, :, dy + 1, dx + 1] = w[:, :, ky, kx].t()  # (C, Cin)
    return out.reshape(4 * c, cin, 3, 3)


def _cached_weight(layer: nn.ConvTranspose2d) -> Tensor:
    """:func:`subpixel_weight` of ``layer.weight``, rebuilt when the weight's storage, version or dtype changes."""
    w = layer.weight
    key = (w.data_ptr(), w._version if not w.is_inference() else -1, w.dtype, tuple(w.shape))
    cache = layer.__dict__.get("_subpixel_cache")
    if cache is None or cache[1] != key:
        with torch.no_grad():
            fast = subpixel_weight(w.detach()).contiguous(memory_format=torch.channels_last)
        # The cache holds the weight's storage, so its address cannot be reused by another tensor while it lives;
        # a plain attribute: not a parameter, buffer or state_dict entry.
        cache = layer.__dict__["_subpixel_cache"] = (w.untyped_storage(), key, fast)
    return cache[2]


def subpixel_conv_transpose(x: Tensor, layer: nn.ConvTranspose2d) -> Tensor:
    """``layer(x)`` for a bias-free ``ConvTranspose2d(Cin, C, 4, 2, 1)``, as a 3x3 conv + pixel_shuffle: (B, Cin, H, W) -> (B, C, 2H, 2W)."""
    if (layer.kernel_size, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation) != \
            ((4, 4), (2, 2), (1, 1), (0, 0), 1, (1, 1)) or layer.bias is not None:
        return layer(x)  # not the layer this rewrite is for
    return F.pixel_shuffle(F.conv2d(x, _cached_weight(layer), padding=1), 2)


def channels_last(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` computed in channels_last, returned contiguous (NCHW): (B, C, H, W) -> module's output.

    The copy has channels_last strides even for C = 1, where ``x.contiguous(memory_format=channels_last)``
    returns ``x`` itself and PyTorch then reads the layout as NCHW (a size-1 dimension makes it ambiguous).
    """
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    return module(y.copy_(x)).contiguous()


__all__ = ["MIN_BATCH", "applies", "channels_last", "disabled", "subpixel_conv_transpose", "subpixel_weight"]
