"""``ganlstm demo``: the shipped checkpoints forecasting mergers they have never seen, in about a minute on a CPU.

:func:`run_demo` simulates held-out galaxy mergers with the built-in simulator
(:mod:`ganlstm.data.simulate`) at a seed outside both the training collection (seed 1) and the
benchmark's test collection (seed 2), observes the first ``CONTEXT`` = 20 frames of each and
predicts the next ``HORIZON`` = 30 with

* the shipped GAN-prior forecaster ``checkpoints/gan_lstm.pt`` (64 px; encoder + ConvLSTM into a frozen
  DCGAN generator; Xu et al., IEEE ICC 2019),
* the shipped pixel-space ConvLSTM baseline ``checkpoints/convlstm.pt`` (64 px; Shi et al., NeurIPS 2015),
* persistence (repeat the last observed frame), the floor any forecaster must beat.

It writes ``comparison.gif`` (truth | GAN-LSTM | ConvLSTM | persistence, one row per shown
merger) and the per-horizon metrics of :mod:`ganlstm.evaluation` (``metrics.csv``,
``metrics.json``, ``metrics.png``). How the checkpoints were trained: ``checkpoints/MODEL_CARD.md``
and ``benchmarks/train_shipped.sh``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .checkpoint import SHIPPED_DIR
from .errors import GanlstmError

if TYPE_CHECKING:
    from .evaluation import Evaluation

#: Display name -> shipped checkpoint file, in the column order of the GIF: the 64 px pair.
SHIPPED = {"gan_lstm": SHIPPED_DIR / "gan_lstm.pt", "convlstm": SHIPPED_DIR / "convlstm.pt"}
#: The earlier 32 px pair, kept for the recorded 32 px tables (``ganlstm benchmark --size 32``).
SHIPPED_32 = {"gan_lstm": SHIPPED_DIR / "gan_lstm_32.pt", "convlstm": SHIPPED_DIR / "convlstm_32.pt"}
CONTEXT, HORIZON = 20, 30  # observed -> predicted frames: the long task of the merger benchmark
#: Simulator seed of the demo mergers: training used seed 1 and the benchmark's test split seed 2.
DEMO_SEED = 3
OUTPUTS = ("comparison.gif", "metrics.csv", "metrics.json", "metrics.png")
GIF_ROWS = 3  # mergers shown in the GIF (all of them are scored)
GIF_PANEL = 128  # px: frames are enlarged (nearest neighbour) to about this width in the GIF
SEPARATOR = 0.3  # grey lines between panels: the frames' own background is black
LABELS = {"truth": "truth", "gan_lstm": "GAN-LSTM", "convlstm": "ConvLSTM", "persistence": "persistence"}


@dataclass
class DemoResult:
    """What :func:`run_demo` wrote and measured."""

    out: Path
    files: dict[str, Path]
    table: str  # per-horizon table (format_table)
    evaluation: Evaluation
    seconds: float


def shipped_checkpoints(paths: dict[str, Path] | None = None) -> dict[str, Path]:
    """The shipped checkpoint files (``SHIPPED`` unless ``paths``), or a GanlstmError naming the missing one."""
    paths = dict(SHIPPED if paths is None else paths)
    for name, path in paths.items():
        if not Path(path).is_file():
            raise GanlstmError(f"the shipped {name} checkpoint {path} is missing; restore it with `git checkout -- checkpoints/` "
                               f"(or reinstall ganlstm), or rebuild it with benchmarks/train_shipped.sh.")
    return paths


def simulate_held_out(sequences: int, seed: int = DEMO_SEED, size: int = 64) -> list[np.ndarray]:
    """``sequences`` simulated mergers (CONTEXT + HORIZON frames each), (T, 1, size, size) float32 in [0, 1].

    Quantised to 8 bits exactly as ``simulate_dataset`` writes its PNGs, so the models see the
    pixel values they were trained on (scaling "fixed").
    """
    from .data.simulate import simulate_arrays

    _check_seed(seed)
    arrays, _ = simulate_arrays(sequences, CONTEXT + HORIZON, size, seed)
    return [np.round(a * 255.0).astype(np.float32) / 255.0 for a in arrays]


def _check_seed(seed: int) -> None:
    if seed in (1, 2):
        raise GanlstmError(f"--seed {seed} is a seed of the training (1) or benchmark test (2) collection; pick another, e.g. {DEMO_SEED}.")


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"--out {out} is a file; pass a directory for the demo outputs.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GanlstmError(f"{out} is not empty; pass --overwrite to replace the demo outputs there or choose another --out.")


def _label_strip(labels: list[str], panel_width: int, padding: int, height: int = 14) -> np.ndarray:
    """A (height, W) uint8 strip with one label centred over each panel (PIL's built-in bitmap font)."""
    from PIL import Image, ImageDraw

    width = len(labels) * panel_width + (len(labels) - 1) * padding
    strip = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(strip)
    for i, text in enumerate(labels):
        left = i * (panel_width + padding)
        text_w = draw.textlength(text)
        draw.text((left + (panel_width - text_w) / 2, 1), text, fill=255)
    return np.asarray(strip)


def comparison_frames(context: torch.Tensor, truth: torch.Tensor, predictions: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """GIF frames (uint8 (H, W), or (H, W, 3) for colour) for windows (N, J|K, C, h, w): columns truth and each model, rows the windows.

    The first J frames replay the observed context in every column (predictions start after
    it); a caption under the rows says which frame is shown.
    """
    from PIL import Image, ImageDraw

    from .viz import side_by_side, to_uint8, upscale

    pad = 2
    scale = max(1, round(GIF_PANEL / context.shape[-1]))  # 64 px -> 2x, 32 px -> 4x
    names = ["truth", *predictions]
    j, k = context.shape[1], truth.shape[1]
    rows = []
    for n in range(context.shape[0]):
        panels = [torch.cat([context[n], truth[n]])] + [torch.cat([context[n], predictions[m][n]]) for m in predictions]
        rows.append(side_by_side(*[upscale(p.numpy(), scale) for p in panels], padding=pad, pad_value=SEPARATOR))  # (T, 1, H, W)
    width = rows[0].shape[3]
    gap = np.full((rows[0].shape[0], 1, pad, width), SEPARATOR, dtype=np.float32)
    gap = np.repeat(gap, rows[0].shape[1], axis=1)  # (T, C, pad, W)
    body = to_uint8(np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=2))  # (T, H, W, C)
    body = body[..., 0] if body.shape[-1] == 1 else body  # (T, H, W) gray, (T, H, W, 3) colour
    header = _label_strip([LABELS.get(m, m) for m in names], context.shape[-1] * scale, pad)
    if body.ndim == 4:
        header = np.repeat(header[..., None], 3, axis=2)
    frames = []
    for t, image in enumerate(body):
        footer = Image.new("L", (width, 14), 0)
        caption = f"observed frame {t + 1}/{j}" if t < j else f"predicted +{t - j + 1} of {k}"
        ImageDraw.Draw(footer).text((3, 1), caption, fill=255 if t >= j else 160)
        footer = np.asarray(footer) if body.ndim == 3 else np.repeat(np.asarray(footer)[..., None], 3, axis=2)
        frames.append(np.concatenate([header, image, footer], axis=0))
    return frames


def save_comparison_gif(frames: list[np.ndarray], path: Path, fps: float = 6.0) -> Path:
    """Write uint8 (H, W) frames as a looping GIF, atomically."""
    import io

    from PIL import Image

    from .checkpoint import atomic_write_bytes

    images = [Image.fromarray(f, mode="L" if f.ndim == 2 else "RGB") for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def run_demo(
    out: str | Path = "outputs/demo",
    *,
    sequences: int = 8,
    seed: int = DEMO_SEED,
    device: str = "auto",
    overwrite: bool = False,
    checkpoints: dict[str, Path] | None = None,
) -> DemoResult:
    """Forecast ``sequences`` held-out simulated mergers (CONTEXT -> HORIZON frames) with the shipped
    models and persistence; write ``OUTPUTS`` into ``out``. ``checkpoints`` overrides ``SHIPPED``."""
    from .device import configure_cpu, resolve_device
    from .evaluation import evaluate_models, trivial_baselines
    from .results import format_table, write_metrics
    from .rollout import predict
    from .train.forecaster import frame_options_of, load_forecaster

    t0 = time.perf_counter()
    out = Path(out)
    if sequences < 1:
        raise GanlstmError(f"--sequences {sequences} is invalid; pass at least 1.")
    _check_seed(seed)
    _check_out(out, overwrite)
    paths = shipped_checkpoints(checkpoints)
    dev = resolve_device(device)
    if dev.type == "cpu":
        configure_cpu()  # flush denormals: recurrent nets on CPU otherwise slow down several-fold
    models, sizes = {}, set()
    for name, path in paths.items():
        model, ckpt = load_forecaster(path, dev)
        fo = frame_options_of(ckpt)
        if model.cfg.channels != 1 or fo.interval != 1:
            raise GanlstmError(f"{path} was trained on {model.cfg.channels}-channel frames with interval {fo.interval}; "
                               f"the demo needs a grayscale merger checkpoint at interval 1 (benchmarks/train_shipped.sh).")
        models[name] = model
        sizes.add(model.cfg.image_size)
    if len(sizes) != 1:
        raise GanlstmError(f"the demo checkpoints were trained at different frame sizes {sorted(sizes)}; retrain them at one size.")
    models["persistence"] = trivial_baselines()["persistence"]

    data = simulate_held_out(sequences, seed, sizes.pop())
    result = evaluate_models(models, data, CONTEXT, HORIZON, device=dev)
    result.info = {"data": f"built-in merger simulator, seed {seed}, {sequences} sequences of {CONTEXT + HORIZON} frames",
                   "checkpoints": {n: str(p) for n, p in paths.items()}, "device": str(dev)}
    out.mkdir(parents=True, exist_ok=True)
    files = write_metrics(result, out, overwrite=True,
                          title=f"demo: {sequences} held-out mergers (seed {seed}), {CONTEXT} observed -> {HORIZON} predicted")

    shown = torch.from_numpy(np.stack(data[:GIF_ROWS]))  # (N, T, 1, H, W)
    context, truth = shown[:, :CONTEXT], shown[:, CONTEXT:]
    with torch.no_grad():
        preds = {name: predict(model, context, HORIZON) for name, model in models.items()}
    files["comparison.gif"] = save_comparison_gif(comparison_frames(context, truth, preds), out / "comparison.gif")
    table = format_table(result, horizons=(1, 10, 20, 30))
    return DemoResult(out=out, files={n: files[n] for n in OUTPUTS}, table=table, evaluation=result,
                      seconds=round(time.perf_counter() - t0, 1))


__all__ = ["run_demo", "DemoResult", "shipped_checkpoints", "simulate_held_out", "comparison_frames", "SHIPPED", "SHIPPED_32",
           "DEMO_SEED", "CONTEXT", "HORIZON", "OUTPUTS"]
