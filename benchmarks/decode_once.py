"""One decode per predicted frame: the GAN-LSTM's pixel-feedback rollout with and without reusing its drawings.

Before, each closed-loop step decoded G(z) to read the prediction back, and the final batched render
decoded every latent again: 2K generator frames for K predicted. Now the frame drawn inside the loop is
both returned and read back (``Forecaster.draws_while_rolling``). Switching that attribute off gives
the old path on the same weights, so the two are timed in one process, interleaved, on one thread:

    python benchmarks/decode_once.py [--checkpoint checkpoints/gan_lstm_32.pt] [--steps 30] [--rounds 5]

Prints, per batch size, the median seconds of each path, their ratio, and the generator and encoder
frames per predicted frame that each path ran (counted with forward hooks).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ganlstm.rollout import predict
from ganlstm.train.forecaster import load_forecaster


def _counter(module: torch.nn.Module) -> dict:
    seen = {"frames": 0}
    module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("frames", seen["frames"] + args[0].shape[0]))
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/gan_lstm_32.pt")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--context", type=int, default=20)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model, _ = load_forecaster(args.checkpoint, "cpu")
    if not model.draws_while_rolling:
        raise SystemExit(f"{args.checkpoint} does not use pixel feedback: it never decoded twice")
    decoded, encoded = _counter(model.generator), _counter(model.encoder)
    size, channels = model.cfg.image_size, model.cfg.channels
    print(f"{args.checkpoint}: {channels}x{size}px, j={args.context} -> k={args.steps}, 1 thread, median of {args.rounds} interleaved rounds")
    print("| batch | reuse drawings (s) | decode again (s) | speed-up | G frames / predicted frame (new, old) | E frames / predicted frame (new, old) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b in (int(x) for x in args.batches.split(",")):
        frames = torch.rand(b, args.context, channels, size, size, generator=torch.Generator().manual_seed(0))
        times = {True: [], False: []}
        counts = {}
        for _ in range(args.rounds + 1):  # the first round warms up and is not counted
            for reuse in (True, False):
                type(model).draws_while_rolling = property(lambda self, r=reuse: r and self.lift is None)
                decoded["frames"] = encoded["frames"] = 0
                t0 = time.perf_counter()
                predict(model, frames, args.steps)
                times[reuse].append(time.perf_counter() - t0)
                counts[reuse] = (decoded["frames"] / (b * args.steps), (encoded["frames"] - b * args.context) / (b * args.steps))
        new, old = (statistics.median(times[r][1:]) for r in (True, False))
        print(f"| {b} | {new:.3f} | {old:.3f} | {old / new:.2f}x | {counts[True][0]:.2f}, {counts[False][0]:.2f} | "
              f"{counts[True][1]:.2f}, {counts[False][1]:.2f} |")


if __name__ == "__main__":
    main()
