"""Reliability under faults (issue 8): kills, Ctrl-C, NaN batches, and reproducibility.

* **Crash safety** (``slow``, still run in CI): ``ganlstm train-gan`` and then ``ganlstm
  train-encoder`` (on the generator that survived the first chaos run) are started in
  subprocesses on 16 px simulated mergers with ``--save-every 1`` and interrupted on a seeded
  schedule: SIGKILL during start-up (before any checkpoint) and the instant the first
  checkpoint's temp file appears (both leave nothing to resume: the original command runs
  again), SIGKILL a random moment after a random number of checkpoint writes, SIGKILL the
  instant a checkpoint's temp file appears (i.e. during ``torch.save``), SIGINT / SIGTERM right
  after an epoch-end save with ``--save-every 0`` (so only the signal handler can have written the
  next ``last.pt``), and ``--resume last`` after each. After every fault the run directories are
  audited: every ``.pt`` loads with ``weights_only``, ``config.json``/``split.json`` parse,
  ``log.csv``/``metrics.csv`` parse with strictly increasing steps, samples decode, and no
  ``last.pt`` step ever goes backwards. Each resume must start from the step of the ``last.pt``
  the fault left, and the run must end at its step budget with no temp file left over, its final
  ``last.pt`` bit-identical to an uninterrupted run of the same command. The tally is printed and
  quoted in ``docs/reliability.md``.
* **Divergence**: a NaN (stage one) or Inf (stage two) batch is slipped into the training set;
  training stops with an error naming the step, ``last.pt`` is left as it was, and
  ``--skip-nonfinite`` drops exactly that batch and finishes.
* **Determinism**: two CPU runs with the same seed give bit-identical checkpoints (every tensor of
  every model and optimiser state), for each stage; ``--deterministic`` turns on
  ``torch.use_deterministic_algorithms`` in both trainers.
"""
from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganlstm.checkpoint import load_checkpoint
from ganlstm.train import forecaster as forecaster_train
from ganlstm.train import gan as gan_train
from ganlstm.train.distributed import Dist
from ganlstm.train.loop import epoch_batches
from reliability_helpers import GAN, SIZE, cli, encoder_config, gan_config, one_thread, run_config, simulated  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.filterwarnings("ignore:no validation"),  # the in-process runs have no validation split
    pytest.mark.usefixtures("one_thread"),
]

CHAOS_SEED = 8  # the fault schedule (which moments, how many saves between faults)
# Budgets on the chaos data (6 sequences x 12 frames, batch 8 for stage one, 4 for stage two): past the first epoch
# end, so the graceful interruption after the first epoch-end save always has steps left.
GAN_EPOCH, ENCODER_EPOCH = 9, 10  # steps per epoch: 72 frames / 8; 5 train sequences x 8 windows / 4
GAN_STEPS, ENCODER_STEPS = 2 * GAN_EPOCH, 2 * ENCODER_EPOCH - 4
SPAWN_TIMEOUT = 120.0  # seconds a subprocess may take to reach the awaited event (a loaded CI box is slow)


# ---------------------------------------------------------------- crash safety: machinery


@dataclass
class Tally:
    """What was done to a run and what survived it."""

    kills: int = 0
    kills_at_startup: int = 0  # SIGKILLs before the first checkpoint existed (imports, data loading, model building)
    kills_first_write: int = 0  # SIGKILLs that cut off the run's first checkpoint write (no last.pt yet)
    kills_mid_write: int = 0  # SIGKILLs that left a checkpoint temp file behind: the write was cut off
    signals: int = 0  # SIGINT / SIGTERM
    resumes: int = 0
    restarts: int = 0  # fresh starts of the original command after a kill left no last.pt to resume
    files_checked: int = 0
    corrupt_files: int = 0
    temp_files_left: int = 0  # at the end of the run
    identical_tensors: int = 0  # of the final last.pt, each bit-identical to the uninterrupted run's


