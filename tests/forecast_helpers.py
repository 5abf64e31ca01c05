"""Tiny stage-two fixtures shared by the forecaster, rollout, predict and notebook tests.

Everything is 16 px with a handful of channels so that a training step takes milliseconds.
The stage-one checkpoint is written directly in `train-gan`'s layout (a trained GAN is not
needed to test stage two); its generator gets non-trivial BatchNorm statistics so that a
test can tell whether they moved.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ganlstm.checkpoint import save_checkpoint
from ganlstm.config import FrameOptions, ForecasterConfig, ForecastTrainConfig, GanConfig, GanTrainConfig, RunConfig, to_dict
from ganlstm.models.dcgan import build_discriminator, build_generator

SIZE = 16
GAN = GanConfig(image_size=SIZE, channels=1, nz=8, ngf=8, ndf=8, latent_grid=1)


def generator(seed: int = 0):
    """A random 16 px generator whose BatchNorm running statistics are not the defaults."""
    torch.manual_seed(seed)
    G = build_generator(GAN)
    for m in G.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.num_batches_tracked.fill_(7)
    return G.eval().requires_grad_(False)


def gan_checkpoint(path: Path, seed: int = 0) -> Path:
    """A stage-one checkpoint in train-gan's layout, holding :func:`generator` as G and G_ema."""
    G = generator(seed)
    cfg = GanTrainConfig(model=GAN, data=FrameOptions(size=SIZE, channels=1))
    return save_checkpoint(path, kind="gan", config={"train": to_dict(cfg), "run": to_dict(RunConfig())},
                           models={"G": G, "G_ema": G, "D": build_discriminator(GAN)})


def model_config(feedback: str = "latent", hidden: tuple[int, ...] = (8, 8)) -> ForecasterConfig:
    return ForecasterConfig(model="gan_lstm", image_size=SIZE, channels=1, hidden=hidden, feedback=feedback, gan=GAN)


def simulated(root: Path, sequences: int = 5, frames: int = 14) -> Path:
    """Simulated mergers as PNG frame directories under ``root``."""
    from ganlstm.data.simulate import simulate_dataset

    return simulate_dataset(root, sequences=sequences, frames=frames, size=SIZE, seed=0, progress=False)


def train_config(data_path: Path, gan_path: Path | str, **kw) -> ForecastTrainConfig:
    defaults = dict(model=model_config(), data_path=str(data_path), gan_checkpoint=str(gan_path), context=3, horizon=2,
                    val_fraction=0.2, test_fraction=0.2, reader_warmup=0)  # no warm-up: tiny runs test the loop
    return ForecastTrainConfig(**{**defaults, **kw})


def run_config(out: Path, **kw) -> RunConfig:
    return RunConfig(**{**dict(out=str(out), max_steps=2, batch_size=2, progress=False, device="cpu"), **kw})


def trained_checkpoint(root: Path, **kw) -> Path:
    """A forecaster checkpoint after two training steps on simulated data (``kw`` go to the train config)."""
    from ganlstm.train.forecaster import train_forecaster

    data = simulated(root / "data")
    gan = gan_checkpoint(root / "gan.pt")
    run_dir = train_forecaster(train_config(data, gan, **kw), run_config(root / "runs"))
    return run_dir / "last.pt"


def assert_recorded(ckpt: Path, weights: dict, key: str, value) -> None:
    """``ckpt``'s model config records ``key`` = ``value``, and its tensors are still ``weights`` (its models before the change)."""
    saved = torch.load(ckpt, weights_only=True)
    assert saved["config"]["model"][key] == value and "path" not in saved
    assert all(torch.equal(v, saved["models"][m][k]) for m in weights for k, v in weights[m].items())  # weights untouched
