"""Parameters and FLOPs of the model zoo at OpenSTL's Moving-MNIST setting, beside OpenSTL's published figures.

The setting (OpenSTL ``configs/mmnist/*.py``): 64x64 frames, 1 channel, 10 frames in, 10 out.
The recurrent models use 4 layers of 128 channels, 5x5 kernels and 4x4 patches; SimVP uses
``hid_S = 64, hid_T = 512, N_S = 4, N_T = 8``. Our ``cfg`` expresses all of that except the
patch size, which is a class attribute of PredRNN, MIM and E3D-LSTM (2 by default): this
script alone sets it to 4 on subclasses. SimVP's widths are ``cfg.hidden = (hid_S, hid_T)``.
ConvLSTM, ConvGRU and TrajGRU use the project's stride-2 skeleton (cells at H/2, not H/4),
so they are not OpenSTL's ConvLSTM, which runs on 4x4 patches.

FLOPs are :func:`ganlstm.flops.count_flops` (multiply-add = 2) over a 10 -> 10 rollout, times
the 10 predicted frames: one sample. OpenSTL's table uses fvcore, which counts a multiply-add
as one "FLOP", so the comparable column is ours halved (GMAC). Models are built on the meta
device, so nothing is computed and the script takes seconds (``--device cpu`` runs it for real).

Usage (the table in docs/benchmarks.md)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/model_sizes.py --threads 1
"""
from __future__ import annotations

import argparse

import torch

from ganlstm.config import ForecasterConfig
from ganlstm.flops import count_flops, count_params
from ganlstm.models.base import FORECASTERS, _import_builtin_models

SIZE, CHANNELS, CONTEXT, HORIZON = 64, 1, 10, 10
RNN = dict(hidden=(128, 128, 128, 128), kernel=5)

#: (label, registry name, cfg fields, class-attribute overrides, OpenSTL params (M), OpenSTL GFLOPs (fvcore = GMAC))
MODELS = [
    ("ConvLSTM", "convlstm", RNN, {}, 15.0, 56.8),
    ("ConvGRU", "convgru", RNN, {}, None, None),
    ("TrajGRU", "trajgru", RNN, {}, None, None),
    ("PredRNN", "predrnn", RNN, {"patch": 4}, 23.8, 116.0),
    ("MIM", "mim", RNN, {"patch": 4}, 38.0, 179.2),
    ("E3D-LSTM", "e3dlstm", RNN, {"patch": 4}, 51.0, 298.9),
    ("SimVP", "simvp", dict(hidden=(64, 512)), {}, 58.0, 19.4),
]


def build(name: str, fields: dict, overrides: dict, device: str) -> torch.nn.Module:
    _import_builtin_models()
    cls = FORECASTERS[name]
    if overrides:  # a subclass, so the registered class keeps its defaults
        cls = type(cls.__name__, (cls,), overrides)
    with torch.device(device):
        model = cls(ForecasterConfig(model=name, image_size=SIZE, channels=CHANNELS, **fields))
    if "patch" in overrides:
        model.grid = SIZE // overrides["patch"]  # PredRNN derives its state grid as H/2 whatever the patch
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (for --device cpu)")
    ap.add_argument("--device", default="meta", help="meta (count from shapes, instant) or cpu (compute the rollout)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{SIZE}x{SIZE}, {CHANNELS} channel, {CONTEXT} -> {HORIZON} frames; GFLOP and GMAC per sample (10 predicted frames)\n")
    print("| model | setting | params (M) | OpenSTL params (M) | GFLOP (ours, MAC = 2) | GMAC (ours) | OpenSTL \"GFLOPs\" (fvcore, = GMAC) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, name, fields, overrides, ref_params, ref_flops in MODELS:
        model = build(name, fields, overrides, args.device)
        params = count_params(model) / 1e6
        gflop = count_flops(model, CONTEXT, HORIZON) * HORIZON
        setting = ", ".join([f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in {**fields, **overrides}.items()])

        def ref(x: float | None, ours: float) -> str:
            return "—" if x is None else f"{x:.1f} ({ours / x - 1:+.0%})"

        print(f"| {label} | {setting} | {params:.1f} | {ref(ref_params, params)} | {gflop:.1f} | {gflop / 2:.1f} | {ref(ref_flops, gflop / 2)} |")
    print("\nConvLSTM, ConvGRU, TrajGRU: the project's stride-2 skeleton runs the cells at 32x32 (OpenSTL's ConvLSTM: 16x16 on 4x4 patches),"
          "\nso each weight costs 4x the MACs. E3D-LSTM: our 3D convolutions compute both slices of the tau=2 window; OpenSTL's compute"
          "\none and copy it (nearest interpolation), half the convolution MACs.")


if __name__ == "__main__":
    main()
