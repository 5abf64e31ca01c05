"""``Predictor``: the notebook face of a trained forecaster (``ganlstm predict`` is :mod:`ganlstm.predict_files`).

::

    from ganlstm import Predictor
    p = Predictor.from_checkpoint("runs/003-gan_lstm/best.pt")   # or None: the shipped checkpoint
    future = p.predict(frames, steps=30)       # frames (T, H, W), (T, C, H, W), (B, T, C, H, W), PIL list or a path
    z = p.encode(frames)                       # GAN-prior model: one generator latent per frame
    walk = p.interpolate(z[0], z[-1], n=16)    # frames along the slerp between two latents

Frames are float32 in [0, 1] in and out. Paths and PIL images go through the same reader as
training (:mod:`ganlstm.data.frames`, with the checkpoint's size, channels and scaling); when
their native size or channels differ, one :class:`~ganlstm.resolution.ResolutionWarning` says
what was converted (never silently). Arrays and tensors must already be in [0, 1] at the model's frame size. Prediction warms the model
up on the last ``context`` frames (by default the context length it was trained with) and
rolls out closed-loop through the shared engine (:mod:`ganlstm.rollout`).
"""
from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import SHIPPED_DIR
from .config import FrameOptions
from .device import autocast
from .errors import GanlstmError
from .models.base import Forecaster
from .pixel_range import to_model_range, to_unit_range
from .resolution import InputReport, ResolutionWarning
from .train.forecaster import frame_options_of, load_forecaster, saved_configs

#: The shipped pretrained GAN-prior checkpoint (the repository's checkpoints/, or its installed copy).
DEFAULT_CHECKPOINT = SHIPPED_DIR / "gan_lstm.pt"

FramesLike = Any  # np.ndarray | torch.Tensor | list[PIL.Image.Image] | str | Path

#: ``predict_to_directory`` writes PNG frames as the engine streams them, this many at a time, so
#: memory stays flat in ``steps`` (k = 1000 peaks within 1.2x of k = 100; tests/test_fast_path.py).
STREAM_CHUNK = 100
#: The prediction GIF shows at most this many predicted frames, evenly spaced over a longer rollout.
GIF_MAX_FRAMES = 100


