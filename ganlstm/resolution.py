"""Honest resolution and colour: what a prediction did to the user's frames, said out loud.

A checkpoint reads frames at its own size and channels (``FrameOptions.size``/``channels``), so a
100 px RGB sequence given to a 32 px grayscale model is converted on the way in. This module
finds the input's native shape cheaply (only its first kept frame is decoded), lists the
conversions in plain sentences, builds the one :class:`ResolutionWarning` message, and resizes
predicted frames back to the input's H x W for ``output_size="native"``. Colour cannot be
invented: a grayscale model's frames stay grayscale at any output size.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from .config import FrameOptions
from .errors import GanlstmError

OUTPUT_SIZES = ("model", "native")
"""``model``: predicted frames at the checkpoint's size; ``native``: resized back to the input's H x W."""


class ResolutionWarning(UserWarning):
    """The frames were converted to the model's size or channels; ``ganlstm predict`` prints it on stderr."""


def native_shape(path: str | Path, opts: FrameOptions) -> tuple[int, int, int]:
    """(C, H, W) of the sequence's first kept frame as stored, decoding that frame only.

    C is 3 when the frame's R, G and B differ somewhere (colour) and 1 otherwise: a gray image
    stored as RGB (R == G == B) loses nothing in a grayscale model. Alpha is ignored.
    """
    from .data.decode_guard import decode_guard
    from .data.frames import open_sequence

    path = Path(path)
    frames = open_sequence(path, dataclasses.replace(opts, size=None))
    try:
        with decode_guard(path):
            item = next(iter(frames.items), None)
        if item is None:
            raise GanlstmError(f"{path} holds no frames; pass a sequence with at least one frame.")
        label, load = item
        with decode_guard(label):
            raw = np.asarray(load())  # (H, W) or (H, W, C)
    finally:
        frames.close()
    h, w = raw.shape[:2]
    colour = raw.ndim == 3 and raw.shape[2] >= 3 and not (
        np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 1], raw[..., 2]))
    return (3 if colour else 1), int(h), int(w)


def resize_frames(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """(..., C, h, w) float frames in [0, 1] -> (..., C, H, W): bilinear in float32, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:]).float()  # (N, C, h, w)
    shrink = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
    out = F.interpolate(flat, size=hw, mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0).reshape(*lead, x.shape[-3], *hw)


def _kind(channels: int) -> str:
    return "RGB" if channels == 3 else "grayscale"


def _side(h: int, w: int) -> str:
    """A frame's side in messages: 100 for a square frame, 60x100 (H x W) otherwise."""
    return str(h) if h == w else f"{h}x{w}"


@dataclasses.dataclass(frozen=True)
class InputReport:
    """How the input's frames compare with what the model reads."""

    input_shape: tuple[int, int, int]  # (C, H, W) of the frames as given; C = 3 only for colour
    model_shape: tuple[int, int, int]  # (C, S, S) the model reads and predicts

    @classmethod
    def of(cls, path: str | Path, opts: FrameOptions) -> InputReport:
        """Inspect ``path`` (one frame decoded) against the reading options ``opts`` of a checkpoint."""
        c, h, w = native_shape(path, opts)
        s = opts.size
        return cls((c, h, w), (opts.channels, s or h, s or w))

    @property
    def resized(self) -> bool:
        return self.input_shape[1:] != self.model_shape[1:]

    @property
    def colour_lost(self) -> bool:
        return self.input_shape[0] == 3 and self.model_shape[0] == 1

    def input_conversions(self) -> list[str]:
        """What reading did to the frames, one plain sentence each (empty when they match the model)."""
        (c, h, w), (mc, mh, mw) = self.input_shape, self.model_shape
        done = []
        if self.colour_lost:
            done.append("converted RGB to grayscale (ITU-R BT.601 luma)")
        elif c == 1 and mc == 3:
            done.append("replicated grayscale into 3 identical RGB channels")
        if self.resized:
            aspect = "" if h == w else " (H x W; the aspect ratio is not kept)"
            done.append(f"resized {_side(h, w)} -> {_side(mh, mw)} px{aspect}")
        return done

    def output_hw(self, output_size: str) -> tuple[int, int]:
        """(H, W) of the written frames: the model's, or the input's for ``native``."""
        return self.input_shape[1:] if output_size == "native" else self.model_shape[1:]

    def output_conversions(self, output_size: str) -> list[str]:
        """What writing does to the predicted frames, one plain sentence each."""
        done = []
        if output_size == "native" and self.resized:
            (_, h, w), (_, mh, mw) = self.input_shape, self.model_shape
            done.append(f"resized the predicted frames back {_side(mh, mw)} -> {_side(h, w)} px (bilinear, float32)")
        if output_size == "native" and self.colour_lost:
            done.append("kept the predicted frames grayscale: the model predicts no colour, so RGB cannot be restored")
        return done

    def message(self, output_size: str | None = None) -> str | None:
        """The one warning to show, or None when the frames match the model. ``None``: Predictor.read's hint."""
        steps = self.input_conversions()
        if not steps:
            return None
        (c, h, w), (mc, mh, mw) = self.input_shape, self.model_shape
        text = (f"frames are {c}x{h}x{w} ({_kind(c)}), the model reads {mc}x{mh}x{mw} ({_kind(mc)}): "
                f"{' and '.join(steps)}")
        native = _side(h, w)
        grayscale = " stay grayscale: colour cannot be recovered from a grayscale model" if self.colour_lost else ""
        if output_size == "native" and self.resized:
            text += f"; the predicted frames are resized back to {native} px (--output-size native)"
            text += f" but{grayscale}" if grayscale else ""
        elif output_size == "native" and grayscale:
            text += f"; the predicted frames{grayscale}"
        elif self.resized:
            how = ("pass --output-size native" if output_size == "model"
                   else "use predict_to_directory(output_size='native') or `ganlstm predict --output-size native`")
            text += f"; {how} to get frames back at {native} px"
        return text + "."

    def record(self, output_size: str) -> dict[str, Any]:
        """What ``prediction.json`` stores: shapes (C, H, W) and the conversions applied, in order."""
        oh, ow = self.output_hw(output_size)
        return {"input_shape": list(self.input_shape), "model_shape": list(self.model_shape),
                "output_shape": [self.model_shape[0], oh, ow], "output_size": output_size,
                "conversions": self.input_conversions() + self.output_conversions(output_size)}


__all__ = ["OUTPUT_SIZES", "InputReport", "ResolutionWarning", "native_shape", "resize_frames"]
