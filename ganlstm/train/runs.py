"""Run directories: a new numbered one per run (``config.json`` before step 0), finding the one to
resume, restoring a task from its checkpoint, and cleaning up after a kill. Only rank 0 writes."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..checkpoint import load_checkpoint, load_state, set_rng_state
from ..config import RunConfig, save_json
from ..errors import GanlstmError
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


def start_run(task_name: str, kind: str, run: RunConfig, resume: str | None, config: dict) -> tuple[Path, dict | None]:
    """Create (or find, on resume) the run directory; write config.json before step 0.

    Returns ``(run_dir, checkpoint_or_None)``. Only rank 0 creates directories; callers
    broadcast the path under DDP via :meth:`Dist.broadcast`.
    """
    if resume:
        path = resolve_resume(resume, run.out, task_name)
        ckpt = load_checkpoint(path, kind=kind)
        return path.parent, ckpt
    run_dir = create_run_dir(run.out, task_name)
    (run_dir / "samples").mkdir(exist_ok=True)
    save_json(config, run_dir / "config.json")
    return run_dir, None


def scaler_states(task: TrainTask) -> dict:
    """``{"grad_scalers": {name: state}}`` for the task's enabled fp16 loss scalers, else ``{}``.

    Without it a resumed fp16 run would restart from the initial scale (65536) and skip steps
    while it backs off again, so it would no longer match an uninterrupted run.
    """
    states = {k: s.state_dict() for k, s in getattr(task, "scalers", {}).items() if s.is_enabled()}
    return {"grad_scalers": states} if states else {}


def restore(task: TrainTask, ckpt: dict) -> FitState:
    """Load weights, optimisers, fp16 loss scales, RNG and counters from a checkpoint into ``task``."""
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
            opt.load_state_dict(ckpt["optimizers"][name])
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    extra = dict(ckpt.get("extra", {}))
    for name, sd in extra.pop("grad_scalers", {}).items():
        scaler = getattr(task, "scalers", {}).get(name)
        if scaler is not None and scaler.is_enabled():  # a run resumed without fp16 has nothing to restore into
            scaler.load_state_dict(sd)
    return FitState(
        step=ckpt["step"], epoch=ckpt["epoch"], batch_in_epoch=int(extra.pop("batch_in_epoch", 0)),
        best_score=float(extra.pop("best_score", math.inf)), extra=extra,
    )


def read_config_json(path: Path) -> dict:
    """Read a run's config.json (for tools that inspect runs)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GanlstmError(f"cannot read {path} ({e}); is this a ganlstm run directory?") from None
