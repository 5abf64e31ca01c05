"""Honest comparison: every model on the same windows, through the same rollout engine, scored by
the same metrics. The library behind ``ganlstm evaluate``, and the scoring of ``ganlstm benchmark``.

* :func:`evaluate_models` cuts (context, target) windows from held-out sequences, lets every
  forecaster (the trivial baselines included) predict each target from its context through
  :func:`ganlstm.rollout.predict`, and accumulates the per-horizon metrics of
  :mod:`ganlstm.metrics` (OpenSTL conventions).
* :func:`evaluate_checkpoints` (``ganlstm evaluate``) loads trained forecasters and picks the
  test sequences their checkpoints recorded.
* :mod:`ganlstm.results` turns an :class:`Evaluation` into tables, ``metrics.*`` files and plots;
  :mod:`ganlstm.benchmark` (``ganlstm benchmark``) simulates fixed collections, trains every model
  for a fixed budget and evaluates them all (``docs/benchmarks.md``).

Windows start every ``stride`` frames. The default ``stride = horizon`` makes the targets of
consecutive windows adjacent, never overlapping: every frame is a target at most once.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .device import resolve_device
from .errors import GanlstmError
from .metrics import HIGHER_IS_BETTER, MetricAccumulator
from .models.base import Forecaster
from .rollout import predict

TRIVIAL_BASELINES = ("persistence", "linear")


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


def _astro() -> object:
    from .astro_scores import AstroAccumulator

    return AstroAccumulator()


def _diversity() -> object:
    from .diversity import DiversityAccumulator

    return DiversityAccumulator()


#: Scores beyond the pixel metrics, by name: what ``evaluate_models(scores=...)`` can add.
EXTRA_SCORES = {"diversity": _diversity, "morphology": _astro}


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
    scores: Sequence[str] = ("diversity",),
) -> Evaluation:
    """Score every model on the same (context, target) windows of ``sequences`` ((T, C, H, W) in [0, 1]).

    Each model predicts ``horizon`` frames closed-loop from ``context`` observed frames via
    :func:`ganlstm.rollout.predict`; weightless baselines run on the CPU. Returns an
    :class:`Evaluation` whose models appear in the order given. Beside :data:`ganlstm.metrics.METRICS`,
    ``scores`` adds :data:`EXTRA_SCORES`: ``diversity`` (:mod:`ganlstm.diversity`, on by default) and
    ``morphology`` (:mod:`ganlstm.astro_scores`: Gini, M20, C, A, the merger class, the nuclei; slower).
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
    unknown = [x for x in scores if x not in EXTRA_SCORES]
    if unknown:
        raise GanlstmError(f"unknown score {unknown[0]!r}; use any of {', '.join(EXTRA_SCORES)}.")
    acc = {name: [MetricAccumulator(), *(EXTRA_SCORES[x]() for x in scores)] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    for ctx, target in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        for name, model in models.items():
            t0 = time.perf_counter()
            pred = predict(model, ctx, horizon, amp=amp)  # (B, K, C, H, W) in [0, 1], on the CPU
            seconds[name] += time.perf_counter() - t0
            for a in acc[name]:
                a.update(pred, target)
    result = Evaluation(context=context, horizon=horizon, windows=len(windows), sequences=len(windows.sequences) - len(windows.skipped))
    for name, parts in acc.items():
        result.per_horizon[name], result.mean[name] = {}, {}
        for a in parts:
            result.per_horizon[name].update({m: [float(v) for v in values] for m, values in a.per_horizon().items()})
            result.mean[name].update(a.summary())
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
    stride: int | None = None,
    scores: Sequence[str] = ("diversity",),
) -> Evaluation:
    """``ganlstm evaluate``: the trivial baselines plus every checkpoint on the same windows of ``data``.

    Frames are read the way the checkpoints were trained (they must agree); ``split`` picks
    the sequences (see :func:`select_split`); windows start every ``stride`` frames (default: the horizon).
    """
    from .device import configure_cpu

    dev = resolve_device(device)
    if dev.type == "cpu":
        configure_cpu()
    models, ckpts = load_checkpoints(checkpoints, dev)
    frames, opts = read_common_frames(data, models, ckpts, size)
    sequences, used = select_split(frames, data, ckpts, split)
    result = evaluate_models({**trivial_baselines(), **models}, [s for _, s in sequences], context, horizon,
                             batch_size=batch_size, device=dev, amp=amp, progress=progress, stride=stride, scores=scores)
    result.info = {"data": str(data), "split": used, "sequence_names": [n for n, _ in sequences],
                   "checkpoints": {name: c["path"] for name, c in zip(models, ckpts)}, "device": str(dev),
                   "frame_options": asdict(opts)}
    return result
