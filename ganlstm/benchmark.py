"""``ganlstm benchmark``: simulate (or read) fixed collections, train every model for a fixed budget,
and evaluate them all, plus the trivial baselines, on the same windows (``docs/benchmarks.md``).

A :class:`BenchmarkSpec` fixes data, tasks, architectures and budgets; :func:`benchmark_spec`
gives the shipped ones and :func:`run_benchmark` runs one, scoring with :mod:`ganlstm.evaluation`
and writing with :mod:`ganlstm.results`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write_bytes
from .device import resolve_device
from .errors import GanlstmError
from .evaluation import Evaluation, evaluate_models, trivial_baselines
from .model_cost import format_costs, measure_costs
from .models.base import Forecaster
from .results import format_table, plot_examples, write_metrics


#: Every trainable registered forecaster, in table order (tests/test_model_cost.py checks none is missing).
LEARNED_MODELS = ("gan_lstm", "convlstm", "predrnn", "convgru", "trajgru", "e3dlstm", "mim", "simvp")
GAN_NAME = "gan"  # --checkpoint gan=PATH: a stage-one checkpoint to train gan_lstm on (not itself evaluated)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything that fixes a benchmark run: data, tasks, architectures and budgets (see docs/benchmarks.md).

    Every learned model is trained once, on (``train_context`` -> ``train_horizon``) windows,
    with the same batch size and number of forecasting steps, then evaluated on every task; the
    GAN-prior model additionally gets ``gan_steps`` of stage one and ``reader_warmup`` steps
    that train only its frame reader to invert the generator (single frames, no forecasting),
    the settings the shipped checkpoint measured as necessary (README, "Three things").
    """

    name: str
    data: str  # "merger" (built-in simulator) or "mnist" (mnist_test_seq.npy)
    size: int  # frame size in pixels
    frames: int  # frames per simulated sequence (Moving MNIST: 20)
    train_sequences: int  # simulated with train_seed (MNIST: the file's first sequences)
    test_sequences: int  # simulated with test_seed (MNIST: the file's last sequences)
    tasks: tuple[tuple[int, int], ...]  # (context j, horizon k) pairs evaluated
    hidden: tuple[int, ...]  # per-layer widths, the same for every learned model (simvp reads two as (hid_S, hid_T))
    forecaster_steps: int
    gan_steps: int
    batch_size: int = 8
    gan_batch_size: int = 32
    nz: int = 32
    gan_width: int = 32  # ngf = ndf
    latent_grid: int = 1  # 4: z enters G as a (nz/16, 4, 4) grid (train-gan --latent-grid)
    reader_warmup: int = 0  # gan_lstm: reader-only steps before its forecasting steps (train-encoder --reader-warmup)
    latent_cap: float = 0.0  # gan_lstm: RMS cap on predicted latents (train-encoder --latent-cap)
    train_context: int = 10
    train_horizon: int = 10
    train_seed: int = 1  # sequence i of a collection depends only on (seed, i)
    test_seed: int = 2
    seed: int = 0  # training seed: initial weights and data order
    #: Per-model widths instead of ``hidden``, e.g. ``(("simvp", (64, 512)),)``; the shipped specs use none.
    model_hidden: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def hidden_for(self, model: str) -> tuple[int, ...]:
        """The widths ``model`` is built with: its ``model_hidden`` entry, else ``hidden``."""
        return tuple(dict(self.model_hidden).get(model, self.hidden))


MERGER = BenchmarkSpec(name="merger", data="merger", size=32, frames=50, train_sequences=120, test_sequences=40,
                       tasks=((10, 10), (20, 30)), hidden=(16, 16), forecaster_steps=1000, gan_steps=2000,
                       nz=512, latent_grid=4, reader_warmup=3000, latent_cap=1.0)
MERGER_QUICK = BenchmarkSpec(name="merger-quick", data="merger", size=16, frames=50, train_sequences=12, test_sequences=4,
                             tasks=((10, 10), (20, 30)), hidden=(8, 8), forecaster_steps=4, gan_steps=6, batch_size=4,
                             gan_batch_size=16, nz=16, gan_width=8, latent_grid=4, reader_warmup=2, latent_cap=1.0)
