"""Tiny real runs, pickle bombs and an in-process CLI runner shared by the reliability tests.

The runs are produced by the real trainers (not hand-written checkpoints), so the files under
test are exactly what users pass around: 16 px frames, a 4-channel-wide DCGAN, an 8-channel
ConvLSTM, a couple of steps, no validation (so no projection metric to wait for).
"""
from __future__ import annotations

import builtins
import contextlib
import pickle
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ganlstm.cli import main
from ganlstm.config import ForecasterConfig, ForecastTrainConfig, FrameOptions, GanConfig, GanTrainConfig, RunConfig

SIZE = 16
GAN = GanConfig(image_size=SIZE, channels=1, nz=8, ngf=4, ndf=4, latent_grid=1)
CONTEXT, HORIZON = 3, 2


def simulated(root: Path, sequences: int = 5, frames: int = 8) -> Path:
    """Simulated mergers as PNG frame directories: ``root/seq_0000/frame_0000.png`` ..."""
    from ganlstm.data.simulate import simulate_dataset

    return simulate_dataset(root, sequences=sequences, frames=frames, size=SIZE, seed=0, progress=False)


def run_config(out: Path, steps: int = 2, **kw) -> RunConfig:
    return RunConfig(**{**dict(out=str(out), max_steps=steps, batch_size=4, device="cpu", progress=False, log_every=1), **kw})


def gan_config(data: Path, **kw) -> GanTrainConfig:
    defaults = dict(model=GAN, data=FrameOptions(size=SIZE), data_path=str(data), val_fraction=0.0, test_fraction=0.0)
    return GanTrainConfig(**{**defaults, **kw})


def encoder_config(data: Path, gan: Path, **kw) -> ForecastTrainConfig:
    defaults = dict(model=ForecasterConfig(model="gan_lstm", hidden=(8,)), data_path=str(data), gan_checkpoint=str(gan),
                    context=CONTEXT, horizon=HORIZON, val_fraction=0.0, test_fraction=0.0)
    return ForecastTrainConfig(**{**defaults, **kw})


def train_gan_run(data: Path, out: Path, steps: int = 2, **run_kw) -> Path:
    """A real stage-one run directory (``last.pt`` after ``steps`` steps)."""
    from ganlstm.train.gan import train_gan

    return train_gan(gan_config(data), run_config(out, steps, **run_kw))


def train_encoder_run(data: Path, gan: Path, out: Path, steps: int = 2, **run_kw) -> Path:
    """A real stage-two (gan_lstm) run directory trained on top of the generator in ``gan``."""
    from ganlstm.train.forecaster import train_forecaster

    return train_forecaster(encoder_config(data, gan), run_config(out, steps, **run_kw))


def tiny_runs(root: Path) -> dict[str, Path]:
    """Simulated data, a real stage-one run (2 steps) and a real stage-two run on top of it (1 step)."""
    data = simulated(root / "data")
    gan = train_gan_run(data, root / "runs", steps=2)
    enc = train_encoder_run(data, gan / "last.pt", root / "runs", steps=1)
    return {"data": data, "gan": gan / "last.pt", "encoder": enc / "last.pt"}


@pytest.fixture(scope="module")
def one_thread():
    """Train on one thread: on a shared 2-core CI box, torch's spinning worker threads make tiny steps seconds long."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``ganlstm ARGS`` in this process; returns (exit status, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- pickle bombs


class Bomb:
    """Unpickling this object calls ``open(marker, "w")``: a file appears iff code from the checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


BOMB_FORMATS = ("torch-zip", "torch-legacy", "raw-pickle")


def write_bomb(real_checkpoint: Path, path: Path, marker: Path, fmt: str = "torch-zip") -> Path:
    """A copy of a real checkpoint with a :class:`Bomb` tucked into ``extra``, saved in ``fmt``.

    Everything else is genuine, so the only reason to refuse the file is the bomb.
    """
    payload = torch.load(real_checkpoint, weights_only=True)
    payload["extra"] = {**payload.get("extra", {}), "note": Bomb(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        if fmt == "raw-pickle":
            pickle.dump(payload, f)
        else:
            torch.save(payload, f, pickle_module=pickle, _use_new_zipfile_serialization=(fmt == "torch-zip"))
    return path


# ---------------------------------------------------------------- decompression bombs


def npz_bomb(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose one member is ``shape`` uint8 zeros, deflated (about 1000:1), written without holding them in memory."""
    import io
    import zipfile

    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    zeros = bytes(2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("frames.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            left = int(np.prod(shape))
            while left:
                f.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
    return path


def fits_gz_bomb(path: Path, shape_fits_order: tuple[int, ...]) -> Path:
    """A .fits.gz of uint8 zeros (BITPIX 8) of that shape (NAXIS1 fastest)."""
    import gzip
    import math

    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", f"NAXIS   = {len(shape_fits_order):>20}"]
    cards += [f"NAXIS{i + 1:<3}= {n:>20}" for i, n in enumerate(shape_fits_order)] + ["END"]
    block = "".join(c.ljust(80) for c in cards).ljust(2880).encode()
    size = math.prod(shape_fits_order)
    with gzip.open(path, "wb", compresslevel=6) as g:
        g.write(block)
        for start in range(0, size, 2**20):
            g.write(bytes(min(2**20, size - start)))
        g.write(bytes(-size % 2880))
    return path


# ---------------------------------------------------------------- time bounds


class CaseTimeout(BaseException):
    """A case ran past its time bound; a BaseException, so no error guard in ganlstm (``except Exception``) can swallow it."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the block after ``seconds`` (SIGALRM), keeping pytest-timeout's own alarm."""
    def expire(signum, frame):
        raise CaseTimeout(f"ran past its time bound of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    remaining, interval = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout's alarm, if armed
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, remaining) if remaining else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, max(remaining - (time.monotonic() - t0), 1e-3), interval)
