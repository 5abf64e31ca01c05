"""Measuring helpers of benchmarks/speed.py (timers, round-robin, FLOP counts, references) and its shipped-checkpoint section.

The **shipped** section times ``ganlstm.rollout.predict`` on the checkpoints in ``checkpoints/``
(``gan_lstm.pt`` and ``convlstm.pt``, 32 px, each warmed up on its own training context), at batch
1 and 16, round-robin with the matmul and convolution references. Each row gives frames/s, GFLOP
per predicted frame (the warm-up on the context included), the fraction of the matmul peak, and the generator (G) and encoder (E)
frames run per predicted frame, counted with forward pre-hooks (E beyond the context's own
reading; pixel models have neither). With ``--compile`` it adds each checkpoint compiled as
``predict --compile`` compiles it (:func:`ganlstm.compiled.compile_parts`), and the shipped
GAN-LSTM architecture at 64 px with random weights, eager and compiled: the measurement behind
``ganlstm.compiled.CPU_DECISION``.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import ganlstm.rollout as engine

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = ("gan_lstm.pt", "convlstm.pt")
NO_CHECK = "gan_lstm.pt, no context check"  # the shipped GAN-LSTM with its context check off (ganlstm/models/context_check.py)
SHIPPED_BATCHES = (1, 16)
WIDE = "gan_lstm.pt architecture at 64 px"  # the shipped GAN-LSTM's widths at 64 px, random weights
OPENSTL = "openstl_convlstm"  # OpenSTL's ConvLSTM at its Moving-MNIST configuration (OpenStlConvLstm below)
OPENSTL_MAX_BATCH = 16  # one 10 -> 30 call at batch 64 would take ~5 min on one CPU thread


# ---------------------------------------------------------------- measuring


def load() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, device work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def round_robin(cases: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per case: one warm-up call each, then ``repeats`` rounds over all cases."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def flops(fn: Callable[[], object]) -> int:
    """Matmul/convolution FLOPs of one call (forward and backward, as it runs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def references(device: torch.device, n: int | None = None) -> dict[str, tuple[Callable[[], object], int]]:
    """The reference workloads and their FLOPs: an n x n float32 matmul (default 4096, 8192 on CUDA) and a 3x3 convolution."""
    n = n or (8192 if device.type == "cuda" else 4096)
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    x, w = torch.randn(16, 256, 32, 32, device=device), torch.randn(256, 256, 3, 3, device=device)
    conv_flops = 2 * 16 * 256 * 256 * 9 * 32 * 32
    return {"peak": (lambda: a @ b, 2 * n**3), "conv": (lambda: torch.nn.functional.conv2d(x, w, padding=1), conv_flops)}


def with_references(cases: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                    n: int | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per case, and the references' FLOP/s timed in the same round-robin."""
    refs = references(device, n)
    seconds = round_robin({**cases, **{f"__{k}": fn for k, (fn, _) in refs.items()}}, repeats, device)
    return seconds, {k: f / seconds.pop(f"__{k}") for k, (_, f) in refs.items()}


def against(flop_per_s: float, refs: dict[str, float]) -> dict[str, float]:
    """The fields every row carries: the references and the achieved fraction of each."""
    return {"peak_flop_per_s": refs["peak"], "conv_flop_per_s": refs["conv"],
            "fraction_of_peak": flop_per_s / refs["peak"], "fraction_of_conv": flop_per_s / refs["conv"]}


# ---------------------------------------------------------------- the shipped checkpoints


def _counter(module: torch.nn.Module | None) -> tuple[dict, Callable[[], None]]:
    """Frames seen by ``module``'s forward (a pre-hook, as benchmarks/decode_once.py counts), and how to remove it."""
    seen = {"frames": 0}
    if module is None:
        return seen, lambda: None
    handle = module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("frames", seen["frames"] + args[0].shape[0]))
    return seen, handle.remove


def shipped_models(device: torch.device, compile_mode: str | None) -> dict[str, tuple[torch.nn.Module, int]]:
    """``{case: (model in eval mode, context)}``: the shipped checkpoints, and with ``compile_mode`` their compiled twins and the 64 px case."""
    from ganlstm.compiled import compile_parts
    from ganlstm.config import ForecasterConfig, GanConfig
    from ganlstm.models.base import build_forecaster
    from ganlstm.train.forecaster import load_forecaster, saved_configs

    def wide() -> torch.nn.Module:
        torch.manual_seed(0)
        cfg = ForecasterConfig(model="gan_lstm", image_size=64, hidden=(32, 32), feedback="pixels", latent_cap=1.0, anchor_decay=0.5,
                               gan=GanConfig(image_size=64, nz=512, latent_grid=4, ngf=32, ndf=32))
        return build_forecaster(cfg).to(device).eval()

    models = {}
    for name in SHIPPED:
        model, ckpt = load_forecaster(CHECKPOINTS / name, str(device))
        models[name] = (model.eval(), saved_configs(ckpt)[0].context)
        if getattr(model, "context_check", False):  # the model's own rollout, without the per-sequence check of its settings
            models[NO_CHECK] = (load_forecaster(CHECKPOINTS / name, str(device), context_check=False)[0].eval(), models[name][1])
    if compile_mode:
        models[WIDE] = (wide(), models[SHIPPED[0]][1])
        for name in (*SHIPPED, WIDE):
            twin = load_forecaster(CHECKPOINTS / name, str(device))[0].eval() if name in SHIPPED else wide()
            compile_parts(twin, compile_mode)
            models[f"{name}+compile"] = (twin, models[name][1])
    return models


def bench_shipped(spec: dict, device: torch.device, compile_mode: str | None, amp: str) -> list[dict]:
    """Frames/s of the shipped checkpoints at batch 1 and 16, against the references timed beside them (module docstring)."""
    k = spec["horizon"]
    models = shipped_models(device, compile_mode)
    per_frame, counts = {}, {}
    for name, (m, j) in models.items():
        if name.endswith("+compile"):
            continue  # the same arithmetic and decodes as the eager twin, counted there
        size, c = m.cfg.image_size, m.cfg.channels
        x = torch.rand(1, j, c, size, size, generator=torch.Generator().manual_seed(0))
        per_frame[name] = flops(lambda m=m, x=x: engine.predict(m, x, k, amp=amp)) / k
        (g, g_off), (e, e_off) = _counter(getattr(m, "generator", None)), _counter(getattr(m, "encoder", None))
        engine.predict(m, x, k, amp=amp)
        g_off(), e_off()
        gan = hasattr(m, "generator")
        counts[name] = (g["frames"] / k if gan else None, (e["frames"] - j) / k if gan else None)
    rows = []
    for batch in SHIPPED_BATCHES:
        inputs = {name: torch.rand(batch, j, m.cfg.channels, m.cfg.image_size, m.cfg.image_size,
                                   generator=torch.Generator().manual_seed(1)) for name, (m, j) in models.items()}
        cases = {name: (lambda m=m, x=inputs[name]: engine.predict(m, x, k, amp=amp)) for name, (m, _) in models.items()}
        load0 = load()
        seconds, refs = with_references(cases, spec["repeats"], device, spec.get("ref_n"))
        load1 = load()
        fps = {name: batch * k / s for name, s in seconds.items()}
        for name, (m, j) in models.items():
            base = name.removesuffix("+compile")
            diff = {}
            if name != base:
                eager = engine.predict(models[base][0], inputs[name], k, amp=amp)
                diff = {"max_abs_diff_vs_eager": float((engine.predict(m, inputs[name], k, amp=amp) - eager).abs().max()),
                        "vs_eager": fps[name] / fps[base]}
            achieved = per_frame[base] * fps[name]
            rows.append({**diff, "device": device.type, "model": name, "batch": batch, "context": j, "horizon": k,
                         "size": m.cfg.image_size, "seconds": seconds[name], "frames_per_s": fps[name],
                         "gan_lstm_vs_convlstm": fps["gan_lstm.pt"] / fps["convlstm.pt"],
                         **({"no_check_vs_convlstm": fps[NO_CHECK] / fps["convlstm.pt"]} if NO_CHECK in fps else {}),
                         "gflop_per_frame": per_frame[base] / 1e9, "flop_per_s": achieved, **against(achieved, refs),
                         "g_frames_per_frame": counts[base][0], "e_frames_per_frame": counts[base][1], "load": [load0, load1]})
    return rows


def shipped_markdown(rows: list[dict]) -> list[str]:
    """The shipped-checkpoint table, with GAN-LSTM / ConvLSTM frames/s per batch beneath it."""
    if not rows:
        return []
    lines = ["", "| device | shipped checkpoint | batch | frames/s | × eager | GFLOP/frame | of peak | G frames/frame | E frames/frame |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        model = r["model"] + (f" (max diff {r['max_abs_diff_vs_eager']:.1e})" if "max_abs_diff_vs_eager" in r else "")
        g, e = (f"{v:.2f}" if v is not None else "n/a" for v in (r["g_frames_per_frame"], r["e_frames_per_frame"]))
        vs_eager = f"{r['vs_eager']:.2f}" if "vs_eager" in r else "–"
        lines.append(f"| {r['device']} | {model} | {r['batch']} | {r['frames_per_s']:.1f} | {vs_eager} | "
                     f"{r['gflop_per_frame']:.3f} | {r['fraction_of_peak']:.0%} | {g} | {e} |")
    ratios = {(r["device"], r["batch"]): r["gan_lstm_vs_convlstm"] for r in rows}
    lines.append("")
    lines.append("GAN-LSTM / ConvLSTM frames/s (shipped checkpoints): " +
                 ", ".join(f"{d} batch {b}: {v:.2f}" for (d, b), v in ratios.items()))
    plain = {(r["device"], r["batch"]): r["no_check_vs_convlstm"] for r in rows if "no_check_vs_convlstm" in r}
    if plain:
        lines.append("")
        lines.append("The same without the GAN-LSTM's context check: " + ", ".join(f"{d} batch {b}: {v:.2f}" for (d, b), v in plain.items()))
    return lines


# ---------------------------------------------------------------- OpenSTL's ConvLSTM, the external reference


class OpenStlConvLstm(nn.Module):
    """OpenSTL's ConvLSTM at its Moving-MNIST configuration, re-implemented here to be timed (not OpenSTL's code).

    Tan et al., "OpenSTL: A Comprehensive Benchmark of Spatio-Temporal Predictive Learning" (NeurIPS
    2023 Datasets and Benchmarks), configs/mmnist/ConvLSTM.py: frames cut into ``patch`` x ``patch``
    patches (64 x 64 x 1 -> 16 channels at 16 x 16), 4 stacked cells of 128 hidden channels, 5 x 5
    filters, no layer norm, bias-free convolutions, each cell's gates ``conv_x(x) + conv_h(h)``, and a
    bias-free 1 x 1 convolution back to the patch channels. Like OpenSTL it steps over all J + K - 1
    inputs (19 for 10 -> 10), feeding its own output back after the context, and draws an output every step::

        context (B, J, C, S, S) -> patches (B, J, C p^2, S/p, S/p) -> 4 cells -> (B, K, C, S, S)

    OpenSTL's cells also hold a 5 x 5 ``conv_o`` and a 1 x 1 ``conv_last`` (2 h -> h) that their
    forward never calls; they are left out, so the model has :func:`openstl_params` parameters
    (11.68M at 64 px) against the 15.08M OpenSTL counts (``unused=True``; its paper quotes 15.0M).
    """

    def __init__(self, channels: int = 1, patch: int = 4, hidden: tuple[int, ...] = (128,) * 4, kernel: int = 5):
        super().__init__()
        self.patch, self.hidden = patch, hidden
        c = channels * patch * patch
        ins = (c, *hidden[:-1])
        self.conv_x = nn.ModuleList(nn.Conv2d(i, 4 * h, kernel, padding=kernel // 2, bias=False) for i, h in zip(ins, hidden))
        self.conv_h = nn.ModuleList(nn.Conv2d(h, 4 * h, kernel, padding=kernel // 2, bias=False) for h in hidden)
        self.conv_last = nn.Conv2d(hidden[-1], c, 1, bias=False)

    def forward(self, context: Tensor, horizon: int) -> Tensor:
        """context (B, J, C, S, S) -> the next ``horizon`` frames (B, K, C, S, S)."""
        b, j = context.shape[:2]
        x = F.pixel_unshuffle(context.flatten(0, 1), self.patch).unflatten(0, (b, j))  # (B, J, C p^2, S/p, S/p)
        h = [x.new_zeros(b, n, *x.shape[-2:]) for n in self.hidden]
        c = [v.clone() for v in h]
        outs, gen = [], None
        for t in range(j + horizon - 1):
            inp = x[:, t] if t < j else gen
            for i, (cx, ch) in enumerate(zip(self.conv_x, self.conv_h)):
                gi, gf, gg, go = (cx(inp) + ch(h[i])).chunk(4, 1)  # (B, h, S/p, S/p) each
                c[i] = torch.sigmoid(gf) * c[i] + torch.sigmoid(gi) * torch.tanh(gg)
                h[i] = inp = torch.sigmoid(go) * torch.tanh(c[i])
            gen = self.conv_last(h[-1])  # (B, C p^2, S/p, S/p)
            if t >= j - 1:
                outs.append(gen)
        return F.pixel_shuffle(torch.stack(outs, 1).flatten(0, 1), self.patch).unflatten(0, (b, horizon))


def openstl_params(channels: int = 1, patch: int = 4, hidden: tuple[int, ...] = (128,) * 4, kernel: int = 5,
                   unused: bool = False) -> int:
    """Parameters of :class:`OpenStlConvLstm`; ``unused=True`` adds each OpenSTL cell's uncalled conv_o and conv_last."""
    c = channels * patch * patch
    n = sum(kernel**2 * 4 * h * (i + h) for i, h in zip((c, *hidden[:-1]), hidden)) + hidden[-1] * c
    return n + (sum(kernel**2 * 2 * h * h + 2 * h * h for h in hidden) if unused else 0)


def openstl_flops(size: int, context: int, horizon: int, channels: int = 1, patch: int = 4,
                  hidden: tuple[int, ...] = (128,) * 4, kernel: int = 5) -> int:
    """Convolution FLOPs of one sample's ``OpenStlConvLstm(...)(context, horizon)``: J + K - 1 steps (as FlopCounterMode counts).

    Every weight is a bias-free convolution tap applied once per cell of the (size/patch)^2 grid per step: 2 FLOPs each.
    """
    cells = (size // patch) ** 2
    return 2 * cells * openstl_params(channels, patch, hidden, kernel) * (context + horizon - 1)
