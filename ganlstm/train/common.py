"""What every training command shares: device and precision, seeding, DDP, run
directories, the resumable training loop, checkpoints, logs and progress bars.

A stage (GAN, forecaster, baseline) is a :class:`TrainTask`: it owns its models,
optimisers and one ``train_step``; :func:`fit` owns everything else. So resume,
crash safety, NaN handling, SIGINT, logging and DDP are written once.

Design notes
------------
* Data order is a pure function of ``(seed, epoch)`` and the step counter, and every
  RNG is stored in the checkpoint, so "N steps, stop, resume, M steps" gives the same
  weights as "N+M steps" in one go (same seed, same device).
* Evaluation runs under a forked RNG so that sampling pictures never changes training.
* Only rank 0 writes files; all ranks see the same run directory.
"""
from __future__ import annotations

import contextlib
import io
import csv
import json
import math
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import atomic_write_bytes, load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from ..config import RunConfig, save_json
from ..errors import GanlstmError

# ---------------------------------------------------------------- device & precision


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GanlstmError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanlstmError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto.")
    return device


def autocast(device: torch.device, amp: str = "no") -> contextlib.AbstractContextManager:
    """The one precision context for train, eval and predict: bf16/fp16 on GPU, off on CPU."""
    if amp not in ("no", "bf16", "fp16"):
        raise GanlstmError(f"unknown --amp {amp!r}; use no, bf16 or fp16.")
    if amp == "no" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def make_grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """fp16 needs loss scaling; bf16 and fp32 do not (the scaler is then a no-op)."""
    return torch.amp.GradScaler("cuda", enabled=(amp == "fp16" and device.type == "cuda"))


