"""`ganlstm simulate`: write simulated galaxy mergers as PNG frame sequences.

Thin wrapper over :func:`ganlstm.data.simulate.simulate_dataset`; the physics and the
parameter ranges are described in ``docs/simulator.md``.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.command("simulate")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write seq_0000/frame_0000.png ... into.")
@click.option("--sequences", type=click.IntRange(min=1), default=100, show_default=True, help="Number of mergers.")
@click.option("--frames", type=click.IntRange(min=1), default=60, show_default=True, help="Frames per merger.")
@click.option("--size", type=click.IntRange(min=4), default=64, show_default=True, help="Frame width and height in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sequence i depends only on (seed, i).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes simulating in parallel (same output).")
@click.option("--overwrite", is_flag=True, help="Replace the sequences in a non-empty --out.")
def simulate(out: Path, sequences: int, frames: int, size: int, seed: int, workers: int, overwrite: bool) -> None:
    """Simulate galaxy mergers (restricted N-body + dynamical friction) and write them as PNG frames."""
    from ..data.simulate import simulate_dataset

    path = simulate_dataset(out, sequences, frames, size, seed, overwrite=overwrite, progress=True, workers=workers)
    click.echo(f"wrote {sequences} sequences of {frames} frames ({size}x{size}) to {path}")
