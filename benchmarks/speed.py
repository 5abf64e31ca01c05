"""Speed of the rollout engine and the two trainers, measured against this machine's own limit.

Every figure is quoted against a reference measured in the same run, on the same device:

* **peak**: FLOP/s of a large float32 matmul (4096^2 on CPU, 8192^2 on CUDA), the practical
  limit of the device. It is timed inside every section's round-robin, next to the cases it is
  the reference for, so that load from other processes slows both alike; every achieved
  FLOP/s is given as a fraction of its section's peak. A large 3x3 convolution is timed the
  same way (**conv**): on CPUs where the BLAS behind the matmul (MKL) is slower than the oneDNN
  kernels behind convolutions (e.g. MKL on AMD), the convolution is the higher limit;
* **rollout**: predicted frames per second of ``ganlstm.rollout.predict`` for every model at
  64 x 64, batch 1, 8 and 64, context 10, horizon 30, random-init weights (speed does not
  depend on the weights), with the ratio to the pixel-space ConvLSTM at the same batch, and
  OpenSTL's ConvLSTM at its Moving-MNIST configuration (``speed_cases.OpenStlConvLstm``: patches of 4,
  4 x 128 channels, 5 x 5; batches <= 16) with every model's ratio to it. ``--fast-layout both`` adds
  each GAN-LSTM with ``ganlstm.models.fast_layout`` off, timed in the same round-robin;
* **decode**: the frozen generator on 64 x 30 latents, as the engine renders them (chunks on
  CPU, see ``ganlstm.rollout.RENDER_CHUNK``; channels_last weights), the same with the weights
  in the default NCHW layout, as one call, and per step (30 calls of 64);
* **train**: samples per second of one ``train_step`` of stage one (``GanTask``, frames) and of
  stage two (``ForecastTask`` on the GAN-LSTM, windows of 10 + 10 frames);
* **shipped**: the checkpoints in checkpoints/ (32 px) at batch 1 and 16, with GFLOP and generator
  and encoder frames per predicted frame, and GAN-LSTM / ConvLSTM frames/s (``speed_cases.py``).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions,
forward and backward; element-wise work is not counted, so the fractions are lower bounds).
Rollout FLOPs are counted at batch 1 and 2, checked to be linear in the batch, and scaled.
Times are medians of ``--repeats`` runs after a warm-up run, with the models measured
round-robin so that a burst of load from other processes does not land on one model only.
The 1-minute load average is recorded before and after every section::

    python benchmarks/speed.py                          # the full measurement (~16 min on 1 CPU thread)
    python benchmarks/speed.py --quick                  # a small configuration (< 1 min on 1 quiet thread): a smoke test
    python benchmarks/speed.py --threads 1 --only shipped          # the shipped checkpoints alone
    python benchmarks/speed.py --threads 1 --only shipped --compile  # ... and compiled as `predict --compile` does
    python benchmarks/speed.py --threads 1 --out speed.json
    python benchmarks/speed.py --threads 1 --only rollout --batches 1,16 --horizon 10 --fast-layout both  # issue 21's 10 -> 10
    python benchmarks/speed.py --compile --batches 8    # also torch.compile the step (benchmark-only)
    python benchmarks/speed.py --device cuda --compile --compile-mode reduce-overhead  # ... with CUDA graphs
    python benchmarks/speed.py --device cuda --amp bf16 # on a GPU, under bf16 autocast
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils._pytree import tree_map

import ganlstm.rollout as engine
from ganlstm.models import fast_layout
from ganlstm.config import ForecasterConfig, ForecastTrainConfig, GanConfig, GanTrainConfig, RunConfig
from ganlstm.device import autocast, configure_cpu
from ganlstm.models.base import build_forecaster
from ganlstm.train.distributed import Dist
from ganlstm.train.forecaster import ForecastTask
from ganlstm.train.gan import GanTask

sys.path.insert(0, str(Path(__file__).parent))
from speed_cases import (  # noqa: E402
    OPENSTL, OPENSTL_MAX_BATCH, OpenStlConvLstm, against, bench_shipped, flops, load, openstl_flops, shipped_markdown, with_references,
)

# gan_lstm/pixels is the default (ForecasterConfig.feedback): it decodes and re-encodes every closed-loop
# step; gan_lstm/latent feeds predicted latents back through the learned lift and decodes only at the end.
MODELS = ("gan_lstm/latent", "gan_lstm/pixels", "persistence", "linear", "convlstm", "predrnn", OPENSTL)
REFERENCE_MODEL = "convlstm"  # the original project's "Simple ConvLSTM": the rollout reference
SECTIONS = ("rollout", "decode", "train", "shipped")
FULL = dict(models=MODELS, size=64, batches=(1, 8, 64), context=10, horizon=30, decode=(64, 30), gan_batch=32, enc_batch=32,
            enc_context=10, enc_horizon=10, hidden=(64, 64), repeats=3)
# --quick: fewer models, 32 px, 6-frame rollouts, 2 repeats and a 2048^2 matmul reference (~0.1 s, not ~1 s, a call)
QUICK = dict(models=("gan_lstm/pixels", "persistence", REFERENCE_MODEL), size=32, batches=(1, 4), context=4, horizon=6,
             decode=(8, 6), gan_batch=8, enc_batch=4, enc_context=3, enc_horizon=3, hidden=(16, 16), repeats=2, ref_n=2048)


# ---------------------------------------------------------------- models


def gan_config(size: int) -> GanConfig:
    """The shipped recipe's prior at ``size`` (nz 512 on a 4 x 4 grid, widths 32). Tables before 2026-12-02 timed nz 64, ngf 64."""
    return GanConfig(image_size=size, nz=512, ngf=32, ndf=32, latent_grid=4)


