"""Run directories: a new numbered one per run (``config.json`` before step 0), finding the one to
resume, restoring a task from its checkpoint, and cleaning up after a kill. Only rank 0 writes."""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ..checkpoint import load_checkpoint, load_state
from ..rng import set_rng_state
from ..checkpoint_checks import check_optimizer_state, malformed
from ..config import RunConfig, save_json
from ..errors import GanlstmError
from .distributed import Dist
from .task import FitState, TrainTask


def create_run_dir(out: str | Path, name: str) -> Path:
    """A new numbered run directory ``<out>/<n>-<name>/``; existing runs are never touched."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"--out {out} is a file, not a directory; choose a directory for runs.")
    out.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"(\d+)-", p.name))]
    n = max(numbers, default=-1) + 1
    while True:
        run = out / f"{n:03d}-{name}"
        try:
            run.mkdir()
            return run
        except FileExistsError:  # a concurrent run took this number
            n += 1


def resolve_resume(resume: str, out: str | Path, name: str) -> Path:
    """``last`` -> the newest ``<out>/*-<name>/last.pt``; a run dir -> its last.pt; a file -> itself."""
    if resume == "last":
        runs = sorted(
            (p for p in Path(out).glob(f"*-{name}") if (p / "last.pt").is_file()),
            key=lambda p: int(p.name.split("-")[0]) if p.name.split("-")[0].isdigit() else -1,
        )
        if not runs:
            raise GanlstmError(f"--resume last found no {name} run with a last.pt under {out}; start without --resume or pass a checkpoint path.")
        return runs[-1] / "last.pt"
    p = Path(resume)
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise GanlstmError(f"--resume {resume}: no checkpoint at {p}; pass a last.pt file, its run directory, or 'last'.")
    return p


def remove_orphan_temp_files(run_dir: Path) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files of atomic writes cut off by a kill; returns what was removed.

    A SIGKILL during ``save_checkpoint`` leaves its temp file behind (the real file is intact).
    One process trains in a run directory, so when training starts none of them is in use.
    """
    orphans = sorted(Path(run_dir).glob(".*.tmp"))
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans


def new_run_dir(out: str | Path, task_name: str, config: dict) -> Path:
    """A new numbered run directory with its ``samples/`` folder and ``config.json`` (written before step 0)."""
    run_dir = create_run_dir(out, task_name)
    (run_dir / "samples").mkdir(exist_ok=True)
    save_json(config, run_dir / "config.json")
    return run_dir


def is_run_dir_of(directory: Path, out: str | Path) -> bool:
    """Whether ``directory`` is a run directory of ``out``: a direct child of it holding ``config.json``."""
    directory = Path(directory)
    return (directory / "config.json").is_file() and directory.resolve().parent == Path(out).resolve()


def resume_run_dir(checkpoint: Path, out: str | Path, task_name: str, config: dict, *, talk: bool = True) -> tuple[Path, bool]:
    """Where a resume from ``checkpoint`` continues: ``(run_dir, created)``.

    A checkpoint in a run directory of ``out`` continues there. Any other file (a copy from a
    collaborator, a checkpoint of another ``--out``) continues in a new run directory under ``out``,
    so nothing is ever written beside it: its folder may hold the user's own ``last.pt`` and ``log.csv``.
    """
    if is_run_dir_of(checkpoint.parent, out):
        return checkpoint.parent, False
    run_dir = new_run_dir(out, task_name, config)
    if talk:
        print(f"note: {checkpoint} is not in a run directory under --out {out}; the resumed run continues in {run_dir} "
              f"and nothing is written beside {checkpoint.name}.", file=sys.stderr, flush=True)
    return run_dir, True


def open_run(task_name: str, run: RunConfig, config: dict, dist_: Dist, resume_from: Path | None = None,
             on_start: Callable[[Path], None] | None = None) -> Path:
    """The run directory on every rank: a new one, or (resuming ``resume_from``) see :func:`resume_run_dir`.

    Only rank 0 creates directories; the path is broadcast. ``on_start`` is called (rank 0) with a
    directory this call created, as soon as it exists.
    """
    run_dir, created = None, False
    if dist_.is_main:
        if resume_from is None:
            run_dir, created = new_run_dir(run.out, task_name, config), True
        else:
            run_dir, created = resume_run_dir(resume_from, run.out, task_name, config, talk=run.progress)
    run_dir = Path(dist_.broadcast(str(run_dir) if run_dir else None))
    if created and on_start is not None:
        on_start(run_dir)
    return run_dir


def start_run(task_name: str, kind: str, run: RunConfig, resume: str | None, config: dict) -> tuple[Path, dict | None]:
    """Create (or find, on resume) the run directory; write config.json before step 0.

    Returns ``(run_dir, checkpoint_or_None)`` (single process; the trainers use :func:`open_run`).
    """
    if resume:
        path = resolve_resume(resume, run.out, task_name)
        ckpt = load_checkpoint(path, kind=kind)
        return resume_run_dir(path, run.out, task_name, config, talk=run.progress)[0], ckpt
    return new_run_dir(run.out, task_name, config), None


def scaler_states(task: TrainTask) -> dict:
    """``{"grad_scalers": {name: state}}`` for the task's enabled fp16 loss scalers, else ``{}``.

    Without it a resumed fp16 run would restart from the initial scale (65536) and skip steps
    while it backs off again, so it would no longer match an uninterrupted run.
    """
    states = {k: s.state_dict() for k, s in getattr(task, "scalers", {}).items() if s.is_enabled()}
    return {"grad_scalers": states} if states else {}


def restore(task: TrainTask, ckpt: dict) -> FitState:
    """Load weights, optimisers, fp16 loss scales, RNG and counters from a checkpoint into ``task``.

    Every optimiser and loss-scaler state is checked against what it is loaded into first
    (:func:`~ganlstm.checkpoint_checks.check_optimizer_state`); the RNG state by ``set_rng_state``.
    """
    path = ckpt.get("path", "checkpoint")
    if "exported_from" in ckpt.get("extra", {}):
        raise GanlstmError(f"{path} is a prediction-only export (`ganlstm export`) without optimiser state or RNG; "
                           f"resume from the run's last.pt ({ckpt['extra']['exported_from']}).")
    for name, module in task.models.items():
        if name not in ckpt["models"]:
            raise GanlstmError(f"{path} has no weights for {name!r} (it holds {', '.join(ckpt['models'])}); resume from a checkpoint of the same stage.")
        load_state(module, ckpt["models"][name], name=name, path=path)
    for name, opt in task.optimizers.items():
        if name in ckpt["optimizers"]:
            check_optimizer_state(opt, ckpt["optimizers"][name], name, path)
            opt.load_state_dict(ckpt["optimizers"][name])
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"], path)
    extra = dict(ckpt.get("extra", {}))
    for name, sd in extra.pop("grad_scalers", {}).items():
        scaler = getattr(task, "scalers", {}).get(name)
        if scaler is not None and scaler.is_enabled():  # a run resumed without fp16 has nothing to restore into
            _load_scaler(scaler, sd, name, path)
    return FitState(
        step=ckpt["step"], epoch=ckpt["epoch"], batch_in_epoch=int(extra.pop("batch_in_epoch", 0)),
        best_score=float(extra.pop("best_score", math.inf)), extra=extra,
    )


def _load_scaler(scaler, sd: dict, name: str, path: str) -> None:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in sd.values()):
        raise malformed(path, f"the fp16 loss-scaler state {name!r} holds values that are not finite non-negative numbers")
    try:
        scaler.load_state_dict(sd)
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise malformed(path, f"the fp16 loss-scaler state {name!r} was refused: {type(e).__name__}: {e}") from None


def read_config_json(path: Path) -> dict:
    """Read a run's config.json (for tools that inspect runs)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GanlstmError(f"cannot read {path} ({e}); is this a ganlstm run directory?") from None