class Chaos:
    """Runs one training command under a fault schedule and audits its run directory after every fault."""

    def __init__(self, first_args: list, resume_args: list, out: Path, run_glob: str, tmp: Path):
        self.first_args, self.resume_args, self.out, self.run_glob, self.tmp = first_args, resume_args, out, run_glob, tmp
        self.tally = Tally()
        self.run_dir: Path | None = None
        self.abandoned: list[Path] = []  # run directories a kill left without a last.pt (nothing to resume there)
        self.last_step = 0  # step of the newest last.pt seen by an audit
        self.launches = 0
        self.fresh = True  # the next launch runs the original command (no last.pt to resume yet)

    # -- processes

    def launch(self, extra: list = ()) -> subprocess.Popen:
        args = self.first_args if self.fresh else self.resume_args
        if not self.fresh:
            self.tally.resumes += 1
        elif self.launches:
            self.tally.restarts += 1
        self.fresh = False
        self.launches += 1
        log = (self.tmp / f"proc{self.launches}.log").open("wb")
        # One OpenMP thread: on a shared CI box, spinning worker threads make a tiny step seconds long.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.Popen([sys.executable, "-m", "ganlstm", *map(str, args), *map(str, extra)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp, env=env)

    def output(self) -> str:
        return (self.tmp / f"proc{self.launches}.log").read_text(errors="replace")

    def _check_resumed_from(self) -> None:
        """A resumed process's progress bar must start at the step of the last.pt the previous fault left."""
        counts = re.findall(r"\| *(\d+)/\d+ \[", self.output())
        if self.last_step and counts:
            assert int(counts[0]) == self.last_step, f"resumed at step {counts[0]}, but last.pt held step {self.last_step}"

    def _wait(self, proc: subprocess.Popen, ready) -> bool:
        """Poll every ~1 ms until ``ready()``; False if the process exited first."""
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while time.monotonic() < deadline:
            if ready():
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.001)
        proc.kill()
        raise AssertionError(f"no progress within {SPAWN_TIMEOUT:.0f} s:\n{self.output()[-2000:]}")

    def _new_run_dirs(self) -> list[Path]:
        return sorted(p for p in self.out.glob(self.run_glob) if p not in self.abandoned)

    def _find_run_dir(self, proc: subprocess.Popen) -> None:
        if self.run_dir is None:
            assert self._wait(proc, lambda: bool(self._new_run_dirs())), self.output()[-2000:]
            self.run_dir = self._new_run_dirs()[0]

    def _last_id(self) -> tuple[int, int] | None:
        try:
            s = os.stat(self.run_dir / "last.pt")  # os.replace gives every new last.pt a new inode
        except FileNotFoundError:
            return None
        return s.st_ino, s.st_mtime_ns

    def _await_saves(self, proc: subprocess.Popen, n: int) -> list[float]:
        """Wait for ``n`` new last.pt files; returns when each appeared (fewer if the process exited)."""
        self._find_run_dir(proc)
        times = []
        for _ in range(n):
            seen = self._last_id()
            if not self._wait(proc, lambda: self._last_id() not in (None, seen)):
                break
            times.append(time.monotonic())
        return times

    def temp_files(self) -> list[str]:
        return [n for n in os.listdir(self.run_dir) if n.startswith(".") and n.endswith(".tmp")]

    # -- faults

    def kill_during_startup(self, rng: random.Random) -> None:
        """SIGKILL a fresh start at a random moment before its first checkpoint exists (imports, data, model, run directory)."""
        proc = self.launch()
        deadline = time.monotonic() + rng.uniform(0.2, 2.5)
        while time.monotonic() < deadline and proc.poll() is None and not self._saved_anything():
            time.sleep(0.001)
        self._kill(proc)
        self.tally.kills_at_startup += not self._saved_anything()

    def kill_at_first_write(self, attempts: int = 3) -> None:
        """SIGKILL a fresh start the moment its first checkpoint's temp file exists: no last.pt has been written yet.

        If the write completes before the kill lands, the run has a last.pt and the case is not retried.
        """
        for _ in range(attempts):
            if not self.fresh:
                return
            proc = self.launch()
            self._find_run_dir(proc)
            writing = lambda: any(n.startswith(".last.pt.") for n in self.temp_files()) and not (self.run_dir / "last.pt").exists()  # noqa: E731
            hit = self._wait(proc, writing)
            self._kill(proc)  # abandons the run directory when no last.pt came of it
            if hit and self.fresh:
                self.tally.kills_first_write += 1
                return

    def _saved_anything(self) -> bool:
        return any((d / "last.pt").exists() for d in self._new_run_dirs())

    def _after_kill(self) -> None:
        """A kill that left no last.pt leaves nothing to resume: its run directory is abandoned, and the original command runs again."""
        if self.run_dir is None and self._new_run_dirs():
            self.run_dir = self._new_run_dirs()[0]
        if self.run_dir is None or not (self.run_dir / "last.pt").exists():
            from ganlstm import GanlstmError
            from ganlstm.train.runs import resolve_resume

            with pytest.raises(GanlstmError, match=r"--resume last found no .* run with a last\.pt under .*start without --resume"):
                resolve_resume("last", self.out, self.run_glob[2:])  # what `--resume last` says now: start again
            self.abandoned += [self.run_dir] if self.run_dir is not None else []
            self.run_dir, self.fresh = None, True

    def kill_at_random(self, rng: random.Random) -> None:
        """SIGKILL at a random moment: 2 or 3 checkpoint writes in, plus a random fraction of a step."""
        proc = self.launch()
        times = self._await_saves(proc, rng.randint(2, 3))
        if len(times) >= 2:  # the step time is measured, so the moment is random within a step on any machine
            time.sleep(rng.random() * (times[-1] - times[-2]))
        self._kill(proc)

    def kill_mid_write(self, attempts: int = 3) -> None:
        """SIGKILL the moment a checkpoint temp file exists, i.e. while ``torch.save`` is writing it.

        If the write completes between seeing the file and the kill landing (a loaded machine can stall
        this process that long), the kill is an ordinary one and a fresh resume is tried.
        """
        for _ in range(attempts):
            proc = self.launch()
            self._find_run_dir(proc)
            before = set(self.temp_files())  # leftovers of earlier kills, if the library does not clean them
            hit = self._wait(proc, lambda: bool(set(self.temp_files()) - before))
            self._kill(proc)
            if hit and set(self.temp_files()) - before:
                self.tally.kills_mid_write += 1
                return

    def interrupt_after_epoch_save(self, sig: signal.Signals, steps_per_epoch: int) -> int:
        """With ``--save-every 0``, send ``sig`` right after an epoch-end save; return the step its own save holds."""
        proc = self.launch(["--save-every", 0])
        assert self._await_saves(proc, 1), f"the run ended before an epoch-end save:\n{self.output()[-2000:]}"
        assert proc.poll() is None, f"the budget ended at the epoch boundary; nothing left to interrupt:\n{self.output()[-2000:]}"
        boundary = load_checkpoint(self.run_dir / "last.pt")["step"]
        proc.send_signal(sig)
        code = proc.wait(timeout=SPAWN_TIMEOUT)
        self.tally.signals += 1
        self._check_resumed_from()
        out = self.output()
        assert code == 130 and "Traceback" not in out, f"exit {code}:\n{out[-2000:]}"
        # Ctrl-C says what was saved and how to continue.
        assert f"interrupted: saved {self.run_dir / 'last.pt'}; continue with: ganlstm " in out and f"--resume {self.run_dir}" in out, out[-500:]
        step = load_checkpoint(self.run_dir / "last.pt")["step"]
        # With --save-every 0 only an epoch end or the signal handler writes last.pt: a step past the
        # boundary that is not itself an epoch end can only come from the handler.
        assert step > boundary and step % steps_per_epoch != 0, (boundary, step)
        self.audit()
        return step

    def finish(self) -> None:
        proc = self.launch()
        code = proc.wait(timeout=SPAWN_TIMEOUT)
        assert code == 0, self.output()[-2000:]
        self._check_resumed_from()
        self.audit()
        self.tally.temp_files_left = len(self.temp_files())

    def _kill(self, proc: subprocess.Popen) -> None:
        assert proc.poll() is None, f"the run ended before the fault (exit {proc.returncode}):\n{self.output()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=SPAWN_TIMEOUT)
        self.tally.kills += 1
        self._check_resumed_from()
        for d in dict.fromkeys(self.abandoned + self._new_run_dirs()):
            self.audit(d)
        self._after_kill()

    # -- audit

    def audit(self, rd: Path | None = None) -> None:
        """Every file of the run must be whole; last.pt must never go back in steps."""
        rd = rd or self.run_dir
        for p in sorted(rd.glob("*.pt")):
            self._check(p, lambda p: torch.load(p, weights_only=True) and load_checkpoint(p))
        for name in ("config.json", "split.json"):
            if (rd / name).exists():
                self._check(rd / name, lambda p: json.loads(p.read_text()))
        for name in ("log.csv", "metrics.csv"):
            if (rd / name).exists():
                self._check(rd / name, _check_csv)
        for p in sorted((rd / "samples").glob("*")):
            self._check(p, _decode_image)
        if (rd / "last.pt").exists() and rd == self.run_dir:
            step = load_checkpoint(rd / "last.pt")["step"]
            assert step >= self.last_step, f"last.pt went back from step {self.last_step} to {step}"
            self.last_step = step

    def _check(self, path: Path, check) -> None:
        self.tally.files_checked += 1
        try:
            check(path)
        except Exception as e:  # noqa: BLE001 - any failure to read is a corrupt file; reported below
            self.tally.corrupt_files += 1
            raise AssertionError(f"{path.name} is unreadable after a fault: {type(e).__name__}: {e}") from None