MNIST = BenchmarkSpec(name="mnist", data="mnist", size=64, frames=20, train_sequences=8000, test_sequences=2000,
                      tasks=((10, 10),), hidden=(64, 64), forecaster_steps=2000, gan_steps=3000, batch_size=16, nz=64, gan_width=64)
MNIST_QUICK = BenchmarkSpec(name="mnist-quick", data="mnist", size=16, frames=20, train_sequences=16, test_sequences=4,
                            tasks=((10, 10),), hidden=(8, 8), forecaster_steps=4, gan_steps=6, batch_size=4,
                            gan_batch_size=16, nz=16, gan_width=8)


#: Frame sizes of the merger benchmark (``ganlstm benchmark --size``); 64 is the default, 32 the earlier spec.
MERGER_SIZES = (32, 64, 128)
MERGER_DEFAULT_SIZE = 64


def benchmark_spec(*, quick: bool = False, mnist: bool = False, size: int | None = None) -> BenchmarkSpec:
    """The shipped specs: the merger benchmark or Moving MNIST, full or ``quick`` (a smoke test).

    ``size`` picks the merger benchmark's frame size (:data:`MERGER_SIZES`; default
    :data:`MERGER_DEFAULT_SIZE`): the same simulated mergers, models, widths and budget at another
    resolution (the encoders and generators gain or lose one stride-2 layer per doubling). The
    quick and MNIST specs have their own sizes and refuse another.
    """
    spec = {(False, False): MERGER, (True, False): MERGER_QUICK, (False, True): MNIST, (True, True): MNIST_QUICK}[(quick, mnist)]
    if spec is not MERGER:
        if size is not None and size != spec.size:
            raise GanlstmError(f"--size {size}: the {spec.name} spec runs at {spec.size} px only; leave --size out.")
        return spec
    size = MERGER_DEFAULT_SIZE if size is None else size
    if size not in MERGER_SIZES:
        raise GanlstmError(f"--size {size} is not a merger benchmark size; use one of {', '.join(map(str, MERGER_SIZES))}.")
    return spec if size == spec.size else dataclasses.replace(spec, size=size, name=f"merger-{size}")


def prepare_benchmark_data(spec: BenchmarkSpec, root: Path, mnist_path: str | Path | None = None) -> tuple[Path, Path]:
    """Write the training and test collections under ``root``; returns (train_dir, test_dir)."""
    train_dir, test_dir = root / "train", root / "test"
    if spec.data == "merger":
        from .data.simulate import simulate_dataset

        simulate_dataset(train_dir, spec.train_sequences, spec.frames, spec.size, spec.train_seed, overwrite=True, progress=False)
        simulate_dataset(test_dir, spec.test_sequences, spec.frames, spec.size, spec.test_seed, overwrite=True, progress=False)
        return train_dir, test_dir
    from .data.mnist import load_moving_mnist, write_collection

    if mnist_path is None:
        raise GanlstmError("the Moving-MNIST benchmark needs the data file; pass --mnist PATH/mnist_test_seq.npy.")
    seqs = load_moving_mnist(mnist_path, size=spec.size)
    n, need = len(seqs), spec.train_sequences + spec.test_sequences
    if n < need:
        raise GanlstmError(f"{mnist_path} holds {n} sequences but the {spec.name} benchmark needs {need} "
                           f"({spec.train_sequences} train + {spec.test_sequences} test); pass the full mnist_test_seq.npy or --quick.")
    for d in (train_dir, test_dir):
        if d.exists():  # inside the benchmark's own output directory: stale sequences must not survive
            shutil.rmtree(d)
    write_collection(seqs[: spec.train_sequences], train_dir)
    write_collection(seqs[n - spec.test_sequences :], test_dir)
    return train_dir, test_dir


def _benchmark_frame_options(spec: BenchmarkSpec):
    from .config import FrameOptions

    # "fixed" keeps the pixel values as written (8-bit / 255): train and test read identically.
    return FrameOptions(size=spec.size, scaling="fixed")


