"""Honest comparison: every model on the same windows, through the same rollout engine, scored by
the same metrics; then tables and plots. The library behind ``ganlstm evaluate`` and ``ganlstm benchmark``.

* :func:`evaluate_models` cuts (context, target) windows from held-out sequences, lets every
  forecaster (the trivial baselines included) predict each target from its context through
  :func:`ganlstm.rollout.predict`, and accumulates the per-horizon metrics of
  :mod:`ganlstm.metrics` (OpenSTL conventions).
* :func:`write_metrics` writes ``metrics.csv`` (long format: model, horizon, metric, value),
  ``metrics.json`` (the same plus means and run facts) and ``metrics.png`` (one panel per
  metric against horizon, one line per model); :func:`format_table` gives the compact table.
* :func:`evaluate_checkpoints` (``ganlstm evaluate``) loads trained forecasters and picks the
  test sequences their checkpoints recorded; :func:`run_benchmark` (``ganlstm benchmark``)
  simulates fixed collections, trains every model for a fixed budget and evaluates them all
  (``docs/benchmarks.md``).

Windows start every ``stride`` frames. The default ``stride = horizon`` makes the targets of
consecutive windows adjacent, never overlapping: every frame is a target at most once.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .checkpoint import atomic_write_bytes
from .errors import GanlstmError
from .metrics import HIGHER_IS_BETTER, METRICS, MetricAccumulator
from .models.base import Forecaster
from .rollout import predict
from .train.common import resolve_device

TRIVIAL_BASELINES = ("persistence", "linear")
OUTPUT_FILES = ("metrics.csv", "metrics.json", "metrics.png")
#: How each metric is labelled in tables and plots (arrow: which way is better).
METRIC_LABELS = {
    "mse": "MSE ↓ (sum/frame)",
    "mae": "MAE ↓ (sum/frame)",
    "mse_pixel": "MSE ↓ (per pixel)",
    "psnr": "PSNR ↑ (dB)",
    "ssim": "SSIM ↑",
    "sharpness": "sharpness (→1)",
}

LOG_SCALE = ("mse", "mae", "mse_pixel", "sharpness")  # plotted on log axes: errors and ratios span decades


@dataclass
class Evaluation:
    """Per-horizon metrics of several models on one set of windows.

    ``per_horizon[model][metric]`` holds K values (horizon 1..K); ``mean[model][metric]`` their
    mean over horizons (sharpness: the ratio of summed gradients). ``seconds[model]`` is the
    wall time of the model's predictions.
    """

    context: int
    horizon: int
    windows: int
    sequences: int
    per_horizon: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    mean: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # free-form facts for metrics.json (data, checkpoints, device)

    @property
    def models(self) -> list[str]:
        return list(self.per_horizon)

    def to_dict(self) -> dict:
        return asdict(self)


def trivial_baselines() -> dict[str, Forecaster]:
    """Fresh ``persistence`` and ``linear`` forecasters (weightless; they work at any frame size)."""
    from .config import ForecasterConfig
    from .models.base import build_forecaster

    return {name: build_forecaster(ForecasterConfig(model=name)) for name in TRIVIAL_BASELINES}


def evaluate_models(
    models: Mapping[str, Forecaster],
    sequences: Sequence[np.ndarray | torch.Tensor],
    context: int,
    horizon: int,
    *,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    amp: str = "no",
    stride: int | None = None,
    progress: bool = False,
) -> Evaluation:
    """Score every model on the same (context, target) windows of ``sequences`` ((T, C, H, W) in [0, 1]).

    Each model predicts ``horizon`` frames closed-loop from ``context`` observed frames via
    :func:`ganlstm.rollout.predict`; weightless baselines run on the CPU. Returns an
    :class:`Evaluation` whose models appear in the order given.
    """
    from tqdm.auto import tqdm

    from .data.windows import WindowDataset

    if not models:
        raise GanlstmError("no models to evaluate; pass at least one forecaster.")
    if batch_size < 1:
        raise GanlstmError(f"batch_size={batch_size} is invalid; pass a positive --batch-size.")
    dev = resolve_device(device) if isinstance(device, str) else device
    windows = WindowDataset(sequences, context, horizon, stride or horizon)
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    for model in models.values():
        model.to(dev).eval()
    acc = {name: MetricAccumulator() for name in models}
    seconds = dict.fromkeys(models, 0.0)
    for ctx, target in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        for name, model in models.items():
            t0 = time.perf_counter()
            pred = predict(model, ctx, horizon, amp=amp)  # (B, K, C, H, W) in [0, 1], on the CPU
            seconds[name] += time.perf_counter() - t0
            acc[name].update(pred, target)
    result = Evaluation(context=context, horizon=horizon, windows=len(windows), sequences=len(windows.sequences) - len(windows.skipped))
    for name, a in acc.items():
        result.per_horizon[name] = {m: [float(v) for v in values] for m, values in a.per_horizon().items()}
        result.mean[name] = a.summary()
        result.seconds[name] = round(seconds[name], 3)
    return result


def persistence_warnings(result: Evaluation, metrics: Sequence[str] = ("mse", "ssim")) -> list[str]:
    """One plain sentence per learned model that loses to copy-last-frame somewhere, naming the horizons.

    A forecaster that cannot beat repeating the last observed frame is not forecasting there;
    ``evaluate`` and ``fit`` print these so that nobody ships such a model unawares.
    """
    if "persistence" not in result.per_horizon:
        return []
    base = result.per_horizon["persistence"]
    out = []
    for name in result.models:
        if name in TRIVIAL_BASELINES:
            continue
        parts = []
        for m in metrics:
            higher = HIGHER_IS_BETTER.get(m)
            ours, ref = result.per_horizon[name].get(m), base.get(m)
            if higher is None or ours is None or ref is None:
                continue
            lost = [k + 1 for k, (a, b) in enumerate(zip(ours, ref)) if (a < b if higher else a > b)]
            if lost:
                parts.append(f"{m.upper()} at {_horizon_ranges(lost)} of {len(ours)}")
        if parts:
            out.append(f"warning: {name} loses to copy-last-frame (persistence) in {' and in '.join(parts)} on these "
                       f"held-out windows; there, repeating the last observed frame is the better forecast.")
    return out


def _horizon_ranges(ks: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> 'horizons 1-3, 7'."""
    runs, start = [], ks[0]
    for a, b in zip(ks, [*ks[1:], None]):
        if b != a + 1:
            runs.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ("horizon " if len(ks) == 1 else "horizons ") + ", ".join(runs)


