"""``ganlstm evaluate`` and ``ganlstm benchmark``: thin wrappers over :mod:`ganlstm.evaluation`."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import GanlstmError
from ._options import existing

#: ganlstm.benchmark.LEARNED_MODELS, spelled out so that `ganlstm --help` does not import torch (tests/test_model_cost.py checks it).
BENCHMARK_MODELS = "gan_lstm,convlstm,predrnn,convgru,trajgru,e3dlstm,mim,simvp"


@click.command("evaluate")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(path_type=Path), callback=existing("checkpoint"),
              help="A forecaster checkpoint or run directory (repeat for several). persistence and linear are always included.")
@click.option("--data", required=True, type=click.Path(path_type=Path), callback=existing("frames"), help="Frames: a directory of sequences (or one sequence).")
@click.option("--context", required=True, type=click.IntRange(1), help="Observed frames J per window.")
@click.option("--horizon", required=True, type=click.IntRange(1), help="Predicted frames K per window (closed loop).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for metrics.csv, metrics.json, metrics.png.")
@click.option("--split", default="auto", show_default=True, type=click.Choice(["auto", "test", "all"]),
              help="test: the checkpoints' recorded test sequences; all: every sequence of --data; "
                   "auto: test if --data is the collection they were trained on, else all.")
@click.option("--size", type=click.IntRange(4), help="Resize frames (only without --checkpoint; checkpoints fix the size).")
@click.option("--stride", type=click.IntRange(1), help="Frames between window starts (default: --horizon, so no frame is a target twice).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--amp", default="no", show_default=True, type=click.Choice(["no", "bf16", "fp16"]), help="Mixed precision on GPU (ignored on CPU).")
@click.option("--overwrite", is_flag=True, help="Replace existing metrics files in --out.")
@click.option("--morphology", is_flag=True, help="Also score Gini, M20, concentration, asymmetry, the Gini-M20 merger class, "
              "the nuclei separation and coalescence time, and the flux statistics (slower; see docs/astronomy.md).")
def evaluate(checkpoints, data, context, horizon, out, split, size, stride, batch_size, device, amp, overwrite, morphology) -> None:
    """Compare models on the same windows: per-horizon MSE/MAE/PSNR/SSIM/sharpness.

    Every model predicts K frames from J observed ones on every window (windows start every
    --stride frames, by default K). It says how many sequences and windows it scored. Writes OUT/metrics.csv (model, horizon, metric, value), OUT/metrics.json and
    OUT/metrics.png, and prints horizons 1, K/2, K and the mean.
    """
    from ..evaluation import evaluate_checkpoints, persistence_warnings
    from ..results import check_outputs, format_astro_table, format_table, write_metrics

    if not overwrite and data.is_dir() and data.resolve() in (out.resolve(), *out.resolve().parents):
        # metrics.png inside a frame collection would be read back as a frame (or a whole sequence) next time.
        raise GanlstmError(f"--out {out} is inside --data {data}; choose another --out (or pass --overwrite).")
    check_outputs(out, overwrite)  # before minutes of work
    result = evaluate_checkpoints(checkpoints, data, context, horizon, split=split, size=size, batch_size=batch_size,
                                  device=device, amp=amp, stride=stride,
                                  scores=("diversity", "morphology") if morphology else ("diversity",))
    paths = write_metrics(result, out, overwrite=overwrite)
    held = len(result.info["sequence_names"])
    short = held - result.sequences
    click.echo(format_table(result))
    if morphology:
        click.echo(format_astro_table(result))
    click.echo(f"scored {result.windows} windows from {result.sequences} of {held} sequences (split: {result.info['split']}, "
               f"a window every {stride or horizon} frames)"
               + (f"; {short} sequence(s) shorter than {context} + {horizon} frames gave no window" if short else ""))
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))
    for line in persistence_warnings(result):
        click.echo(line, err=True)


def _parse_named(values: tuple[str, ...]) -> dict[str, str]:
    named = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise GanlstmError(f"--checkpoint {v!r} is not NAME=PATH; write e.g. --checkpoint convlstm=runs/002-convlstm.")
        if name in named:
            raise GanlstmError(f"--checkpoint {name}=... is given twice; pass each name once.")
        named[name] = path
    return named


@click.command("benchmark")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for data, runs and results.")
@click.option("--quick", is_flag=True, help="A tiny smoke-test configuration (16 px, a few steps; about a minute): not a result.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=PATH",
              help="Use this checkpoint instead of training NAME (gan or any of --models), or add another forecaster under NAME.")
@click.option("--models", default=BENCHMARK_MODELS, show_default=True,
              help="Learned models to train and compare (comma-separated subset of the default: every trainable registered model).")
@click.option("--steps", type=click.IntRange(1),
              help="Forecasting steps for every learned model instead of the spec's (1000; --quick 4). Stage one and the reader warm-up keep theirs.")
@click.option("--mnist", type=click.Path(path_type=Path), help="Run on Moving MNIST instead: the standard mnist_test_seq.npy ((20, N, 64, 64) uint8).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 1 is fastest on a busy 2-core machine).")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty --out (data and results are replaced, runs added).")
@click.option("--size", type=click.Choice(["32", "64", "128"]), help="The merger benchmark's frame size (default 64; 32 is the earlier spec "
              "that the 32 px shipped checkpoints were measured on). The same mergers, models and budget.")
def benchmark(out, quick, checkpoints, models, steps, mnist, device, threads, overwrite, size) -> None:
    """Run the reproducible benchmark: simulate, train, evaluate, tabulate.

    The merger benchmark (64 px; --size 32 for the earlier spec) simulates fixed train/test collections (seeds 1 and 2), trains
    gan (stage one) -> gan_lstm and every other learned model (convlstm, predrnn, convgru,
    trajgru, e3dlstm, mim, simvp) for the same budget (docs/benchmarks.md), evaluates them with
    persistence and linear at j=10 -> k=10 and j=20 -> k=30, and measures each model's
    parameters, GFLOP per predicted frame and predicted frames/s on this machine.
    """
    import dataclasses

    from ..benchmark import benchmark_spec, run_benchmark
    from ..model_cost import ModelCost, format_costs
    from ..results import format_table

    spec = benchmark_spec(quick=quick, mnist=mnist is not None, size=int(size) if size else None)
    if steps is not None:
        spec = dataclasses.replace(spec, forecaster_steps=steps)
    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    results = run_benchmark(spec, out, mnist_path=mnist, checkpoints=_parse_named(checkpoints), models=chosen,
                            device=device, threads=threads, overwrite=overwrite)
    for task, ev in results.items():
        click.echo(format_table(ev, horizons=(1, ev.horizon // 2, 10, 30)) + "\n")
        cost = ev.info["cost"]
        click.echo(f"size and speed (at j={cost['context']} -> k={cost['horizon']}), MSE and SSIM:\n"
                   + format_costs({n: ModelCost(**c) for n, c in cost["models"].items()}, ev) + "\n")
    click.echo(f"wrote {out}/tables.md, {out}/benchmark.json and " + ", ".join(f"{out}/{t}/metrics.*" for t in results))