#: The GAN-LSTM's recurrent widths (the shipped recipe's); the pixel models take the spec's ``hidden``.
GAN_LSTM_HIDDEN = (32, 32)


def forecaster(name: str, size: int, hidden: tuple[int, ...], device: torch.device):
    """A random-init forecaster in eval mode; ``gan_lstm/FEEDBACK`` names the GAN-LSTM's feedback mode."""
    torch.manual_seed(0)
    model, _, feedback = name.partition("/")
    gan = model == "gan_lstm"
    cfg = ForecasterConfig(model=model, image_size=size, hidden=GAN_LSTM_HIDDEN if gan else hidden, gan=gan_config(size) if gan else None,
                           feedback=feedback or ForecasterConfig.feedback)
    return build_forecaster(cfg).to(device).eval()


def compiled(model, mode: str = "default"):
    """The model with its ``step`` compiled by ``torch.compile`` (the engine calls ``model.step``).

    ``mode="reduce-overhead"`` also captures the step in a CUDA graph (one launch per step instead of one
    per kernel): the remedy when small models leave a GPU waiting on kernel launches.
    """
    step = torch.compile(model.step, dynamic=False, mode=mode)
    if mode != "reduce-overhead":
        model.step = step
        return model

    def graphed_step(*args, **kwargs):
        # A CUDA graph reuses its output memory at the next replay, while the engine keeps each step's
        # state for the next: mark every call as a new step and copy the outputs out of the graph's pool.
        torch.compiler.cudagraph_mark_step_begin()
        return tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, step(*args, **kwargs))

    model.step = graphed_step
    return model


# ---------------------------------------------------------------- sections


COMPILED = ("gan_lstm/latent", "gan_lstm/pixels", REFERENCE_MODEL)
FAST_OFF = " (fast layout off)"  # the twin of a GAN-LSTM case with ganlstm.models.fast_layout switched off


def fast_layout_off(fn):
    """``fn`` run with the original layers whatever the batch (ganlstm.models.fast_layout)."""
    def call():
        with fast_layout.disabled():
            return fn()
    return call