def train_benchmark_models(spec: BenchmarkSpec, train_dir: Path, runs: Path, models: Sequence[str], given: Mapping[str, str],
                           *, device: str, progress: bool) -> tuple[dict[str, str], dict[str, float]]:
    """Train every model of ``models`` that ``given`` lacks; returns ({name: checkpoint path}, {stage: seconds})."""
    from .config import ForecasterConfig, ForecastTrainConfig, GanConfig, GanTrainConfig, RunConfig

    fo = _benchmark_frame_options(spec)
    paths, seconds = dict(given), {}

    def run_config(steps: int, batch: int) -> RunConfig:
        return RunConfig(out=str(runs), max_steps=steps, batch_size=batch, seed=spec.seed, device=device, progress=progress)

    if "gan_lstm" in models and "gan_lstm" not in paths and GAN_NAME not in paths:
        from .train.gan import train_gan

        t0 = time.perf_counter()
        # The plain DCGAN, with which the benchmark's recorded tables were measured (docs/benchmarks.md);
        # the small-data stage one (encoder, ADA) has not been run on it yet.
        gan = GanConfig(image_size=spec.size, channels=1, nz=spec.nz, ngf=spec.gan_width, ndf=spec.gan_width, latent_grid=spec.latent_grid,
                        encoder=0)
        cfg = GanTrainConfig(model=gan, data=fo, data_path=str(train_dir), recon_weight=0.0, ada_target=0.0)
        paths[GAN_NAME] = str(train_gan(cfg, run_config(spec.gan_steps, spec.gan_batch_size)))
        seconds[GAN_NAME] = round(time.perf_counter() - t0, 1)
    from .train.forecaster import train_forecaster

    for name in models:
        if name in paths:
            continue
        t0 = time.perf_counter()
        prior = name == "gan_lstm"
        cfg = ForecastTrainConfig(
            model=ForecasterConfig(model=name, image_size=spec.size, channels=1, hidden=spec.hidden_for(name),
                                   latent_cap=spec.latent_cap if prior else 0.0),
            data=fo, data_path=str(train_dir), gan_checkpoint=paths.get(GAN_NAME, ""),
            context=spec.train_context, horizon=spec.train_horizon, test_fraction=0.0,  # the test set is its own collection
            reader_warmup=spec.reader_warmup if prior else 0,
            alpha=0.5, gdl_weight=0.0, ema=0.0,  # the loss the recorded tables were measured with (docs/benchmarks.md)
        )
        warmup = cfg.reader_warmup  # on top of the forecasting steps every model gets
        paths[name] = str(train_forecaster(cfg, run_config(spec.forecaster_steps + warmup, spec.batch_size)))
        seconds[name] = round(time.perf_counter() - t0, 1)
    return paths, seconds