def _check_csv(path: Path) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert all(None not in r.values() and "" not in r.values() for r in rows), f"{path.name} has a partial row"
    assert steps == sorted(set(steps)), f"{path.name} steps are not strictly increasing: {steps}"


def _decode_image(path: Path) -> None:
    with Image.open(path) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()


def _chaos_data(root: Path) -> Path:
    """6 simulated 12-frame sequences (stage one trains on all 6, stage two on 5 and validates on 1)."""
    from ganlstm.data.simulate import simulate_dataset

    return simulate_dataset(root, sequences=6, frames=12, size=SIZE, seed=1, progress=False)


# ---------------------------------------------------------------- crash safety: the test


def gan_args(data: Path, out: Path) -> list:
    # No validation split: the per-epoch projection score would cost more than the training.
    return ["train-gan", "--data", data, "--size", SIZE, "--nz", GAN.nz, "--ngf", GAN.ngf, "--ndf", GAN.ndf, "--latent-grid", 1,
            "--val-fraction", 0, "--test-fraction", 0, "--batch-size", 8, "--max-steps", GAN_STEPS, "--out", out,
            "--device", "cpu", "--save-every", 1]


def encoder_args(data: Path, gan: Path, out: Path) -> list:
    return ["train-encoder", "--gan", gan, "--data", data, "--context", 3, "--horizon", 2, "--hidden", 8, "--val-fraction", 0.2,
            "--test-fraction", 0, "--batch-size", 4, "--max-steps", ENCODER_STEPS, "--out", out, "--device", "cpu", "--save-every", 1]