def bench_rollout(spec: dict, device: torch.device, compile_mode: str | None, amp: str, layout: str = "on") -> list[dict]:
    """Frames/s of ``predict`` for every model and batch, FLOP/s as a fraction of the peak, ratio to ConvLSTM.

    With ``compile_mode``, also the models in COMPILED with a compiled step (``<model>+compile``), and each
    one's largest absolute difference from its eager twin's frames (``max_abs_diff_vs_eager``). With
    ``layout="both"``, also every GAN-LSTM with the fast layout off (``FAST_OFF``), and ``vs_fast_layout_off``.
    OpenSTL's ConvLSTM (``OPENSTL``, not a ganlstm forecaster) is called directly under inference_mode, at
    batches up to ``OPENSTL_MAX_BATCH``; its FLOPs come from ``openstl_flops`` (checked in tests/test_speed_cases.py).
    FLOPs are counted with the fast layout off: the model's arithmetic, not the zeros of the sub-pixel rewrite.
    """
    size, j, k = spec["size"], spec["context"], spec["horizon"]
    names = list(spec["models"]) + ([f"{n}+compile" for n in COMPILED if n in spec["models"]] if compile_mode else [])
    names += [n + FAST_OFF for n in spec["models"] if n.startswith("gan_lstm") and layout == "both"]
    models = {}
    for name in names:
        base = name.removesuffix("+compile").removesuffix(FAST_OFF)
        torch.manual_seed(0)  # a compiled model and its eager twin get the same weights
        m = OpenStlConvLstm().to(device).eval() if base == OPENSTL else forecaster(base, size, spec["hidden"], device)
        models[name] = compiled(m, compile_mode) if name.endswith("+compile") else m
    rows = []
    for batch in spec["batches"]:
        torch.manual_seed(1)
        x = torch.rand(batch, j, 1, size, size)  # frames in [0, 1], as a user passes them
        timed = {n: m for n, m in models.items() if n != OPENSTL or batch <= OPENSTL_MAX_BATCH}
        per_sample = {}
        for name, m in timed.items():
            if name.endswith("+compile") or name.endswith(FAST_OFF):  # the same arithmetic as the eager model (counted there)
                continue
            if name == OPENSTL:
                per_sample[name] = openstl_flops(size, j, k)
                continue
            with fast_layout.disabled():
                f1, f2 = (flops(lambda n=n, m=m: engine.predict(m, x[:1].expand(n, -1, -1, -1, -1), k, amp=amp)) for n in (1, 2))
            if f2 != 2 * f1:
                raise RuntimeError(f"{name}: FLOPs are not linear in the batch ({f1} at 1, {f2} at 2)")
            per_sample[name] = f1
        for name in timed:
            per_sample.setdefault(name, per_sample[name.removesuffix("+compile").removesuffix(FAST_OFF)])
        load0 = load()
        cases = {name: (lambda m=m: engine.predict(m, x, k, amp=amp)) for name, m in timed.items()}
        if OPENSTL in timed:
            xd = x.to(device)
            cases[OPENSTL] = lambda m=timed[OPENSTL]: _inference(lambda: m(xd, k), device, amp)
        cases = {name: fast_layout_off(fn) if name.endswith(FAST_OFF) else fn for name, fn in cases.items()}
        seconds, refs = with_references(cases, spec["repeats"], device, spec.get("ref_n"))
        load1 = load()
        fps = {name: batch * k / s for name, s in seconds.items()}
        for name, s in seconds.items():
            achieved = per_sample[name] * batch / s
            extra = {}
            if name.endswith("+compile"):
                eager = engine.predict(models[name.removesuffix("+compile")], x, k, amp=amp)
                extra = {"max_abs_diff_vs_eager": float((engine.predict(models[name], x, k, amp=amp) - eager).abs().max())}
            if name + FAST_OFF in fps:
                extra["vs_fast_layout_off"] = fps[name] / fps[name + FAST_OFF]
            if OPENSTL in fps:
                extra["vs_openstl"] = fps[name] / fps[OPENSTL]
            rows.append({**extra,
                "device": device.type, "model": name, "batch": batch, "horizon": k, "context": j, "size": size,
                "seconds": s, "frames_per_s": fps[name], "vs_convlstm": fps[name] / fps[REFERENCE_MODEL],
                "gflop_per_sample": per_sample[name] / 1e9, "gflop_per_frame": per_sample[name] / k / 1e9,
                "flop_per_s": achieved, **against(achieved, refs), "load": [load0, load1],
            })
    return rows


def _inference(fn, device: torch.device, amp: str):
    with torch.inference_mode(), autocast(device, amp):
        return fn()


def bench_decode(spec: dict, device: torch.device, amp: str) -> list[dict]:
    """The generator on B x K latents: as the engine renders them, in one call, and one call per step."""
    b, k = spec["decode"]
    model = forecaster("gan_lstm/latent", spec["size"], spec["hidden"], device)
    z = torch.randn(b, k, model.nz, device=device)  # (B, K, nz): a whole rollout's latents
    nchw = copy.deepcopy(model)
    nchw.generator.to(memory_format=torch.contiguous_format)  # the layout before GanLstm chose channels_last
    per_frame = flops(lambda: model.render(z[0, :1]))
    cases = {
        "engine (render_all)": lambda: engine.render_all(model, z),
        "engine, NCHW generator": lambda: engine.render_all(nchw, z),
        "one call": lambda: model.render(z.flatten(0, 1)),
        "per step": lambda: [model.render(z[:, t]) for t in range(k)],
    }
    load0 = load()
    with torch.inference_mode(), autocast(device, amp):
        seconds, refs = with_references(cases, spec["repeats"], device, spec.get("ref_n"))
    load1 = load()
    return [{"device": device.type, "case": name, "frames": b * k, "seconds": s, "frames_per_s": b * k / s,
             "flop_per_s": per_frame * b * k / s, **against(per_frame * b * k / s, refs), "load": [load0, load1]}
            for name, s in seconds.items()]