def _example_window(sequences: Sequence[np.ndarray], context: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluated window whose target changes most from the last observed frame: motion worth looking at."""
    from .data.windows import WindowDataset

    windows = WindowDataset(sequences, context, horizon, horizon)
    change = [float((windows[i][1] - windows[i][0][-1]).abs().mean()) for i in range(len(windows))]
    return windows[int(np.argmax(change))]


def machine_info(device: torch.device) -> dict:
    """Where a benchmark ran: enough to judge whether timings compare."""
    import os
    import platform

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_benchmark(
    spec: BenchmarkSpec,
    out: str | Path,
    *,
    mnist_path: str | Path | None = None,
    checkpoints: Mapping[str, str | Path] | None = None,
    models: Sequence[str] = LEARNED_MODELS,
    device: str = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Evaluation]:
    """Simulate (or read) the data, train or load every model, evaluate all of them plus the trivial
    baselines on every task, and write ``OUT/j{J}_k{K}/metrics.*``, ``OUT/tables.md`` and ``OUT/benchmark.json``.
    Every model's parameters, GFLOP per predicted frame and predicted frames/s
    (:mod:`ganlstm.model_cost`, measured once at ``train_context -> train_horizon``) go into
    all three (``cost``; in metrics.json under ``info``).

    ``checkpoints`` maps names to checkpoints used instead of training: ``gan`` (a stage-one
    checkpoint for gan_lstm), any of ``models``, or any other name (an extra forecaster to
    compare). ``threads`` sets torch's CPU threads for the run (restored afterwards): on a
    small or busy CPU one thread is several times faster for these small models. Returns
    {task name: Evaluation}.
    """
    from .device import configure_cpu, torch_threads

    out = Path(out)
    unknown = [m for m in models if m not in LEARNED_MODELS]
    if unknown:
        raise GanlstmError(f"unknown benchmark model {unknown[0]!r}; choose from {', '.join(LEARNED_MODELS)}.")
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"--out {out} is a file; pass a directory for the benchmark.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GanlstmError(f"{out} is not empty; pass --overwrite to redo the benchmark there (new runs are added, results replaced) or choose another --out.")
    dev = resolve_device(device)
    if dev.type == "cpu":
        configure_cpu()  # flush denormals: recurrent nets on CPU otherwise slow down ~3x
    with torch_threads(threads):
        return _run_benchmark(spec, out, mnist_path, checkpoints or {}, models, dev, progress)


def _run_benchmark(spec: BenchmarkSpec, out: Path, mnist_path: str | Path | None, checkpoints: Mapping[str, str | Path],
                   models: Sequence[str], dev: torch.device, progress: bool) -> dict[str, Evaluation]:
    """:func:`run_benchmark` after its checks: data, training, evaluation, files."""
    from .data.frames import read_collection
    from .train.forecaster import load_forecaster

    given = {k: str(v) for k, v in checkpoints.items()}
    t_start = time.perf_counter()
    train_dir, test_dir = prepare_benchmark_data(spec, out / "data", mnist_path)
    paths, train_seconds = train_benchmark_models(spec, train_dir, out / "runs", models, given, device=str(dev), progress=progress)

    forecasters: dict[str, Forecaster] = dict(trivial_baselines())
    for name, path in paths.items():
        if name == GAN_NAME:
            continue
        model, ckpt = load_forecaster(path, dev)
        if model.cfg.image_size != spec.size or model.cfg.channels != 1:
            raise GanlstmError(f"{ckpt['path']} was trained on {model.cfg.channels}x{model.cfg.image_size}px frames but the "
                               f"{spec.name} benchmark uses 1x{spec.size}px; pass a checkpoint trained on the benchmark data.")
        forecasters[name] = model
        paths[name] = ckpt["path"]
    test = [s for _, s in read_collection(test_dir, _benchmark_frame_options(spec))]

    # Size and speed of every model at the training windows' size, context and horizon, timed here in this run.
    j0, k0 = spec.train_context, spec.train_horizon
    costs = measure_costs(forecasters, size=spec.size, channels=1, context=j0, horizon=k0, batch=spec.batch_size)
    cost = {"context": j0, "horizon": k0, "models": {n: asdict(c) for n, c in costs.items()}}

    results, tables = {}, [f"# {spec.name} benchmark\n"]
    for j, k in spec.tasks:
        task = f"j{j}_k{k}"
        ev = evaluate_models(forecasters, test, j, k, device=dev, progress=progress)
        ev.info = {"benchmark": spec.name, "data": str(test_dir), "checkpoints": {n: p for n, p in paths.items() if n in forecasters},
                   "cost": cost}
        write_metrics(ev, out / task, overwrite=True, title=f"{spec.name}: j={j} observed -> k={k} predicted ({ev.windows} windows)")
        ctx, tgt = _example_window(test, j, k)
        plot_examples(forecasters, ctx, tgt, out / task / "examples.png", horizons=(1, k // 2, k))
        results[task] = ev
        tables.append("## " + format_table(ev, horizons=(1, k // 2, 10, 30), markdown=True) + "\n")
        tables.append(f"### j={j} -> k={k}: size and speed (at j={j0} -> k={k0}), MSE and SSIM\n\n"
                      + format_costs(costs, ev, horizons=(1, k // 2, k), markdown=True) + "\n")
    atomic_write_bytes(out / "tables.md", "\n".join(tables).encode())
    summary = {"spec": asdict(spec), "checkpoints": paths, "train_seconds": train_seconds,
               "total_seconds": round(time.perf_counter() - t_start, 1), "machine": machine_info(dev),
               "cost": cost,
               "results": {t: ev.to_dict() for t, ev in results.items()}}
    atomic_write_bytes(out / "benchmark.json", (json.dumps(summary, indent=2) + "\n").encode())
    return results