def _run_chaos(first: list, out: Path, glob: str, tmp: Path, rng: random.Random, sig: signal.Signals, steps_per_epoch: int,
               steps: int) -> Chaos:
    """One stage through every fault, then compared with the same command run uninterrupted."""
    tmp.mkdir(parents=True, exist_ok=True)
    command = first[0]
    chaos = Chaos(first, [command, "--resume", "last", "--out", out, "--max-steps", steps, "--device", "cpu", "--save-every", 1],
                  out, glob, tmp)
    chaos.kill_during_startup(rng)
    chaos.kill_at_first_write()
    chaos.kill_at_random(rng)
    chaos.kill_mid_write()
    chaos.interrupt_after_epoch_save(sig, steps_per_epoch=steps_per_epoch)
    chaos.finish()
    _assert_complete(chaos, steps)
    # The same command, never interrupted, in a directory of its own: the final weights must be the same bit for bit.
    straight_out = tmp / "uninterrupted"
    i = first.index("--out")
    code = subprocess.run([sys.executable, "-m", "ganlstm", *map(str, first[:i + 1]), str(straight_out), *map(str, first[i + 2:])],
                          cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=SPAWN_TIMEOUT * 2)
    assert code.returncode == 0, code.stderr.decode(errors="replace")[-2000:]
    chaos.tally.identical_tensors = _assert_bit_identical(chaos.run_dir / "last.pt", next(straight_out.glob(glob)) / "last.pt")
    return chaos