# ---------------------------------------------------------------- tables


def table_horizons(horizon: int, wanted: Sequence[int] | None = None) -> list[int]:
    """The horizons a compact table shows: ``wanted`` within 1..K, by default 1, K/2 and K."""
    wanted = wanted or (1, horizon // 2, horizon)
    return sorted({h for h in wanted if 1 <= h <= horizon})


def best_models(metric: str, values: Mapping[str, float]) -> set[str]:
    """The model(s) with the best value: lowest/highest, or closest to 1 for sharpness."""
    rule = HIGHER_IS_BETTER[metric]
    score = {m: (-v if rule else v) if rule is not None else abs(v - 1.0) for m, v in values.items()}
    top = min(score.values())
    return {m for m, s in score.items() if np.isclose(s, top, rtol=1e-9, atol=0)}


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def format_table(result: Evaluation, *, horizons: Sequence[int] | None = None, metrics: Sequence[str] = METRICS,
                 markdown: bool = False) -> str:
    """Rows metric x model, columns the chosen horizons and the mean; ``*`` marks the best in each column."""
    hs = table_horizons(result.horizon, horizons)
    head = ["metric", "model", *[f"k={h}" for h in hs], "mean"]
    rows = []
    for metric in metrics:
        columns = [{m: result.per_horizon[m][metric][h - 1] for m in result.models} for h in hs]
        columns.append({m: result.mean[m][metric] for m in result.models})
        best = [best_models(metric, col) for col in columns]
        for i, model in enumerate(result.models):
            cells = [_fmt(col[model]) + ("*" if model in b and len(result.models) > 1 else "") for col, b in zip(columns, best)]
            rows.append([METRIC_LABELS[metric] if i == 0 or markdown else "", model, *cells])
    caption = (f"j={result.context} -> k={result.horizon}: {result.windows} windows from {result.sequences} sequences"
               f"{'; * = best in column' if len(result.models) > 1 else ''}")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return caption + "\n\n" + "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = [f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths)]
    lines = ["  ".join(f.format(c) for f, c in zip(fmt, r)).rstrip() for r in [head, *rows]]
    return caption + "\n" + "\n".join(lines)


# ---------------------------------------------------------------- files


def metrics_rows(result: Evaluation) -> list[dict]:
    """Long-format rows ``{model, horizon, metric, value}`` (the schema of metrics.csv)."""
    return [
        {"model": model, "horizon": k, "metric": metric, "value": v}
        for model in result.models
        for metric in METRICS
        for k, v in enumerate(result.per_horizon[model][metric], start=1)
    ]


def plot_metrics(result: Evaluation, path: str | Path, *, title: str = "") -> Path:
    """One panel per metric against horizon, one line per model (trivial baselines dashed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    ks = np.arange(1, result.horizon + 1)
    ncol = 3
    nrow = -(-len(METRICS) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), dpi=110, squeeze=False)
    try:
        for ax, metric in zip(axes.flat, METRICS):
            for i, model in enumerate(result.models):
                trivial = model in TRIVIAL_BASELINES
                ax.plot(ks, result.per_horizon[model][metric], label=model, color=f"C{i}", lw=1.2 if trivial else 1.8,
                        ls="--" if trivial else "-", marker="o" if result.horizon == 1 else None)
            if metric in LOG_SCALE:  # a diverging baseline (linear) must not flatten everyone else's curves
                _log_axis(ax)
            if metric == "sharpness":
                ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            ax.set(title=METRIC_LABELS[metric], xlabel="horizon k (frames ahead)")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(METRICS):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
        fig.suptitle(title or f"j={result.context} observed -> k={result.horizon} predicted ({result.windows} windows)")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_examples(models: Mapping[str, Forecaster], context: torch.Tensor, target: torch.Tensor, path: str | Path, *,
                  horizons: Sequence[int] | None = None, amp: str = "no") -> Path:
    """One window as pictures: rows truth and each model, columns the last observed frame and chosen horizons.

    ``context`` (J, C, H, W) and ``target`` (K, C, H, W) in [0, 1]; shown in grayscale (first channel).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = target.shape[0]
    hs = table_horizons(k, horizons)
    rows = {"truth": target}
    rows.update({name: predict(model, context, k, amp=amp) for name, model in models.items()})  # (K, C, H, W) each
    fig, axes = plt.subplots(len(rows), len(hs) + 1, figsize=(1.3 * (len(hs) + 1) + 0.9, 1.3 * len(rows)), dpi=110, squeeze=False)
    try:
        for r, (name, frames) in enumerate(rows.items()):
            panels = [context[-1]] + [frames[h - 1] for h in hs]
            for c, frame in enumerate(panels):
                ax = axes[r, c]
                ax.imshow(frame[0].float().numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title("last observed" if c == 0 else f"k={hs[c - 1]}", fontsize=8)
                if c == 0:
                    ax.set_ylabel(name, fontsize=8)
        fig.tight_layout(pad=0.3)
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def _save_figure(fig, path: str | Path) -> Path:
    """PNG through a temp file: a crash never leaves half an image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _log_axis(ax) -> None:
    """Log y axis labelled in plain numbers: 1, 2, 5, 10, 20, 50, ..."""
    import math

    from matplotlib.ticker import FuncFormatter

    def label(v: float, _pos: int) -> str:
        lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if lead in (1, 2, 5) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(label))
    ax.yaxis.set_minor_formatter(FuncFormatter(label))


def check_outputs(out: str | Path, overwrite: bool, names: Sequence[str] = OUTPUT_FILES) -> Path:
    """Refuse to replace existing result files unless ``overwrite``; returns ``out`` (created)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"--out {out} is a file; pass a directory for the results.")
    clash = [n for n in names if (out / n).exists()]
    if clash and not overwrite:
        raise GanlstmError(f"{out / clash[0]} already exists; pass --overwrite to replace it or choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_metrics(result: Evaluation, out: str | Path, *, overwrite: bool = False, title: str = "") -> dict[str, Path]:
    """Write ``metrics.csv``, ``metrics.json`` and ``metrics.png`` into ``out``; returns their paths."""
    out = check_outputs(out, overwrite)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["model", "horizon", "metric", "value"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "value": f"{r['value']:.6g}"} for r in metrics_rows(result))
    atomic_write_bytes(out / "metrics.csv", buf.getvalue().encode())
    atomic_write_bytes(out / "metrics.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    plot_metrics(result, out / "metrics.png", title=title)
    return {name: out / name for name in OUTPUT_FILES}


# ---------------------------------------------------------------- checkpoints (``ganlstm evaluate``)

SPLITS = ("auto", "test", "all")


def load_checkpoints(paths: Sequence[str | Path], device: str | torch.device = "auto") -> tuple[dict[str, Forecaster], list[dict]]:
    """Load forecaster checkpoints; names are the model names, made unique by the run directory when repeated."""
    from .train.forecaster import load_forecaster

    loaded = [load_forecaster(p, device) for p in paths]
    # Shortest label that is unique: model name, then @run directory, then @run directory/file.
    labels = [[m.cfg.model, f"{m.cfg.model}@{Path(c['path']).parent.name}", f"{m.cfg.model}@{Path(c['path']).parent.name}/{Path(c['path']).stem}"]
              for m, c in loaded]
    models = {}
    for (model, ckpt), options in zip(loaded, labels):
        level = next((i for i in range(3) if sum(o[i] == options[i] for o in labels) == 1), None)
        if level is None:
            raise GanlstmError(f"{ckpt['path']} is given twice; pass each checkpoint once.")
        models[options[level]] = model
    return models, [ckpt for _, ckpt in loaded]


def read_common_frames(data: str | Path, models: Mapping[str, Forecaster], ckpts: Sequence[dict], size: int | None):
    """Read ``data`` the way the checkpoints were trained; returns ``(sequences, FrameOptions)``.

    Every model must take the same frame size and channels (``size``, if given, must match).
    Checkpoints may record different reading options (say ``minmax`` vs ``fixed`` scaling) as
    long as both yield the same frames on ``data``: models are only comparable on the same frames,
    so the frames are compared, not the options.
    """
    from .config import FrameOptions
    from .data.frames import read_collection
    from .train.forecaster import frame_options_of

    if not ckpts:
        opts = FrameOptions(size=size)
        return read_collection(data, opts), opts
    shapes = {(m.cfg.image_size, m.cfg.channels) for m in models.values()}
    if len(shapes) > 1:
        raise GanlstmError(f"the checkpoints take different frames (size, channels) {sorted(shapes)}; compare models trained on the same frame size.")
    image_size, channels = shapes.pop()
    if size is not None and size != image_size:
        raise GanlstmError(f"--size {size} differs from the {image_size} px the checkpoints were trained on; drop --size.")
    distinct: dict[str, tuple[dict, FrameOptions]] = {}
    for c in ckpts:
        o = dataclasses.replace(frame_options_of(c), size=image_size, channels=channels)
        distinct.setdefault(json.dumps(asdict(o), sort_keys=True), (c, o))
    (first, opts), *others = distinct.values()
    sequences = read_collection(data, opts)
    for c, o in others:
        alt = read_collection(data, o)
        diff = max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(sequences, alt))
        if diff > 1e-6:
            raise GanlstmError(
                f"{c['path']} reads {data} differently from {first['path']} (pixel values differ by up to {diff:.3g}: "
                f"scaling {o.scaling!r} vs {opts.scaling!r}, interval {o.interval} vs {opts.interval}); models can only be "
                f"compared on the same frames, so train them with the same --scaling/--interval."
            )
    return sequences, opts


def recorded_test_split(ckpts: Sequence[dict]) -> list[str]:
    """The test sequences recorded in the checkpoints (all must record the same ones)."""
    splits = [c.get("extra", {}).get("split") for c in ckpts]
    for c, s in zip(ckpts, splits):
        if not s or not s.get("test"):
            raise GanlstmError(f"{c['path']} records no test sequences (trained with test_fraction=0 or too few sequences); "
                               f"pass --split all with data the model never saw.")
    for c, s in zip(ckpts[1:], splits[1:]):
        if sorted(s["test"]) != sorted(splits[0]["test"]):
            raise GanlstmError(f"{c['path']} and {ckpts[0]['path']} hold out different test sequences (different seed or "
                               f"fractions); pass --split all with a held-out collection instead.")
    return list(splits[0]["test"])


def select_split(sequences: list[tuple[str, np.ndarray]], data: str | Path, ckpts: Sequence[dict], split: str) -> tuple[list[tuple[str, np.ndarray]], str]:
    """Pick the sequences to evaluate on; returns them and the split actually used ("test" or "all").

    ``auto`` uses the checkpoints' recorded test split when ``data`` is the collection any of
    them was trained on (anything else would score training sequences), and all of ``data``
    otherwise (a collection they never saw).
    """
    from .train.forecaster import saved_configs

    if split not in SPLITS:
        raise GanlstmError(f"unknown --split {split!r}; use {', '.join(SPLITS)}.")
    if split == "auto":
        trained_on = {Path(saved_configs(c)[0].data_path).resolve() for c in ckpts}
        split = "test" if Path(data).resolve() in trained_on else "all"
    if split == "all":
        return sequences, "all"
    if not ckpts:
        raise GanlstmError("--split test needs a checkpoint that records its test sequences; pass --checkpoint or --split all.")
    wanted = recorded_test_split(ckpts)
    train_cfg = saved_configs(ckpts[0])[0]
    if train_cfg.time_split:  # a movie trained on its start: cut it again, the same way
        from .data.windows import split_collection

        sequences = split_collection(sequences, train_cfg.val_fraction, train_cfg.test_fraction, time_split=True)["test"]
    by_name = dict(sequences)
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise GanlstmError(f"{data} lacks the test sequence {missing[0]!r} recorded in the checkpoint; pass the training "
                           f"collection as --data, or --split all.")
    return [(n, by_name[n]) for n in wanted], "test"


def evaluate_checkpoints(
    checkpoints: Sequence[str | Path],
    data: str | Path,
    context: int,
    horizon: int,
    *,
    split: str = "auto",
    size: int | None = None,
    batch_size: int = 16,
    device: str = "auto",
    amp: str = "no",
    progress: bool = True,
) -> Evaluation:
    """``ganlstm evaluate``: the trivial baselines plus every checkpoint on the same windows of ``data``.

    Frames are read the way the checkpoints were trained (they must agree); ``split`` picks
    the sequences (see :func:`select_split`).
    """
    from .train.common import configure_cpu

    dev = resolve_device(device)
    if dev.type == "cpu":
        configure_cpu()
    models, ckpts = load_checkpoints(checkpoints, dev)
    frames, opts = read_common_frames(data, models, ckpts, size)
    sequences, used = select_split(frames, data, ckpts, split)
    result = evaluate_models({**trivial_baselines(), **models}, [s for _, s in sequences], context, horizon,
                             batch_size=batch_size, device=dev, amp=amp, progress=progress)
    result.info = {"data": str(data), "split": used, "sequence_names": [n for n, _ in sequences],
                   "checkpoints": {name: c["path"] for name, c in zip(models, ckpts)}, "device": str(dev),
                   "frame_options": asdict(opts)}
    return result


# ---------------------------------------------------------------- the benchmark (``ganlstm benchmark``)

LEARNED_MODELS = ("gan_lstm", "convlstm", "predrnn")
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
    hidden: tuple[int, ...]  # ConvLSTM / ST-LSTM widths, the same for every learned model
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


def benchmark_spec(*, quick: bool = False, mnist: bool = False) -> BenchmarkSpec:
    """The shipped specs: the merger benchmark or Moving MNIST, full or ``quick`` (a smoke test)."""
    return {(False, False): MERGER, (True, False): MERGER_QUICK, (False, True): MNIST, (True, True): MNIST_QUICK}[(quick, mnist)]


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
            model=ForecasterConfig(model=name, image_size=spec.size, channels=1, hidden=spec.hidden,
                                   latent_cap=spec.latent_cap if prior else 0.0),
            data=fo, data_path=str(train_dir), gan_checkpoint=paths.get(GAN_NAME, ""),
            context=spec.train_context, horizon=spec.train_horizon, test_fraction=0.0,  # the test set is its own collection
            reader_warmup=spec.reader_warmup if prior else 0,
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

    ``checkpoints`` maps names to checkpoints used instead of training: ``gan`` (a stage-one
    checkpoint for gan_lstm), any of ``models``, or any other name (an extra forecaster to
    compare). ``threads`` sets torch's CPU threads for the run (restored afterwards): on a
    small or busy CPU one thread is several times faster for these small models. Returns
    {task name: Evaluation}.
    """
    from .train.common import configure_cpu, torch_threads

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

    results, tables = {}, [f"# {spec.name} benchmark\n"]
    for j, k in spec.tasks:
        task = f"j{j}_k{k}"
        ev = evaluate_models(forecasters, test, j, k, device=dev, progress=progress)
        ev.info = {"benchmark": spec.name, "data": str(test_dir), "checkpoints": {n: p for n, p in paths.items() if n in forecasters}}
        write_metrics(ev, out / task, overwrite=True, title=f"{spec.name}: j={j} observed -> k={k} predicted ({ev.windows} windows)")
        ctx, tgt = _example_window(test, j, k)
        plot_examples(forecasters, ctx, tgt, out / task / "examples.png", horizons=(1, k // 2, k))
        results[task] = ev
        tables.append("## " + format_table(ev, horizons=(1, k // 2, 10, 30), markdown=True) + "\n")
    atomic_write_bytes(out / "tables.md", "\n".join(tables).encode())
    summary = {"spec": asdict(spec), "checkpoints": paths, "train_seconds": train_seconds,
               "total_seconds": round(time.perf_counter() - t_start, 1), "machine": machine_info(dev),
               "results": {t: ev.to_dict() for t, ev in results.items()}}
    atomic_write_bytes(out / "benchmark.json", (json.dumps(summary, indent=2) + "\n").encode())
    return results
