"""What an :class:`~ganlstm.evaluation.Evaluation` is shown as: the compact table, the metrics files, the plots.

* :func:`format_table`: rows metric x model, columns chosen horizons and the mean (text or markdown);
* :func:`write_metrics` writes ``metrics.csv`` (long format: model, horizon, metric, value),
  ``metrics.json`` (the same plus means and run facts) and ``metrics.png`` (one panel per
  metric against horizon, one line per model, :func:`plot_metrics`);
* :func:`plot_examples` draws one window: the truth and every model's prediction.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write_bytes
from .errors import GanlstmError
from .evaluation import TRIVIAL_BASELINES, Evaluation
from .metrics import HIGHER_IS_BETTER, METRICS
from .models.base import Forecaster
from .rollout import predict

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

#: The extra scores' labels (which way is better: :data:`ganlstm.astro_scores.ASTRO_HIGHER_IS_BETTER`; diversity: closest to 1).
EXTRA_LABELS = {
    "diversity": "diversity (→1)",
    "gini_err": "|ΔGini| ↓",
    "m20_err": "|ΔM20| ↓",
    "concentration_err": "|ΔC| ↓",
    "asymmetry_err": "|ΔA| ↓",
    "class_agreement": "Gini-M20 class agrees ↑",
    "separation_err": "|Δ nuclei sep.| ↓ (px)",
    "hist_distance": "intensity W1 ↓",
}
#: The astronomer's table (``evaluate --morphology``): per horizon, then the per-window scores.
ASTRO_TABLE = ("diversity", "gini_err", "m20_err", "concentration_err", "asymmetry_err", "class_agreement", "separation_err", "hist_distance")

LOG_SCALE = ("mse", "mae")  # plotted on log axes: errors span decades (a diverging linear baseline)
#: The plot's panels: per-pixel MSE is the per-frame MSE over a constant, so it gets no panel of its own.
PLOTTED = ("mse", "mae", "psnr", "ssim", "sharpness")


# ---------------------------------------------------------------- tables


def table_horizons(horizon: int, wanted: Sequence[int] | None = None) -> list[int]:
    """The horizons a compact table shows: ``wanted`` within 1..K, by default 1, K/2 and K."""
    wanted = wanted or (1, horizon // 2, horizon)
    return sorted({h for h in wanted if 1 <= h <= horizon})


def best_models(metric: str, values: Mapping[str, float]) -> set[str]:
    """The model(s) with the best value: lowest/highest, or closest to 1 for sharpness."""
    if metric in HIGHER_IS_BETTER:
        rule = HIGHER_IS_BETTER[metric]
    else:
        from .astro_scores import ASTRO_HIGHER_IS_BETTER

        rule = {**ASTRO_HIGHER_IS_BETTER, "diversity": None}[metric]
    score = {m: (-v if rule else v) if rule is not None else abs(v - 1.0) for m, v in values.items() if np.isfinite(v)}
    if not score:
        return set()
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
            label = METRIC_LABELS[metric] if metric in METRIC_LABELS else EXTRA_LABELS[metric]
            rows.append([label if i == 0 or markdown else "", model, *cells])
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


def format_astro_table(result: Evaluation, *, markdown: bool = False) -> str:
    """The morphology, nuclei and diversity scores (``evaluate --morphology``), then the coalescence and flux errors per model."""
    shown = [m for m in ASTRO_TABLE if all(m in result.per_horizon[x] for x in result.models)]
    table = format_table(result, metrics=shown, markdown=markdown)
    tail = [f"{m}: coalescence time error {_fmt(result.mean[m].get('coalescence_err', float('nan')))} frames, "
            f"flux autocorrelation error {_fmt(result.mean[m].get('flux_acf_err', float('nan')))}" for m in result.models]
    return table + "\n" + "\n".join(tail)


# ---------------------------------------------------------------- files


def metrics_rows(result: Evaluation) -> list[dict]:
    """Long-format rows ``{model, horizon, metric, value}`` (the schema of metrics.csv)."""
    return [
        {"model": model, "horizon": k, "metric": metric, "value": v}
        for model in result.models
        for metric in [*METRICS, *(m for m in result.per_horizon[model] if m not in METRICS)]
        for k, v in enumerate(result.per_horizon[model][metric], start=1)
    ]


def plot_metrics(result: Evaluation, path: str | Path, *, title: str = "") -> Path:
    """One panel per metric against horizon, one line per model; the legend takes the sixth panel.

    Trivial baselines (persistence, linear) are drawn last and dashed in black and grey with
    markers, so a learned model that sits on top of one never hides it. Sharpness is on a linear
    axis around its target 1.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    ks = np.arange(1, result.horizon + 1)
    ncol = 3
    nrow = -(-(len(PLOTTED) + 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), dpi=110, squeeze=False)
    learned = [m for m in result.models if m not in TRIVIAL_BASELINES]
    trivial = [m for m in result.models if m in TRIVIAL_BASELINES]
    marks = max(1, result.horizon // 10)  # a marker every few horizons
    styles = {m: dict(color=f"C{i}", lw=1.8, ls="-", zorder=2) for i, m in enumerate(learned)}
    styles.update({m: dict(color=("0.1", "0.55")[i % 2], lw=1.2, ls="--", marker="os"[i % 2], ms=3.5, markevery=marks,
                           markerfacecolor="none", zorder=3) for i, m in enumerate(trivial)})
    try:
        for ax, metric in zip(axes.flat, PLOTTED):
            for model in learned + trivial:
                ax.plot(ks, result.per_horizon[model][metric], label=model, **styles[model],
                        **({"marker": "o"} if result.horizon == 1 else {}))
            if metric in LOG_SCALE:
                _log_axis(ax)
            if metric == "sharpness":
                ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            ax.set(title=METRIC_LABELS[metric], xlabel="horizon k (frames ahead)")
            ax.grid(alpha=0.3)
        rest = list(axes.flat)[len(PLOTTED):]
        for ax in rest:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        rest[0].legend(handles, labels, loc="center", frameon=False, title="model")
        fig.suptitle(title or f"j={result.context} observed -> k={result.horizon} predicted ({result.windows} windows)")
        fig.tight_layout()
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
    from .data.frame_files import mark_output

    out = check_outputs(out, overwrite)
    mark_output(out, "evaluation metrics")  # a metrics.png here must never be read back as a frame
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["model", "horizon", "metric", "value"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "value": f"{r['value']:.6g}"} for r in metrics_rows(result))
    atomic_write_bytes(out / "metrics.csv", buf.getvalue().encode())
    atomic_write_bytes(out / "metrics.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    plot_metrics(result, out / "metrics.png", title=title)
    return {name: out / name for name in OUTPUT_FILES}