@pytest.fixture(scope="module")
def gan_chaos(tmp_path_factory) -> tuple[Chaos, Path]:
    """Stage one through the faults (``CHAOS_SEED``), and the data it trained on; stage two's test reuses its generator."""
    tmp = tmp_path_factory.mktemp("chaos")
    data = _chaos_data(tmp / "data")
    rng = random.Random(CHAOS_SEED)
    out = tmp / "gan_runs"
    return _run_chaos(gan_args(data, out), out, "*-gan", tmp / "gan", rng, signal.SIGINT, GAN_EPOCH, GAN_STEPS), data


def _report(name: str, chaos: Chaos) -> None:
    print(f"\ncrash safety: {name} {asdict(chaos.tally)}")
    assert chaos.tally.kills_at_startup >= 1, "no kill landed before the first checkpoint; the start-up case went untested"
    assert chaos.tally.kills_first_write >= 1, "no kill cut off the first checkpoint write; that case went untested"
    assert chaos.tally.kills_mid_write >= 1, "no kill landed inside a checkpoint write; the mid-write case went untested"


@pytest.mark.slow
def test_kill_and_resume_leaves_nothing_corrupt_and_ends_bit_identical_stage_one(gan_chaos):
    _report("train-gan", gan_chaos[0])


@pytest.mark.slow
def test_kill_and_resume_leaves_nothing_corrupt_and_ends_bit_identical_stage_two(gan_chaos, tmp_path):
    """Stage two on the generator that survived stage one's faults: it must still work as a decoder."""
    gan, data = gan_chaos
    rng = random.Random(CHAOS_SEED + 1)
    out = tmp_path / "encoder_runs"
    enc = _run_chaos(encoder_args(data, gan.run_dir / "last.pt", out), out, "*-gan_lstm", tmp_path / "enc", rng, signal.SIGTERM,
                     ENCODER_EPOCH, ENCODER_STEPS)
    _report("train-encoder", enc)


def _assert_complete(chaos: Chaos, steps: int) -> None:
    rd = chaos.run_dir
    assert load_checkpoint(rd / "last.pt")["step"] == steps
    with (rd / "log.csv").open(newline="") as f:
        logged = [int(r["step"]) for r in csv.DictReader(f)]
    assert logged[-1] == steps, logged
    assert chaos.tally.corrupt_files == 0 and chaos.tally.temp_files_left == 0, (asdict(chaos.tally), chaos.temp_files())
    resumed = [d for d in chaos.out.iterdir() if (d / "last.pt").exists()]
    assert resumed == [rd], f"the resumes did not all continue in one run directory: {resumed}"
    for d in chaos.abandoned:  # what kills before the first checkpoint left: whole files, nothing to resume
        assert not list(d.glob("*.pt")) and (not (d / "config.json").exists() or json.loads((d / "config.json").read_text()))


def test_atomic_writes_leave_no_temp_file_and_keep_the_usual_permissions(tmp_path):
    from ganlstm.checkpoint import atomic_write_bytes, save_checkpoint
    from ganlstm.train.runs import remove_orphan_temp_files

    old = os.umask(0o027)
    try:
        save_checkpoint(tmp_path / "c.pt", kind="gan", config={}, models={"m": torch.nn.Linear(2, 2)})
        atomic_write_bytes(tmp_path / "c.json", b"{}")
    finally:
        os.umask(old)
    # mkstemp's private 0600 must not leak into results that collaborators read.
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {oct(0o640)}
    (tmp_path / ".last.pt.k2j4h1.tmp").write_bytes(b"half a checkpoint")  # what a SIGKILL mid-save leaves
    assert [p.name for p in remove_orphan_temp_files(tmp_path)] == [".last.pt.k2j4h1.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.pt"]


# ---------------------------------------------------------------- divergence


class Poisoned(torch.utils.data.Dataset):
    """``base`` with item ``index`` filled with ``value`` (NaN or Inf): a bad batch the readers would have refused."""

    def __init__(self, base, index: int, value: float):
        self.base, self.index, self.value = base, index, value

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        item = self.base[i]
        if i != self.index:
            return item
        if isinstance(item, tuple):  # (context, target) windows: poison the observed frames
            context, target = item
            return torch.full_like(context, self.value), target
        return torch.full_like(item, self.value)