def default_checkpoint() -> Path:
    """The shipped checkpoint, or a GanlstmError saying how to get one."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise GanlstmError(
            f"no pretrained checkpoint at {DEFAULT_CHECKPOINT}; pass --checkpoint (checkpoint=...) with a file from "
            f"`ganlstm train-encoder`, or train one."
        )
    return DEFAULT_CHECKPOINT


class Predictor:
    """A trained forecaster with its reading options, ready to predict, encode, decode and interpolate."""

    def __init__(self, model: Forecaster, checkpoint: dict, amp: str = "no"):
        self.model = model.eval()
        self.checkpoint = checkpoint
        self.frame_options: FrameOptions = frame_options_of(checkpoint)
        self.context: int = saved_configs(checkpoint)[0].context  # frames the model was trained to warm up on
        self.amp = amp
        self.device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
        self.compile_note: str | None = None  # what ``from_checkpoint(..., compile=True)`` did (ganlstm.compiled)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto", amp: str = "no", *,
                        anchor_decay: float | None = None, motion_scale: float | None = None,
                        context_check: bool | None = None, compile: bool = False) -> Predictor:
        """Load a forecaster checkpoint (file or run directory); ``None`` loads the shipped one.

        ``anchor_decay`` replaces the checkpoint's residual anchoring (GAN-LSTM; 0 = the generator's frames as drawn),
        ``motion_scale`` its scale of the predicted latent change (GAN-LSTM; 1 = as predicted, 0 = the last frame's reading);
        ``context_check=True`` chooses both per sequence on its own context (:mod:`ganlstm.models.context_check`).
        ``compile=True`` compiles each rollout step, with CUDA graphs on a GPU; on CPU only for batches of 16 or
        more (batch 1 measured no faster; :mod:`ganlstm.compiled`). ``compile_note`` says what was done.
        """
        from .compiled import compile_for_prediction

        model, ckpt = load_forecaster(path if path is not None else default_checkpoint(), device, anchor_decay=anchor_decay,
                                      motion_scale=motion_scale, context_check=context_check)
        predictor = cls(model, ckpt, amp=amp)
        if compile:
            predictor.model, predictor.compile_note = compile_for_prediction(predictor.model, predictor.device)
        return predictor

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    @property
    def channels(self) -> int:
        return self.model.cfg.channels

    def __repr__(self) -> str:
        return (f"Predictor({self.model.cfg.model}, {self.channels}x{self.image_size}px, context={self.context}, "
                f"device={self.device}, checkpoint={self.checkpoint.get('path')!r})")

    # ------------------------------------------------------------ frames in

    def read(self, path: str | Path) -> np.ndarray:
        """Read a sequence from disk the way the model was trained: float32 (T, C, H, W) in [0, 1].

        Warns (:class:`~ganlstm.resolution.ResolutionWarning`) when the frames' native size or
        channels differ from the model's, naming each conversion.
        """
        x, report = self._read_reported(path)
        message = report.message()
        if message:
            warnings.warn(message, ResolutionWarning, stacklevel=2)
        return x

    def _read_reported(self, path: str | Path) -> tuple[np.ndarray, InputReport]:
        """The sequence as the model reads it (T, C, S, S), and how its native shape compares, without warning."""
        from .data.frame_files import ResizeWarning
        from .data.frames import read_sequence

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResizeWarning)  # the report says what resizing did, in the model's terms
            x = read_sequence(path, self.frame_options)  # first, so unreadable input fails with the reader's message
        return x, InputReport.of(path, self.frame_options)

    def _as_batch(self, frames: FramesLike) -> tuple[Tensor, str]:
        """Any accepted input -> (B, T, C, H, W) float32 on the model's device, and its layout tag."""
        if isinstance(frames, (str, Path)):
            x, layout = torch.from_numpy(self.read(frames)), "tchw"
        elif isinstance(frames, Sequence) and frames and all(_is_pil(f) for f in frames):
            x, layout = torch.from_numpy(self._read_pil(frames)), "tchw"
        elif isinstance(frames, (np.ndarray, Tensor)):
            x = torch.as_tensor(np.asarray(frames) if isinstance(frames, np.ndarray) else frames.detach()).float()
            layout = {3: "thw", 4: "tchw", 5: "btchw"}.get(x.dim())
            if layout is None:
                raise GanlstmError(f"frames of shape {tuple(x.shape)} are not a sequence; pass (T, H, W), (T, C, H, W) or (B, T, C, H, W).")
            x = x.unsqueeze(1) if layout == "thw" else x
            self._check_array(x)
        else:
            raise GanlstmError(f"cannot read frames from a {type(frames).__name__}; pass an array/tensor, a list of PIL images, or a path.")
        x = x.unsqueeze(0) if x.dim() == 4 else x  # (B, T, C, H, W)
        if x.shape[1] < 1:
            raise GanlstmError("the sequence holds no frames; pass at least one observed frame.")
        return x.to(self.device), layout

    def _check_array(self, x: Tensor) -> None:
        c, h, w = x.shape[-3:]
        if (c, h, w) != (self.channels, self.image_size, self.image_size):
            raise GanlstmError(
                f"frames are {c}x{h}x{w} (C x H x W) but the model reads {self.channels}x{self.image_size}x{self.image_size}; "
                f"resize them first, or pass a path or PIL images, which are read and resized for you."
            )
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise GanlstmError("array frames must be finite and in [0, 1]; scale them first, or pass a path, which is scaled for you.")

    def _read_pil(self, images: Sequence[Any]) -> np.ndarray:
        """PIL images through the same reader as files (resize, channels, scaling): via a temporary .npy."""
        arrays = [np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16", "I", "F", "RGB") else im) for im in images]
        if len({a.shape for a in arrays}) != 1:
            raise GanlstmError("the PIL images differ in size or mode; give every frame the same size and mode.")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "frames.npy"
            np.save(path, np.stack(arrays))  # (T, H, W) or (T, H, W, C)
            return self.read(path)

    @staticmethod
    def _restore(pred: Tensor, layout: str) -> np.ndarray:
        """(B, K, C, H, W) -> the caller's layout, as float32 numpy."""
        out = pred.float().cpu()
        if layout != "btchw":
            out = out[0]
        if layout == "thw":
            out = out[:, 0]
        return out.numpy()

    # ------------------------------------------------------------ public API

    def predict(self, frames: FramesLike, steps: int, *, context: int | None = None, samples: int | None = None,
                spread: float | None = None, seed: int = 0) -> np.ndarray:
        """Predict ``steps`` frames after ``frames``; float32 in [0, 1] shaped like the input with T -> ``steps``.

        (T, H, W) -> (K, H, W); (T, C, H, W), a path or a PIL list -> (K, C, H, W); (B, T, C, H, W) -> (B, K, C, H, W).
        The model warms up on the last ``context`` frames (default: its training context length).

        ``samples=N`` draws N plausible futures instead (GAN-LSTM; :mod:`ganlstm.ensemble`), with a
        leading members axis: (N, K, C, H, W) and so on; ``pred.mean(0)`` is the ensemble forecast and
        ``pred.std(0)`` its spread. ``spread`` is the latent nudge (default: the checkpoint's, which ``fit``
        calibrates, else :data:`ganlstm.ensemble.DEFAULT_SPREAD`), ``seed`` makes the draw repeatable; one sample is the forecast.
        """
        from .ensemble import sample_futures
        from .rollout import predict

        if steps < 1:
            raise GanlstmError(f"steps={steps} is invalid; predict at least one frame.")
        x, layout = self._as_batch(frames)
        j = self.context if context is None else context
        if j < 1:
            raise GanlstmError(f"context={j} is invalid; warm the model up on at least one frame.")
        if context is None and x.shape[1] < j:
            warnings.warn(self.short_context(x.shape[1]), ResolutionWarning, stacklevel=2)
        if samples is not None:
            members = sample_futures(self.model, x[:, -j:], steps, samples, seed=seed, amp=self.amp,
                                     spread=spread)  # (N, B, K, C, H, W)
            return np.stack([self._restore(m, layout) for m in members])
        pred = predict(self.model, x[:, -j:], steps, amp=self.amp)  # (B, K, C, H, W) on CPU
        return self._restore(pred, layout)

    def short_context(self, observed: int) -> str:
        """What a warm-up on fewer observed frames than the model was trained with means, in one sentence."""
        return (f"the sequence has {observed} observed frame(s) (after --interval) but the model was trained to warm up on "
                f"{self.context}: it warms up on {observed}, so it sees less of the motion than in training and the "
                f"prediction may be poor; give at least {self.context} frames for the prediction the model was measured on.")

    def _gan(self):
        if not hasattr(self.model, "generator"):
            raise GanlstmError(f"encode/decode/interpolate need a GAN-prior checkpoint (gan_lstm), but this one holds {self.model.cfg.model!r}.")
        return self.model

    def encode(self, frames: FramesLike, *, refine_steps: int = 0) -> np.ndarray:
        """The encoder's latent of every frame (G(z) ~ frame): (T, nz) for a sequence, (B, T, nz) for a batch.

        ``refine_steps`` > 0 improves each latent by that many inversion steps through G
        (:func:`ganlstm.projection.refine`); on the merger test frames 50 steps cut the
        reconstruction MSE from 3.42 to 0.80 per frame (docs/benchmarks.md).
        """
        from .projection import refine

        if refine_steps < 0:
            raise GanlstmError(f"refine_steps={refine_steps} is invalid; pass 0 (the encoder alone) or more.")
        model = self._gan()
        x, layout = self._as_batch(frames)
        flat = x.flatten(0, 1).to(self.device)  # (B*T, C, H, W) in [0, 1]
        with torch.inference_mode(), autocast(self.device, self.amp):
            z = model.encode(to_model_range(flat))  # (B*T, nz)
        z = refine(model.generator, flat, z.float(), refine_steps)
        z = z.float().cpu().unflatten(0, x.shape[:2])  # (B, T, nz)
        return (z if layout == "btchw" else z[0]).numpy()

    def decode(self, latents: np.ndarray | Tensor) -> np.ndarray:
        """Frames in [0, 1] drawn by the frozen generator: (..., nz) -> (..., C, H, W)."""
        model = self._gan()
        z = torch.as_tensor(np.asarray(latents) if isinstance(latents, np.ndarray) else latents.detach()).float()
        if z.shape[-1] != model.nz:
            raise GanlstmError(f"latents end in {z.shape[-1]} values but the generator takes {model.nz}; pass (..., {model.nz}).")
        lead = z.shape[:-1]
        with torch.inference_mode(), autocast(self.device, self.amp):
            frames = model.render(z.reshape(-1, model.nz).to(self.device))  # (N, C, H, W) in [-1, 1]
        return to_unit_range(frames.float()).cpu().reshape(*lead, *frames.shape[1:]).numpy()

    def phases(self, sequences: Sequence[np.ndarray], k: int = 4, seed: int = 0) -> tuple[list[np.ndarray], tuple[str, ...]]:
        """Merger-phase labels of (T, C, H, W) sequences in [0, 1] from their latents: per sequence (T,) ints, and the names.

        :mod:`ganlstm.phases`: k-means of every frame's latent, clusters named by their mean time along the sequences.
        """
        from .phases import phases

        return phases(self, sequences, k=k, seed=seed)

    def morphology(self, frames: FramesLike) -> dict[str, np.ndarray]:
        """Gini, M20, concentration, asymmetry, the Gini-M20 merger class and the nuclei separation (px) of every frame.

        ``frames`` as :meth:`predict` takes them (a prediction, too); each value is (T,) (:mod:`ganlstm.morphology`,
        :mod:`ganlstm.nuclei`). Compare a prediction's with the truth's, or use :class:`ganlstm.astro_scores.AstroAccumulator`.
        """
        from .morphology import morphology
        from .nuclei import separation_curve

        x, _ = self._as_batch(frames)
        flat = x.flatten(0, 1).cpu().numpy()  # (B*T, C, H, W) in [0, 1]
        return {**morphology(flat), "separation": separation_curve(flat)}

    def read_snapshots(self, path: str | Path, *, projection: str = "xy", quantity: str = "stars") -> np.ndarray:
        """Simulation snapshots (a directory pynbody reads) rendered and read as this model reads frames: (T, C, H, W).

        The same path as ``ganlstm render --snapshots DIR --format npy`` followed by :meth:`read`: a surface-density
        cube at the model's size, then the model's own scaling.
        """
        import tempfile

        from .data.snapshots import render_snapshots

        with tempfile.TemporaryDirectory() as tmp:
            render_snapshots(path, Path(tmp) / "frames", size=self.image_size, projection=projection, quantity=quantity,
                             fmt="npy", progress=False)
            return self.read(next((Path(tmp) / "frames").glob("*.npy")))

    def interpolate(self, z0: np.ndarray | Tensor, z1: np.ndarray | Tensor, n: int) -> np.ndarray:
        """``n`` frames (n, C, H, W) along the spherical interpolation from latent ``z0`` to ``z1`` (nz,), both ends included."""
        from .models.dcgan import slerp

        if n < 2:
            raise GanlstmError(f"n={n} is invalid; interpolate needs at least 2 frames (the two ends).")
        a, b = (torch.as_tensor(np.asarray(z) if isinstance(z, np.ndarray) else z.detach()).float().reshape(-1) for z in (z0, z1))
        return self.decode(slerp(a, b, torch.linspace(0.0, 1.0, n)))


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(x, Image.Image)


__all__ = ["Predictor", "default_checkpoint", "DEFAULT_CHECKPOINT", "STREAM_CHUNK", "GIF_MAX_FRAMES"]
