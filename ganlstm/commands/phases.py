"""``ganlstm phases``: label every frame of a collection with its merger phase, from the generator latent (a thin wrapper over :mod:`ganlstm.phases`)."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import GanlstmError
from ._options import existing


@click.command("phases")
@click.option("--checkpoint", type=click.Path(path_type=Path), callback=existing("checkpoint"),
              help="A gan_lstm forecaster checkpoint or run directory (train-encoder; default: the shipped one).")
@click.option("--data", required=True, type=click.Path(path_type=Path), callback=existing("frames"),
              help="Frames: a directory of sequences (e.g. `ganlstm simulate` output, whose params.json give the true phases) or one sequence.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for phases.json, phases.png and phase_frames.png.")
@click.option("--k", default=4, show_default=True, type=click.IntRange(2), help="Clusters (4: approach, first passage, coalescence, remnant).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the k-means starts.")
@click.option("--smooth", is_flag=True, help="Smooth the labels in time (majority of 3 neighbours); measured not to help on the simulator.")
@click.option("--max-sequences", type=click.IntRange(1), help="Label only the first N sequences (natural order).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 1 is fastest on a busy 2-core machine).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out, replacing its phase files.")
def phases(checkpoint: Path | None, data: Path, out: Path, k: int, seed: int, smooth: bool, max_sequences: int | None,
           device: str, threads: int | None, overwrite: bool) -> None:
    """Label every frame with its merger phase: k-means of the encoder's latents, clusters named by when they occur.

    Writes OUT/phases.json (per sequence: its labels by phase name and, where it has a
    params.json, its true phases and the adjusted Rand index), OUT/phases.png (one strip per
    sequence) and OUT/phase_frames.png (frames of each phase), and prints the ARI against the
    true phases next to the time-only baseline's (phases by quartiles of t / (T - 1)).
    """
    out_dir = Path(out)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:  # instant, before torch loads
        raise GanlstmError(f"--out {out} is not empty; choose another --out or pass --overwrite.")
    from ..device import torch_threads
    from ..phases import check_output_dir, phases_to_directory
    from ..predictor import Predictor

    check_output_dir(out, data, overwrite)
    with torch_threads(threads):
        predictor = Predictor.from_checkpoint(checkpoint, device=device)
        report = phases_to_directory(predictor, data, out, k=k, seed=seed, smooth=smooth, max_sequences=max_sequences, overwrite=overwrite)
    scores = (f"; ARI vs the true phases {report['ari']:.3f} (time-only baseline {report['time_ari']:.3f})"
              if report["ari"] is not None else "; no params.json beside every sequence, so no true phases to score")
    click.echo(f"phases: {report['sequences_count']} sequences, {report['frames']} frames, k={k}{scores}; wrote {out / 'phases.json'}, {out / 'phases.png'}")