def _poison_gan_data(monkeypatch, index: int, value: float) -> None:
    load = gan_train.load_gan_data

    def poisoned(cfg, seed):
        data = load(cfg, seed)
        data.train = Poisoned(data.train, index, value)
        return data

    monkeypatch.setattr(gan_train, "load_gan_data", poisoned)


def _poison_windows(monkeypatch, index: int, value: float) -> None:
    load = forecaster_train.load_data

    def poisoned(cfg, seed):
        cfg, data = load(cfg, seed)
        data.train = Poisoned(data.train, index, value)
        return cfg, data

    monkeypatch.setattr(forecaster_train, "load_data", poisoned)


def _item_at(step: int, n: int, batch_size: int, seed: int) -> int:
    """A dataset index that the training loop puts into the batch of (1-based) ``step`` of the first epoch."""
    return epoch_batches(n, batch_size, seed, 0, Dist())[step - 1][0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return simulated(tmp_path_factory.mktemp("reliability") / "data")  # 5 sequences x 8 frames


@pytest.fixture(scope="module")
def gan_ckpt(data, tmp_path_factory) -> Path:
    return gan_train.train_gan(gan_config(data), run_config(tmp_path_factory.mktemp("gan"), 1)) / "last.pt"


def test_nan_batch_stops_stage_one_naming_the_step_and_keeps_last_good_checkpoint(data, tmp_path, monkeypatch, capsys):
    n, bs, seed, bad = 40, 4, 0, 3  # 5 x 8 frames: an epoch is 10 steps, so the bad batch comes once in 4 steps
    _poison_gan_data(monkeypatch, _item_at(bad, n, bs, seed), float("nan"))
    args = ["train-gan", "--data", data, "--size", SIZE, "--nz", GAN.nz, "--latent-grid", 1, "--ngf", GAN.ngf, "--ndf", GAN.ndf,
            "--val-fraction", 0, "--test-fraction", 0, "--batch-size", bs, "--seed", seed, "--max-steps", bad + 1,
            "--save-every", 1, "--device", "cpu"]
    code, err = cli(args + ["--out", tmp_path / "a"], capsys)
    assert code == 2 and f"error: the input batch holds NaN/Inf values at step {bad}" in err and "--skip-nonfinite" in err, err
    assert "Traceback" not in err
    last = next((tmp_path / "a").glob("*-gan")) / "last.pt"
    kept = load_checkpoint(last)
    assert kept["step"] == bad - 1 and f"{last} is intact" in err
    assert all(torch.isfinite(t).all() for m in kept["models"].values() for t in m.values() if t.is_floating_point())

    code, err = cli(args + ["--out", tmp_path / "b", "--skip-nonfinite"], capsys)
    assert code == 0, err
    done = load_checkpoint(next((tmp_path / "b").glob("*-gan")) / "last.pt")
    assert done["step"] == bad + 1 and done["extra"]["skipped_batches"] == 1
    assert all(torch.isfinite(t).all() for m in done["models"].values() for t in m.values() if t.is_floating_point())


def test_inf_batch_stops_stage_two_naming_the_step_and_skip_nonfinite_continues(data, gan_ckpt, tmp_path, monkeypatch):
    from ganlstm import GanlstmError

    cfg = encoder_config(data, gan_ckpt)
    _, clean = forecaster_train.load_data(forecaster_train.resolve_config(cfg)[0], 0)
    n, bs, bad = len(clean.train), 4, 2
    steps = bad + 1  # within the first epoch, so the bad batch comes once
    _poison_windows(monkeypatch, _item_at(bad, n, bs, 0), float("inf"))
    with pytest.raises(GanlstmError, match=rf"the input batch holds NaN/Inf values at step {bad}; training stopped and the last good checkpoint .* is intact"):
        forecaster_train.train_forecaster(cfg, run_config(tmp_path / "a", steps, save_every=1))
    assert load_checkpoint(next((tmp_path / "a").glob("*-gan_lstm")) / "last.pt")["step"] == bad - 1
    run_dir = forecaster_train.train_forecaster(cfg, run_config(tmp_path / "b", steps, skip_nonfinite=True))
    done = load_checkpoint(run_dir / "last.pt")
    assert done["step"] == steps and done["extra"]["skipped_batches"] == 1
    assert all(torch.isfinite(t).all() for t in done["models"]["forecaster"].values() if t.is_floating_point())


# ---------------------------------------------------------------- determinism


def _assert_bit_identical(a: Path, b: Path) -> int:
    """Every tensor of every model and optimiser state equal (bitwise); returns how many were compared."""
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["step"] == cb["step"] and ca["models"].keys() == cb["models"].keys()
    compared = 0
    for name in ca["models"]:
        sa, sb = ca["models"][name], cb["models"][name]
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key} differs between two runs with the same seed"
            compared += 1
    for name in ca["optimizers"]:
        for pa, pb in zip(ca["optimizers"][name]["state"].values(), cb["optimizers"][name]["state"].values()):
            for key in pa:
                assert torch.equal(torch.as_tensor(pa[key]), torch.as_tensor(pb[key])), f"optimizer {name}.{key} differs"
                compared += 1
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])
    return compared


