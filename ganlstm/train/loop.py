"""The resumable training loop every training command shares.

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

The loop's helpers are modules of their own: :mod:`ganlstm.device` (device, precision, threads),
:mod:`~ganlstm.train.distributed` (DDP), :mod:`~ganlstm.train.runs` (run directories, resume),
:mod:`~ganlstm.train.csv_log`, :mod:`~ganlstm.train.nonfinite`, :mod:`~ganlstm.train.ema` and
:mod:`~ganlstm.train.reproducibility`.
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import save_checkpoint
from ..rng import rng_state, set_rng_state
from ..config import RunConfig
from ..device import torch_threads
from ..errors import GanlstmError, Interrupted
from .csv_log import CsvLog
from .distributed import Dist
from .nonfinite import RUNAWAY_EVERY, NonFiniteLoss, check_batch_finite, runaway
from .reproducibility import preserved_rng, worker_init_fn
from .runs import remove_orphan_temp_files, scaler_states
from .task import FitState, TrainTask


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, dist_: Dist) -> list[list[int]]:
    """This rank's batches for ``epoch``: a permutation fixed by (seed, epoch), split across ranks, last partial batch dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_rank = n // dist_.world_size
    mine = perm[dist_.rank * per_rank : (dist_.rank + 1) * per_rank]
    nb = len(mine) // batch_size
    return [mine[i * batch_size : (i + 1) * batch_size] for i in range(nb)]


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

    def stopped(what: str, fix: str) -> GanlstmError:
        last = run_dir / "last.pt"
        return GanlstmError(
            f"{what} at step {state.step}; training stopped and "
            f"{'the last good checkpoint ' + str(last) + ' is intact' if last.exists() else 'no checkpoint was written'}; {fix}."
        )

    fp16 = any(s.is_enabled() for s in getattr(task, "scalers", {}).values())

    def guard() -> None:
        """Every rank: stop before weights or gradients that ran away train on or reach a checkpoint."""
        what = runaway(task.models, grads=not fp16)
        if what:
            raise stopped(what, "lower the learning rate (--lr, or --lr-g / --lr-d for train-gan)")

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
        guard()
        save("last.pt", dist_.gather(rng_state()) if dist_.enabled else None)

    def evaluate() -> None:
        guard()  # before best.pt can be written
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
                            state.step += 1  # the step that failed
                            raise stopped(e.what, "lower the learning rate, check the data for NaNs, or pass --skip-nonfinite") from None
                        state.extra["skipped_batches"] = state.extra.get("skipped_batches", 0) + 1
                        losses = {}
                    state.step += 1
                    if state.step % RUNAWAY_EVERY == 0:
                        guard()
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
                        raise Interrupted(str(Path(run_dir) / "last.pt"))
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