def configure_cpu() -> None:
    """Flush denormal floats to zero: recurrent nets on CPU otherwise slow down 3x (see docs)."""
    torch.set_flush_denormal(True)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` inside the block (None: unchanged), and restored after it.

    On a shared or small machine fewer threads are often faster: OpenMP threads spin-wait when
    another job holds a core (docs/benchmarks.md measured 5-30x slower steps with 2 threads
    beside other jobs on 2 cores).
    """
    if n is not None and n < 1:
        raise GanlstmError(f"threads={n} is invalid; pass a positive number of CPU threads.")
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# EMA warm-up: the decay used at step t is min(ema, (1 + t) / (10 + t)), so the average
# does not drag the random initial weights through the first few thousand steps.
EMA_WARMUP = 10


def ema_decay(ema: float, step: int) -> float:
    """The EMA decay to use after optimiser step ``step``: ``ema``, lower during the warm-up."""
    return min(ema, (1 + step) / (EMA_WARMUP + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers (BatchNorm statistics) are copied."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def enable_determinism() -> None:
    """``--deterministic``: ``torch.use_deterministic_algorithms(True)``, and a fixed cuBLAS workspace.

    cuBLAS is deterministic only with a fixed workspace, read from ``CUBLAS_WORKSPACE_CONFIG`` when
    it starts; without one every CUDA matmul raises in this mode. It is set here unless the user set
    it, so it must run before the process's first CUDA matmul (the trainers call it before building models).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader workers inherit a distinct, reproducible seed from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


# ---------------------------------------------------------------- distributed


@dataclass
class Dist:
    """The process group as torchrun describes it (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: torch.device) -> Dist:
        """Join the process group if launched by torchrun (gloo on CPU, nccl on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(local)
            dist.init_process_group(backend=backend)
        return cls(rank=rank, world_size=world, local_rank=local)

    def device(self, device: torch.device) -> torch.device:
        """Each rank takes its own GPU; CPU ranks share the CPU."""
        if device.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return device

    def prepare(self, module: nn.Module, device: torch.device, broadcast_buffers: bool = True) -> nn.Module:
        """Move to device; under DDP wrap in DDP (converting BatchNorm to SyncBatchNorm on CUDA).

        ``broadcast_buffers=False`` for a module that runs several forwards before one backward (the
        discriminator: reals, then fakes): DDP's copy of rank 0's buffers at each forward writes into
        BatchNorm running statistics that autograd saved for the backward (CPU BatchNorm in torch < 2.13
        keeps them), which fails the backward on every rank but 0.
        """
        module = module.to(device)
        if not self.enabled:
            return module
        if device.type == "cuda":  # SyncBatchNorm only runs on GPUs; CPU ranks keep per-rank statistics
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=broadcast_buffers)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's python object, on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's python object, as a list on rank 0 (None elsewhere); ``[obj]`` in a single process."""
        if not self.enabled:
            return [obj]
        box = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, box, dst=0)
        return box

    def all_true(self, flag: bool) -> bool:
        """True on every rank iff true on every rank (used for stop/skip decisions)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------- run directories


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


class CsvLog:
    """Append-only CSV; a row with new keys widens the header; on resume, rows past the step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.fields: list[str] | None = None
        if path.exists():
            rows = self._read()
            if rows:
                self.fields = list(rows[0].keys())
            if resume_step is not None:
                # Rows logged after the checkpoint we resume from never "happened": drop them so steps stay continuous.
                kept = [r for r in rows if _int(r.get("step")) <= resume_step]
                self._rewrite(kept)

    def _read(self) -> list[dict]:
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict]) -> None:
        text = io.StringIO()
        if self.fields:
            w = csv.DictWriter(text, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)
        atomic_write_bytes(self.path, text.getvalue().encode())

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif set(row) - set(self.fields):
            # A later phase logs more (e.g. after stage two's reader warm-up): widen the header, old rows get blanks.
            rows = self._read()
            self.fields += [k for k in row if k not in self.fields]
            self._rewrite(rows)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(v) for k, v in row.items()})
            f.flush()


def _int(x: Any) -> int:
    try:
        return int(float(x))
    except (TypeError, ValueError):
        return -1


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


# ---------------------------------------------------------------- the training loop


class NonFiniteLoss(Exception):
    """A NaN/Inf in a batch or a loss, found before any forward pass or optimiser step could use it."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what  # e.g. "the D loss became NaN/Inf"


def check_finite(name: str, loss: Tensor) -> None:
    """Call before ``optimizer.step()``: a NaN/Inf loss must never reach the weights."""
    if not bool(torch.isfinite(loss.detach()).all()):  # one host sync per step; training only
        raise NonFiniteLoss(f"the {name} loss became NaN/Inf")


def check_batch_finite(batch: Any) -> None:
    """Refuse a batch holding NaN/Inf before the forward pass: BatchNorm would fold it into its running statistics."""
    tensors = [batch] if torch.is_tensor(batch) else [t for t in batch if torch.is_tensor(t)] if isinstance(batch, (list, tuple)) else []
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
        raise NonFiniteLoss("the input batch holds NaN/Inf values")


class TrainTask(Protocol):
    """A training stage, as :func:`fit` drives it."""

    kind: str  # checkpoint kind: "gan" | "forecaster"
    name: str  # run-directory suffix, e.g. "gan", "gan_lstm", "convlstm"
    config: dict  # the full resolved config, written to config.json and every checkpoint
    models: dict[str, nn.Module]  # everything saved/restored (unwrapped automatically)
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]  # fp16 loss scales, saved/restored with the optimisers (empty when disabled)

    def train_step(self, batch: Any, step: int) -> dict[str, Tensor]:
        """One optimisation step on ``batch``; returns detached scalar losses for logging."""

    def evaluate(self, epoch: int, step: int, run_dir: Path) -> dict[str, float]:
        """Rank 0 only, under no_grad: write samples, return metrics; ``score`` (lower=better) picks best.pt."""


@dataclass
class FitState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float = math.inf
    extra: dict = field(default_factory=dict)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, dist_: Dist) -> list[list[int]]:
    """This rank's batches for ``epoch``: a permutation fixed by (seed, epoch), split across ranks, last partial batch dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_rank = n // dist_.world_size
    mine = perm[dist_.rank * per_rank : (dist_.rank + 1) * per_rank]
    nb = len(mine) // batch_size
    return [mine[i * batch_size : (i + 1) * batch_size] for i in range(nb)]


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, sampling) without changing any RNG the training loop depends on."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


class _Interrupt:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary and exits."""

    def __init__(self):
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                pass
        return self

    def _handle(self, signum, frame):
        if self.flag:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self.flag = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def fit(
    task: TrainTask,
    dataset: Dataset,
    run: RunConfig,
    *,
    dist_: Dist,
    run_dir: Path,
    state: FitState,
    collate: Any = None,
) -> FitState:
    """Train ``task`` on ``dataset`` until ``run.epochs`` or ``run.max_steps``; returns the final state.

    Writes (rank 0) ``log.csv``, ``metrics.csv``, ``last.pt`` (every epoch, every
    ``save_every`` steps, at the end and on Ctrl-C) and ``best.pt`` (lowest ``score``).
    Runs on ``run.threads`` CPU threads when set.
    """
    with torch_threads(run.threads):
        return _fit(task, dataset, run, dist_=dist_, run_dir=run_dir, state=state, collate=collate)


def _fit(task: TrainTask, dataset: Dataset, run: RunConfig, *, dist_: Dist, run_dir: Path, state: FitState, collate: Any) -> FitState:
    if len(dataset) < run.batch_size * dist_.world_size:
        raise GanlstmError(
            f"the training set has {len(dataset)} samples, fewer than one batch of {run.batch_size}"
            f"{' per rank' if dist_.enabled else ''}; lower --batch-size or add data."
        )
    epochs = run.epochs if run.epochs is not None else (None if run.max_steps else 10)
    max_steps = run.max_steps if run.max_steps is not None else math.inf
    steps_per_epoch = len(dataset) // dist_.world_size // run.batch_size
    total = min(max_steps, (epochs or math.inf) * steps_per_epoch)
    log = CsvLog(run_dir / "log.csv", resume_step=state.step) if dist_.is_main else None
    mlog = CsvLog(run_dir / "metrics.csv", resume_step=state.step) if dist_.is_main else None
    if dist_.is_main:
        remove_orphan_temp_files(run_dir)
    loader_gen = torch.Generator()  # a private generator: DataLoader must not draw from the global RNG

    # Under DDP each rank draws its own noise (GAN latents, scheduled-sampling coins), so last.pt keeps
    # every rank's RNG and a resume with the same world size continues each rank exactly.
    rank_rngs = state.extra.pop("rank_rng", None)
    if dist_.enabled and rank_rngs is not None and len(rank_rngs) == dist_.world_size:
        set_rng_state(rank_rngs[dist_.rank])

    def save(name: str, rank_rng: list | None = None) -> None:
        if dist_.is_main:
            save_checkpoint(
                run_dir / name, kind=task.kind, config=task.config, models=task.models, optimizers=task.optimizers,
                step=state.step, epoch=state.epoch, rng=rng_state(),
                extra={"batch_in_epoch": state.batch_in_epoch, "best_score": state.best_score, **state.extra,
                       **({"rank_rng": rank_rng} if rank_rng is not None else {}), **scaler_states(task)},
            )

    def save_last() -> None:
        """Every rank calls this (it gathers the ranks' RNG states); rank 0 writes last.pt."""
        save("last.pt", dist_.gather(rng_state()) if dist_.enabled else None)

    def evaluate() -> None:
        state.extra["evaluated_at"] = state.step
        if dist_.is_main:
            for m in task.models.values():
                m.eval()
            with preserved_rng(), torch.no_grad():
                metrics = task.evaluate(state.epoch, state.step, run_dir)
            for m in task.models.values():
                m.train()
            if metrics:
                mlog.write({"step": state.step, "epoch": state.epoch, **metrics})
                score = metrics.get("score")
                if score is not None and score < state.best_score:
                    state.best_score = float(score)
                    save("best.pt")
        dist_.barrier()

    bar = _progress(total, state.step, run.progress and dist_.is_main, desc=task.name)
    t0, seen0 = time.perf_counter(), 0
    try:
        with _Interrupt() as interrupt:
            while state.step < total and (epochs is None or state.epoch < epochs):
                batches = epoch_batches(len(dataset), run.batch_size, run.seed, state.epoch, dist_)
                loader = DataLoader(
                    dataset, batch_sampler=batches[state.batch_in_epoch :], num_workers=run.num_workers,
                    collate_fn=collate, worker_init_fn=worker_init_fn, generator=loader_gen,
                    persistent_workers=False, pin_memory=torch.cuda.is_available(),
                )
                for batch in loader:
                    try:
                        check_batch_finite(batch)
                        losses = task.train_step(batch, state.step)
                    except NonFiniteLoss as e:
                        for opt in task.optimizers.values():
                            opt.zero_grad(set_to_none=True)
                        if not run.skip_nonfinite:
                            last = run_dir / "last.pt"
                            raise GanlstmError(
                                f"{e.what} at step {state.step + 1}; training stopped and "
                                f"{'the last good checkpoint ' + str(last) + ' is intact' if last.exists() else 'no checkpoint was written'}; "
                                f"lower the learning rate, check the data for NaNs, or pass --skip-nonfinite."
                            ) from None
                        state.extra["skipped_batches"] = state.extra.get("skipped_batches", 0) + 1
                        losses = {}
                    state.step += 1
                    state.batch_in_epoch += 1
                    seen0 += len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)
                    if dist_.is_main and (state.step % run.log_every == 0 or state.step == total):
                        rate = seen0 * dist_.world_size / max(time.perf_counter() - t0, 1e-9)
                        row = {"step": state.step, "epoch": state.epoch, **{k: float(v) for k, v in losses.items()}, "samples_per_s": rate}
                        log.write(row)
                        bar.set_postfix({k: f"{float(v):.3g}" for k, v in losses.items()} | {"img/s": f"{rate:.0f}"})
                    bar.update(1)
                    if run.val_every and state.step % run.val_every == 0:
                        evaluate()  # a bounded validation cost, whatever the epoch length
                        save_last()
                    elif run.save_every and state.step % run.save_every == 0:
                        save_last()
                    if dist_.all_true(not interrupt.flag) is False:
                        save_last()
                        raise KeyboardInterrupt
                    if state.step >= total and state.batch_in_epoch < len(batches):
                        break  # mid-epoch; a budget that ends with the epoch finishes it below (epoch += 1, evaluate)
                else:  # epoch finished
                    state.epoch += 1
                    state.batch_in_epoch = 0
                    if (not run.val_every or state.step >= total) and state.extra.get("evaluated_at") != state.step:
                        evaluate()
                    save_last()
                    continue
                break  # max_steps reached mid-epoch
            if state.extra.get("evaluated_at") != state.step:  # evaluate the final weights too
                evaluate()
            save_last()
    finally:
        bar.close()
    return state


def _progress(total: float, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=None if math.isinf(total) else int(total), initial=initial, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True)


# ---------------------------------------------------------------- setup & resume


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
