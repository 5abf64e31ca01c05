"""``ganlstm demo`` (what ``make demo`` runs): a thin wrapper over :func:`ganlstm.demo.run_demo`."""
from __future__ import annotations

from pathlib import Path

import click

DEMO_SEED = 3  # = ganlstm.demo.DEMO_SEED (a test checks); not imported, so that --help does not load torch


@click.command("demo")
@click.option("--out", default=Path("outputs/demo"), show_default=True, type=click.Path(path_type=Path),
              help="Directory for comparison.gif, metrics.csv, metrics.json and metrics.png.")
@click.option("--sequences", default=8, show_default=True, type=click.IntRange(1), help="Held-out mergers to simulate and score.")
@click.option("--seed", default=DEMO_SEED, show_default=True, type=int,
              help="Simulator seed of the held-out mergers (not 1 or 2: the training and benchmark test collections).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--overwrite", is_flag=True, help="Replace the outputs in a non-empty --out.")
def demo(out: Path, sequences: int, seed: int, device: str, overwrite: bool) -> None:
    """Predict held-out simulated mergers with the shipped checkpoint.

    Simulates SEQUENCES mergers the models never saw, observes 20 frames of each and predicts
    the next 30 with the shipped GAN-LSTM (checkpoints/gan_lstm.pt), the shipped ConvLSTM
    baseline (checkpoints/convlstm.pt) and persistence; prints the per-horizon table.
    """
    from ..demo import run_demo

    result = run_demo(out, sequences=sequences, seed=seed, device=device, overwrite=overwrite)
    click.echo(result.table)
    click.echo(f"wrote {', '.join(str(p) for p in result.files.values())}  ({result.seconds:.0f} s)")
