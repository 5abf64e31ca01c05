"""ganlstm: two-stage GAN-prior image-sequence prediction.

Stage one trains a DCGAN on single frames and freezes its generator as a decoder.
Stage two trains an encoder + ConvLSTM that maps observed frames into the
generator's latent space; the frozen generator renders the predicted frames
(Xu et al., "Satellite Image Prediction Relying on GAN and LSTM Neural Networks",
IEEE ICC 2019).
"""
from __future__ import annotations

from .errors import GanlstmError
from .version import __version__

__all__ = ["GanlstmError", "Predictor", "load_checkpoint", "__version__"]


def __getattr__(name: str):
    # Lazy: `import ganlstm` stays cheap (no torch import) for the CLI's --help.
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    if name == "load_checkpoint":
        from .checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'ganlstm' has no attribute {name!r}")
