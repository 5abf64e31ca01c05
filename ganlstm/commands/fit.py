"""``ganlstm fit``: the whole user path in one command (a thin wrapper over :mod:`ganlstm.pipeline`)."""
from __future__ import annotations

import re
from pathlib import Path

import click

from ._options import existing

from ..config import FitConfig
from ..errors import GanlstmError

_C = FitConfig()
_UNITS = {"s": 1 / 60, "m": 1.0, "min": 1.0, "h": 60.0}


def parse_budget(text: str) -> float:
    """'45m', '1.5h', '90s' or a bare number of minutes -> minutes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise GanlstmError(f"--budget {text!r} is not a duration; write e.g. 45m, 1.5h or 90s.")
    return float(m.group(1)) * _UNITS[m.group(2) or "m"]


@click.command("fit")
@click.option("--data", required=True, type=click.Path(path_type=Path), callback=existing("frames"),
              help="Your frames: one movie (GIF, MP4, FITS cube, frame folder) or a directory of sequences.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the runs, fit.json and report/.")
@click.option("--budget", default=f"{_C.budget:g}m", show_default=True, help="Wall-clock budget for all stages, e.g. 45m or 1.5h.")
@click.option("--size", default=str(_C.size), show_default=True, type=click.Choice(["16", "32", "64", "128"]), help="Model frame size.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="1 gray, 3 RGB (default: 3 when the frames are colour, else 1).")
@click.option("--interval", default=_C.interval, show_default=True, type=click.IntRange(1), help="Keep every N-th frame.")
@click.option("--scaling", default=_C.scaling, show_default=True, type=click.Choice(["minmax", "fixed", "asinh", "log", "none"]),
              help="How raw pixel values map to [0, 1].")
@click.option("--context", default=_C.context, show_default=True, type=click.IntRange(1), help="Observed frames per window.")
@click.option("--horizon", default=_C.horizon, show_default=True, type=click.IntRange(1), help="Predicted frames per window.")
@click.option("--seed", default=_C.seed, show_default=True, type=int)
@click.option("--device", default=_C.device, show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--amp", default=_C.amp, show_default=True, type=click.Choice(["no", "bf16", "fp16"]), help="Mixed precision on GPU.")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (1 is fastest on a busy 2-core machine).")
@click.option("--init", default="", help="Fine-tune stage one from this train-gan prior (same size and channels; FreezeD on D's first 2 blocks).")
@click.option("--overwrite", is_flag=True, help="Start over in a non-empty --out (or one holding a fit with other settings).")
@click.option("--morphology", is_flag=True, help="The report also scores Gini, M20, C, A, the merger class, the nuclei and flux statistics (slower).")
def fit(data, out, budget, size, channels, interval, scaling, context, horizon, seed, device, amp, threads, init, overwrite, morphology) -> None:
    """From your frames to a scored model: stage one, stage two, a ConvLSTM baseline, a report.

    Run the same command again to resume after an interruption.

    \b
    Example:
      ganlstm fit --data ../shared/data/galaxy_collision/Galaxy_Collision.gif --out runs/gc --budget 60m
    """
    from ..pipeline import run_fit

    cfg = FitConfig(data=str(data), out=str(out), budget=parse_budget(budget), size=int(size),
                    channels=int(channels) if channels else None, interval=interval, scaling=scaling, context=context,
                    horizon=horizon, seed=seed, device=device, amp=amp, threads=threads, init=str(init or ""),
                    morphology=morphology)
    facts = run_fit(cfg, overwrite=overwrite)
    click.echo(Path(facts["files"]["table.txt"]).read_text())
    for line in facts["warnings"]:
        click.echo(line, err=True)
    click.echo(f"report: {Path(out) / 'report' / 'report.md'} (comparison.gif, metrics.png, metrics.json beside it)")