def bench_train(spec: dict, device: torch.device, amp: str) -> list[dict]:
    """Samples/s of one training step of stage one (frames) and stage two (windows), and their FLOP/s."""
    size = spec["size"]
    run = RunConfig(batch_size=spec["gan_batch"], device=device.type, amp=amp, progress=False)
    gan = GanTask(GanTrainConfig(model=gan_config(size)), run, device, Dist(), [], steps_per_epoch=1)
    frames = torch.rand(spec["gan_batch"], 1, size, size)
    enc_cfg = ForecastTrainConfig(
        model=ForecasterConfig(model="gan_lstm", image_size=size, hidden=GAN_LSTM_HIDDEN, gan=gan_config(size)),
        context=spec["enc_context"], horizon=spec["enc_horizon"],
    )
    torch.manual_seed(0)
    enc = ForecastTask(enc_cfg, run, build_forecaster(enc_cfg.model), device, Dist(), [], total=1000, steps_per_epoch=100)
    windows = (torch.rand(spec["enc_batch"], spec["enc_context"], 1, size, size),
               torch.rand(spec["enc_batch"], spec["enc_horizon"], 1, size, size))
    steps = {"stage one (GAN)": (lambda: gan.train_step(frames, 100), spec["gan_batch"], "frames"),
             "stage two (GAN-LSTM, pixel feedback)": (lambda: enc.train_step(windows, 100), spec["enc_batch"],
                                      f"windows {spec['enc_context']}+{spec['enc_horizon']}")}
    per_step = {name: flops(fn) for name, (fn, _, _) in steps.items()}
    load0 = load()
    seconds, refs = with_references({name: fn for name, (fn, _, _) in steps.items()}, spec["repeats"], device, spec.get("ref_n"))
    load1 = load()
    return [{"device": device.type, "stage": name, "batch": batch, "sample": unit, "seconds_per_step": seconds[name],
             "samples_per_s": batch / seconds[name], "gflop_per_step": per_step[name] / 1e9,
             "flop_per_s": per_step[name] / seconds[name], **against(per_step[name] / seconds[name], refs),
             "load": [load0, load1]}
            for name, (_, batch, unit) in steps.items()]


# ---------------------------------------------------------------- report