def test_same_seed_gives_bit_identical_checkpoints_for_each_stage(data, gan_ckpt, tmp_path):
    gan_runs = [gan_train.train_gan(gan_config(data), run_config(tmp_path / name, 3, seed=5)) for name in ("g1", "g2")]
    assert _assert_bit_identical(gan_runs[0] / "last.pt", gan_runs[1] / "last.pt") > 50
    cfg = encoder_config(data, gan_ckpt, sampling_start=0.5, sampling_end=0.5)  # scheduled-sampling coins every step
    enc_runs = [forecaster_train.train_forecaster(cfg, run_config(tmp_path / name, 3, seed=5)) for name in ("e1", "e2")]
    assert _assert_bit_identical(enc_runs[0] / "last.pt", enc_runs[1] / "last.pt") > 20
    other = gan_train.train_gan(gan_config(data), run_config(tmp_path / "g3", 3, seed=6))
    with pytest.raises(AssertionError, match="differs"):  # the comparison can tell runs apart
        _assert_bit_identical(gan_runs[0] / "last.pt", other / "last.pt")


@pytest.fixture
def deterministic_off(monkeypatch):
    """Restore the process-wide flag: a trainer that turns it on leaves it on for later tests otherwise."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # restored by monkeypatch afterwards
    yield
    torch.use_deterministic_algorithms(before)


def test_deterministic_flag_reaches_both_trainers(data, gan_ckpt, tmp_path, capsys, deterministic_off):
    gan_args = ["train-gan", "--data", data, "--size", SIZE, "--nz", GAN.nz, "--latent-grid", 1, "--ngf", GAN.ngf, "--ndf", GAN.ndf,
                "--val-fraction", 0, "--test-fraction", 0, "--batch-size", 4, "--max-steps", 1, "--device", "cpu"]
    enc_args = ["train-encoder", "--gan", gan_ckpt, "--data", data, "--context", 3, "--horizon", 2, "--hidden", 8,
                "--val-fraction", 0, "--test-fraction", 0, "--batch-size", 4, "--max-steps", 1, "--device", "cpu"]
    for name, args in (("train-gan", gan_args), ("train-encoder", enc_args)):
        code, err = cli(args + ["--out", tmp_path / f"{name}-off"], capsys)
        assert code == 0 and not torch.are_deterministic_algorithms_enabled(), f"{name} turned it on unasked: {err}"
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        code, err = cli(args + ["--out", tmp_path / f"{name}-on", "--deterministic"], capsys)
        assert code == 0 and torch.are_deterministic_algorithms_enabled(), f"{name} --deterministic did not turn it on: {err}"
        # Without a fixed cuBLAS workspace every CUDA matmul raises in deterministic mode.
        assert os.environ.pop("CUBLAS_WORKSPACE_CONFIG") == ":4096:8"
        run_dir = next((tmp_path / f"{name}-on").iterdir())
        assert json.loads((run_dir / "config.json").read_text())["run"]["deterministic"] is True
        torch.use_deterministic_algorithms(False)
