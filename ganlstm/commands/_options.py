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


_MISSING = {
    "frames": "{path} does not exist; check the path (a frame directory, GIF/MP4, .npy/.npz or FITS file).",
    "checkpoint": "checkpoint {path} does not exist; check the path (run directories hold best.pt and last.pt).",
}


def existing(kind: str) -> Callable:
    """A click callback refusing a path that does not exist, before any heavy import (``kind``: frames | checkpoint)."""

    def check(ctx: click.Context, param: click.Parameter, value):
        for v in value if isinstance(value, tuple) else (value,):
            if v is not None and not Path(v).exists():
                raise GanlstmError(_MISSING[kind].format(path=v))
        return value

    return check


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
        click.option("--data", type=click.Path(path_type=Path), callback=existing("frames"), help="Frames: a sequence, or a directory of sequences (e.g. `ganlstm simulate` output)."),
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
    """On ``--resume`` of a run without ``config.toml`` (older runs): refuse any flag the checkpoint decides."""
    given = [n for n in names if _given(ctx, n)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise GanlstmError(f"{flags} cannot change on --resume (the run's settings come from its checkpoint); drop them, or start a new run.")


def _given(ctx: click.Context, name: str) -> bool:
    """True when flag ``name`` was typed on the command line or came from ``--config``."""
    return ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.DEFAULT_MAP)


def settle_resume(ctx: click.Context, o: dict, names: Iterable[str], task_name: str) -> None:
    """``--resume``: the run's own flags apply unless given; a given flag that the run decides must equal its value.

    The run's flags are its ``config.toml`` (written when it started): so a resumed 40-step run
    stops at step 40 and saves as often as before unless ``--max-steps`` / ``--save-every`` say
    otherwise, and re-running the original command with ``--resume last`` added is accepted.
    A flag in ``names`` (the architecture, the data, the loss) that differs from the run's is
    refused, naming both values. Runs written before ``config.toml`` existed fall back to
    :func:`refuse_on_resume`. Fills ``o`` in place.
    """
    from ..train.runs import resolve_resume
    from ._config_file import load_toml, processed

    run_dir = resolve_resume(o["resume"], o["out"], task_name).parent
    saved_file = run_dir / "config.toml"
    if not saved_file.is_file():
        refuse_on_resume(ctx, names)
        return
    params = {p.name: p for p in ctx.command.params if p.name}
    saved = {k.replace("-", "_"): v for k, v in load_toml(saved_file).items()}
    budget_given = _given(ctx, "epochs") or _given(ctx, "max_steps")
    names, differ = set(names), []
    for name, raw in saved.items():
        if name not in params or name not in o:
            continue
        value = processed(ctx, params[name], raw)
        if _given(ctx, name):
            if name in names and value != o[name]:
                differ.append(f"--{name.replace('_', '-')} {_shown(o[name])} (the run's: {_shown(value)})")
        elif not (budget_given and name in ("epochs", "max_steps")):
            o[name] = value
    if differ:
        raise GanlstmError(f"{', '.join(differ)} cannot change on --resume, since the run was built with its own values "
                           f"({saved_file}); drop the flag, or start a new run.")


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)