def markdown(result: dict) -> str:
    """The tables; "of peak" / "of conv" divide by the references timed in the same round-robin (last table)."""
    m = result["machine"]
    lines = [f"machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}, {result['threads']} thread(s); "
             f"1-min load average {result['load_start']:.2f} at start, {result['load_end']:.2f} at end"]
    if result["rollout"]:
        lines += ["", "| device | model | batch | frames/s | × ConvLSTM | × OpenSTL | GFLOP/sample | GFLOP/frame | GFLOP/s | of peak | of conv |",
                  "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in result["rollout"]:
        fracs = f"{r['fraction_of_peak']:.0%} | {r['fraction_of_conv']:.0%}" if r["gflop_per_sample"] else "– | –"
        model = r["model"] + (f" (max diff {r['max_abs_diff_vs_eager']:.1e})" if "max_abs_diff_vs_eager" in r else "")
        vs_openstl = f"{r['vs_openstl']:.1f}" if "vs_openstl" in r else "–"
        lines.append(f"| {r['device']} | {model} | {r['batch']} | {r['frames_per_s']:.1f} | {r['vs_convlstm']:.2f} | {vs_openstl} | "
                     f"{r['gflop_per_sample']:.2f} | {r['gflop_per_frame']:.3f} | {r['flop_per_s'] / 1e9:.1f} | {fracs} |")
    offs = [r for r in result["rollout"] if "vs_fast_layout_off" in r]
    if offs:
        lines += ["", "Fast layout on ÷ off, frames/s (ganlstm/models/fast_layout.py): " +
                  ", ".join(f"{r['model']} batch {r['batch']}: {r['vs_fast_layout_off']:.2f}" for r in offs)]
    if result["decode"]:
        lines += ["", "| device | decode of B×K latents | frames | frames/s | GFLOP/s | of peak | of conv |", "|---|---|--:|--:|--:|--:|--:|"]
    for r in result["decode"]:
        lines.append(f"| {r['device']} | {r['case']} | {r['frames']} | {r['frames_per_s']:.1f} | {r['flop_per_s'] / 1e9:.1f} | "
                     f"{r['fraction_of_peak']:.0%} | {r['fraction_of_conv']:.0%} |")
    if result["train"]:
        lines += ["", "| device | training step | batch | samples/s | GFLOP/step | GFLOP/s | of peak | of conv |", "|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in result["train"]:
        lines.append(f"| {r['device']} | {r['stage']} ({r['sample']}) | {r['batch']} | {r['samples_per_s']:.2f} | "
                     f"{r['gflop_per_step']:.1f} | {r['flop_per_s'] / 1e9:.1f} | {r['fraction_of_peak']:.0%} | {r['fraction_of_conv']:.0%} |")
    lines += shipped_markdown(result["shipped"])
    lines += ["", "| device | section | matmul peak GFLOP/s | conv GFLOP/s |", "|---|---|--:|--:|"]
    for section in SECTIONS:
        seen = []
        for r in result[section]:
            batched = section in ("rollout", "shipped")
            key = (r["device"], r["batch"] if batched else None)
            if key not in seen:
                seen.append(key)
                label = section + (f" (batch {r['batch']})" if batched else "")
                lines.append(f"| {r['device']} | {label} | {r['peak_flop_per_s'] / 1e9:.1f} | {r['conv_flop_per_s'] / 1e9:.1f} |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (32 px, short rollouts): a smoke test")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--repeats", type=int, help="timed runs per case (median reported); default 3, 2 with --quick")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="all = CPU, and CUDA when present")
    parser.add_argument("--only", type=lambda v: tuple(v.split(",")), default=SECTIONS, help=f"sections to run, e.g. shipped (default {','.join(SECTIONS)})")
    parser.add_argument("--compile", action="store_true", help="also roll out with torch.compile'd steps (gan_lstm, convlstm)")
    parser.add_argument("--compile-mode", default="default", choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs"),
                        help="torch.compile mode of --compile (reduce-overhead: CUDA graphs)")
    parser.add_argument("--batches", type=lambda v: tuple(int(b) for b in v.split(",")), help="rollout batch sizes, e.g. 8,64 (default 1,8,64)")
    parser.add_argument("--amp", choices=("no", "bf16", "fp16"), default="no", help="autocast on CUDA (the references stay float32)")
    parser.add_argument("--models", type=lambda v: tuple(v.split(",")), help=f"rollout models (default {','.join(MODELS)}; {REFERENCE_MODEL} is always in)")
    parser.add_argument("--horizon", type=int, help="predicted frames per rollout (default 30, 6 with --quick); 10 is OpenSTL's 10 -> 10")
    parser.add_argument("--fast-layout", choices=("on", "off", "both"), default="on",
                        help="ganlstm/models/fast_layout.py's rewrites (CPU, large batches); both: also time every GAN-LSTM with them off")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    if set(args.only) - set(SECTIONS):
        parser.error(f"--only {','.join(args.only)}: choose among {', '.join(SECTIONS)}")
    began = time.perf_counter()

    spec = dict(QUICK if args.quick else FULL)
    if args.repeats:
        spec["repeats"] = args.repeats
    if args.batches:
        spec["batches"] = args.batches
    if args.horizon:
        spec["horizon"] = args.horizon
    if args.models:
        if set(args.models) - set(MODELS):
            parser.error(f"--models {','.join(args.models)}: choose among {', '.join(MODELS)}")
        spec["models"] = tuple(dict.fromkeys((*args.models, REFERENCE_MODEL)))
    fast_layout.ENABLED = args.fast_layout != "off"
    torch.set_num_threads(args.threads)
    configure_cpu()  # flush denormals, as the trainers do on CPU
    devices = [torch.device(d) for d in (("cpu", "cuda") if args.device == "all" else (args.device,))
               if d == "cpu" or torch.cuda.is_available()]
    result: dict = {
        "command": "python " + " ".join(sys.argv),
        "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "threads": args.threads, "amp": args.amp, "spec": spec, "load_start": load(),
        **{section: [] for section in SECTIONS},
    }
    mode = args.compile_mode if args.compile else None
    for device in devices:
        for section, run in (("rollout", lambda: bench_rollout(spec, device, mode, args.amp, args.fast_layout)),
                             ("decode", lambda: bench_decode(spec, device, args.amp)),
                             ("train", lambda: bench_train(spec, device, args.amp)),
                             ("shipped", lambda: bench_shipped(spec, device, mode, args.amp))):
            if section not in args.only:
                continue
            start = time.perf_counter()
            result[section] += run()
            print(f"{device.type} {section}: {time.perf_counter() - start:.0f} s, load {load():.2f}", file=sys.stderr, flush=True)
    result["load_end"] = load()
    result["wall_s"] = time.perf_counter() - began
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    print(f"\nwall time {result['wall_s']:.0f} s (1-min load average {result['load_start']:.2f} at start, {result['load_end']:.2f} at end)")


if __name__ == "__main__":
    main()
