"""Command-line options every training command shares: the run flags and the data flags.

``@run_options`` adds what :class:`~ganlstm.config.RunConfig` holds (budget, batch, output,
resume, seed, device, precision, checkpoints, NaN policy, workers) and ``@data_options`` the
frame-reading flags (``--data``, ``--size``, ``--interval``). Defaults come from the config
dataclasses, so the CLI never drifts from the library. :func:`run_config` turns the parsed
flags into a ``RunConfig``; :func:`refuse_on_resume` rejects flags that a resumed run must take
from its checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import click

from ..config import FrameOptions, RunConfig
from ..errors import GanlstmError

_R, _F = RunConfig(), FrameOptions()


def _stack(options: list[Callable]) -> Callable:
    def deco(f: Callable) -> Callable:
        for option in reversed(options):  # click lists options in decoration order, top first
            f = option(f)
        return f

    return deco


def run_options(kind: str) -> Callable:
    """Decorator adding the shared run flags; ``kind`` names the run directory suffix in the help ("gan", "MODEL")."""
    return _stack([
        click.option("--epochs", type=click.IntRange(1), help="Train this many epochs in total (default 10 if --max-steps is not given)."),
        click.option("--max-steps", type=click.IntRange(1), help="Train this many steps in total instead."),
        click.option("--batch-size", default=_R.batch_size, show_default=True, type=click.IntRange(1)),
        click.option("--out", default=_R.out, show_default=True, type=click.Path(path_type=Path), help=f"Runs go to OUT/<n>-{kind}/."),
        click.option("--resume", help=f"Continue a run: its last.pt, its directory, or 'last' (the newest {kind} run under --out)."),
        click.option("--seed", default=_R.seed, show_default=True, type=int),
        click.option("--split-seed", type=int, help="Seed of the train/val/test split by sequence (default: --seed). Fix it and vary --seed "
                     "to measure run-to-run spread on the same validation sequences."),
        click.option("--device", default=_R.device, show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--amp", default=_R.amp, show_default=True, type=click.Choice(["no", "bf16", "fp16"]), help="Mixed precision on GPU (ignored on CPU)."),
        click.option("--save-every", default=_R.save_every, show_default=True, type=click.IntRange(0), help="Also write last.pt every N steps (0 = once per epoch)."),
        click.option("--val-every", default=_R.val_every, show_default=True, type=click.IntRange(0),
                     help="Validate (and write last.pt) every N steps instead of after every epoch (0 = every epoch)."),
        click.option("--skip-nonfinite", is_flag=True, help="Skip a batch whose loss is NaN/Inf instead of stopping."),
        click.option("--deterministic", is_flag=True, help="torch.use_deterministic_algorithms(True)."),
        click.option("--num-workers", default=_R.num_workers, show_default=True, type=click.IntRange(0), help="DataLoader worker processes."),
        click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 1 is fastest on a busy 2-core machine)."),
    ])


def limit_options(default: bool = True) -> Callable:
    """Decorator adding ``--max-frames`` and ``--max-pixels``, the reader's memory guards.

    ``default=False`` leaves them None (commands that read with a checkpoint's recorded limits).
    """
    keep = "" if default else " (default: the checkpoint's)"
    return _stack([
        click.option("--max-frames", type=click.IntRange(1), default=_F.max_frames if default else None, show_default=default,
                     help=f"Refuse a sequence longer than this (after --interval){keep}."),
        click.option("--max-pixels", type=click.IntRange(1), default=_F.max_pixels if default else None, show_default=default,
                     help=f"Refuse frames with more pixels than this, checked from headers before decoding{keep}."),
    ])


def data_options(size_help: str = "Resize frames to SIZE x SIZE (default: keep their size).") -> Callable:
    """Decorator adding ``--data``, ``--size``, ``--interval``, ``--max-frames`` and ``--max-pixels``."""
    return _stack([
        click.option("--data", type=click.Path(path_type=Path), help="Frames: a sequence, or a directory of sequences (e.g. `ganlstm simulate` output)."),
        click.option("--size", type=click.IntRange(4), help=size_help),
        click.option("--interval", default=_F.interval, show_default=True, type=click.IntRange(1), help="Keep every N-th frame of each sequence."),
        limit_options(),
    ])


def frame_limits(o: dict) -> dict:
    """The ``--max-frames``/``--max-pixels`` values that were given, as FrameOptions fields."""
    return {k: o[k] for k in ("max_frames", "max_pixels") if o.get(k) is not None}


def run_config(o: dict) -> RunConfig:
    """A RunConfig from the parsed ``@run_options`` flags."""
    if o["epochs"] and o["max_steps"]:
        raise GanlstmError("pass either --epochs or --max-steps, not both.")
    return RunConfig(out=str(o["out"]), epochs=o["epochs"], max_steps=o["max_steps"], batch_size=o["batch_size"], seed=o["seed"],
                     split_seed=o["split_seed"],
                     device=o["device"], amp=o["amp"], num_workers=o["num_workers"], save_every=o["save_every"],
                     val_every=o.get("val_every", 0),
                     threads=o["threads"], skip_nonfinite=o["skip_nonfinite"], deterministic=o["deterministic"])


def refuse_on_resume(ctx: click.Context, names: Iterable[str]) -> None:
    """On ``--resume``, refuse flags given on the command line that the checkpoint decides."""
    given = [n for n in names if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise GanlstmError(f"{flags} cannot change on --resume (the run's settings come from its checkpoint); drop them, or start a new run.")
