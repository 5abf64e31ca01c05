"""An adversarial reliability audit of ganlstm (issue 18): kills, crafted checkpoints, reader fuzzing, bombs.

Four parts, each counting *cases* and *failures*:

* **kills** -- tiny ``train-gan`` / ``train-encoder`` runs (16 px, ``--save-every 1``) get SIGKILL at a
  random moment (every third the instant a checkpoint temp file appears, i.e. mid-write); every file
  the kill left must load. The run is then resumed (``--resume last``; or started again when the
  kill came before the first checkpoint) to the end of its budget, which must exit 0, and its final
  ``last.pt`` must be bit-identical (every weight, optimiser moment and the RNG) to an uninterrupted
  run's.
* **crafted checkpoints x entry points** -- real tiny checkpoints, each edited at random (config
  values of the wrong type, huge or negative dimensions, removed or unknown keys, tensors of another
  shape or dtype, malformed RNG / optimiser / step / extra fields, flipped or cut bytes, a pickle
  bomb, a wrong kind or version), passed to every command that reads a checkpoint (the list of
  tests/test_untrusted_checkpoints.py). A failure is a traceback, an exit status other than 0/2, a
  run past the time bound, code from the file running, or a resumed run whose ``last.pt`` is unreadable.
* **reader fuzzing** -- valid PNG (8/16-bit, RGB), GIF, multi-page TIFF, NPY, NPZ, FITS and
  ``.fits.gz`` files with random bytes flipped, cut, duplicated or overwritten with extreme values,
  each read within a time bound; the reader must return frames or raise GanlstmError.
* **decompression bombs** -- small files that expand to gigabytes within ``max_pixels`` /
  ``max_frames`` (NPZ, ``.fits.gz``, deflate TIFF pages, GIF and PNG frames), each read in a subprocess
  whose own peak memory (``VmHWM``; ``ru_maxrss`` would count the parent's, inherited through fork)
  must stay under the read bound (``GANLSTM_MAX_READ_BYTES``, 2 GiB) plus 1 GiB, within its time bound.

Usage (the figures in docs/reliability.md; about 13 minutes on one thread)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reliability_audit.py --out /work/bench/audit --kills 30 --crafted 100 --fuzz 10000

(the defaults, 20 kills, 50 crafted checkpoints and 5,000 fuzz cases, take about 8 minutes). It
runs on a snapshot of ``ganlstm/`` taken when it starts (see :func:`use_snapshot`).

writes ``results.json``, ``table.md`` and ``failures.jsonl`` (one line per failure) into ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZE = 16
GAN_FLAGS = ["--size", SIZE, "--nz", 8, "--ngf", 4, "--ndf", 4, "--latent-grid", 1, "--encoder", 8,
             "--val-fraction", 0, "--test-fraction", 0]
ENCODER_FLAGS = ["--context", 3, "--horizon", 2, "--hidden", 8, "--val-fraction", 0, "--test-fraction", 0]
CASE_SECONDS = 120.0  # one CLI call of the crafted-checkpoint part
READ_SECONDS = 10.0  # one read of the fuzzing part
BOMB_SECONDS = 180.0  # one bomb read (a subprocess), including its start
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


# The audit runs a snapshot of the code taken when it starts (other work may edit the tree meanwhile,
# and a reference run and a resume must run the same code): SNAPSHOT_ENV names it, and every
# process drops the editable install's import hook, which would otherwise load the working tree.
SNAPSHOT_ENV = "GANLSTM_AUDIT_CODE"
_USE_SNAPSHOT = ("import os, sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
                 "sys.path.insert(0, os.environ['GANLSTM_AUDIT_CODE'])")
LAUNCH = _USE_SNAPSHOT + "; from ganlstm.cli import main; main(sys.argv[1:])"  # `python -c LAUNCH ARGS` = `ganlstm ARGS`


def use_snapshot(work: Path) -> None:
    """Copy ganlstm and the tests' helpers into ``work/code`` and import them from there, in this process and its children."""
    code = work / "code"
    shutil.copytree(ROOT / "ganlstm", code / "ganlstm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "tests" / "reliability_helpers.py", code / "reliability_helpers.py")
    os.environ[SNAPSHOT_ENV] = ENV[SNAPSHOT_ENV] = str(code)
    assert "ganlstm" not in sys.modules, "ganlstm was imported before the snapshot"
    exec(_USE_SNAPSHOT)  # noqa: S102 - the same two lines every child runs
    global Hang, time_bound, npz_bomb, fits_gz_bomb
    from reliability_helpers import CaseTimeout as Hang  # the tiny bombs and the time bound the tests use
    from reliability_helpers import fits_gz_bomb, npz_bomb, time_bound


class Audit:
    """Counts cases and failures per row, and logs every failure to failures.jsonl."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: dict[str, dict[str, Any]] = {}
        self.failures = (out / "failures.jsonl").open("w")

    def case(self, row: str, ok: bool, **detail: Any) -> None:
        r = self.rows.setdefault(row, {"cases": 0, "failures": 0})
        r["cases"] += 1
        if not ok:
            r["failures"] += 1
            self.failures.write(json.dumps({"row": row, **{k: str(v)[:4000] for k, v in detail.items()}}) + "\n")
            self.failures.flush()

    def note(self, row: str, **facts: Any) -> None:
        self.rows.setdefault(row, {"cases": 0, "failures": 0}).update(facts)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- in-process CLI


def cli(args: list, seconds: float = CASE_SECONDS) -> tuple[Any, str]:
    """``ganlstm ARGS`` in this process: (exit status | "traceback" | "hang", stderr + traceback)."""
    from ganlstm.cli import main

    err = io.StringIO()
    try:
        with time_bound(seconds), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main([str(a) for a in args])
        return 0, err.getvalue()
    except SystemExit as e:
        return (e.code if isinstance(e.code, int) else (0 if e.code is None else 1)), err.getvalue()
    except Hang as e:
        return "hang", err.getvalue() + str(e)
    except BaseException:  # noqa: BLE001 - exactly what the audit counts
        return "traceback", err.getvalue() + traceback.format_exc()


def cli_ok(code: Any, err: str) -> bool:
    """Exit 0, or exit 2 with one ``error:`` line; never a traceback."""
    if code == 0:
        return "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    return code == 2 and len(lines) == 1 and "Traceback" not in err


# ---------------------------------------------------------------- tiny data and runs


def tiny_data(root: Path, sequences: int = 6, frames: int = 12) -> Path:
    from ganlstm.data.simulate import simulate_dataset

    return simulate_dataset(root, sequences=sequences, frames=frames, size=SIZE, seed=1, progress=False)


def gan_command(data: Path, out: Path, steps: int) -> list:
    return ["train-gan", "--data", data, *GAN_FLAGS, "--batch-size", 8, "--max-steps", steps, "--out", out, "--device", "cpu",
            "--save-every", 1]


def encoder_command(data: Path, gan: Path, out: Path, steps: int) -> list:
    return ["train-encoder", "--gan", gan, "--data", data, *ENCODER_FLAGS, "--batch-size", 4, "--max-steps", steps, "--out", out,
            "--device", "cpu", "--save-every", 1]


def only_run(out: Path) -> Path:
    runs = sorted(p for p in out.iterdir() if (p / "last.pt").exists())
    assert len(runs) == 1, runs
    return runs[0] / "last.pt"


def spawn(args: list, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, *map(str, args)], cwd=cwd, env=ENV,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def run_to_end(args: list, cwd: Path, log: Path, timeout: float = 600) -> tuple[int, str]:
    proc = spawn(args, cwd, log)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = -9
    return code, log.read_text(errors="replace")


def identical(a: Path, b: Path) -> tuple[bool, str]:
    """Every model tensor, optimiser state tensor and the torch RNG state equal, bit for bit."""
    import torch

    from ganlstm.checkpoint import load_checkpoint

    ca, cb = load_checkpoint(a), load_checkpoint(b)
    if ca["step"] != cb["step"]:
        return False, f"step {ca['step']} != {cb['step']}"
    for name, sd in ca["models"].items():
        for key, t in sd.items():
            if not torch.equal(t, cb["models"][name][key]):
                return False, f"{name}.{key}"
    for name, opt in ca["optimizers"].items():
        for pid, state in opt["state"].items():
            for key, v in state.items():
                if not torch.equal(torch.as_tensor(v), torch.as_tensor(cb["optimizers"][name]["state"][pid][key])):
                    return False, f"optimizer {name} {pid}.{key}"
    if not torch.equal(ca["rng"]["torch"], cb["rng"]["torch"]):
        return False, "rng"
    return True, ""


# ---------------------------------------------------------------- part 1: kills


def audit_kills(audit: Audit, work: Path, kills: int, rng: random.Random) -> None:
    from ganlstm.checkpoint import load_checkpoint

    data = tiny_data(work / "data")
    ref = work / "reference"
    ref.mkdir()
    stages = {}
    t0 = time.monotonic()
    code, log = run_to_end(gan_command(data, ref / "gan", 18), ref, ref / "gan.log")
    assert code == 0, log[-2000:]
    gan = only_run(ref / "gan")
    stages["train-gan"] = (lambda out: gan_command(data, out, 18), gan, time.monotonic() - t0, "*-gan")
    t0 = time.monotonic()
    code, log = run_to_end(encoder_command(data, gan, ref / "enc", 16), ref, ref / "enc.log")
    assert code == 0, log[-2000:]
    stages["train-encoder"] = (lambda out: encoder_command(data, gan, out, 16), only_run(ref / "enc"), time.monotonic() - t0,
                               "*-gan_lstm")
    say(f"kills: reference runs took {stages['train-gan'][2]:.0f} s and {stages['train-encoder'][2]:.0f} s")
    landed = mid_write = startup = attempts = 0
    while landed < kills and attempts < 3 * kills:
        attempts += 1
        name = "train-gan" if attempts % 2 else "train-encoder"
        command, reference, seconds, glob = stages[name]
        case = work / f"kill_{attempts:03d}"
        case.mkdir()
        out = case / "runs"
        first = command(out)
        proc = spawn(first, case, case / "first.log")
        # The moment: one in five during start-up (before any checkpoint); the others after a random number of
        # checkpoint writes, then either a random fraction of a step later or (every third) the instant the next
        # checkpoint's temp file appears, i.e. during torch.save.
        at_startup, at_write = attempts % 5 == 1, attempts % 3 == 0
        saves, wanted = 0, rng.randint(1, 14)
        last_id = None
        deadline = time.monotonic() + rng.uniform(0.2, 2.5) if at_startup else time.monotonic() + 2 * seconds
        saw_temp, pause_until = False, None
        while proc.poll() is None and time.monotonic() < deadline:
            runs = list(out.glob(glob)) if out.is_dir() else []
            names = [n for d in runs for n in os.listdir(d)]
            if at_startup:
                if "last.pt" in names:
                    break
            else:
                try:
                    st = os.stat(runs[0] / "last.pt") if runs else None
                except FileNotFoundError:
                    st = None
                ident = None if st is None else (st.st_ino, st.st_mtime_ns)
                if ident is not None and ident != last_id:
                    saves, last_id = saves + 1, ident
                if saves >= wanted:
                    if at_write:
                        saw_temp = any(n.startswith(".last.pt.") for n in names)
                        if saw_temp:
                            break
                    elif pause_until is None:
                        pause_until = time.monotonic() + rng.uniform(0.0, 0.2)
                    elif time.monotonic() >= pause_until:
                        break
            time.sleep(0.0005)
        if proc.poll() is not None:  # finished before the kill: not a kill
            shutil.rmtree(case)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed += 1
        run_dirs = sorted(out.glob(glob)) if out.is_dir() else []
        left = [n for d in run_dirs for n in os.listdir(d) if n.endswith(".tmp")]
        mid_write += bool(at_write and saw_temp and left)
        startup += not any((d / "last.pt").exists() for d in run_dirs)
        unreadable = []
        for d in run_dirs:
            for p in d.glob("*.pt"):
                try:
                    load_checkpoint(p)
                except Exception as e:  # noqa: BLE001 - counted
                    unreadable.append(f"{p}: {e}")
            if (d / "config.json").exists():
                try:
                    json.loads((d / "config.json").read_text())
                except ValueError as e:
                    unreadable.append(f"{d / 'config.json'}: {e}")
        audit.case("kills", not unreadable, case=case, unreadable=unreadable)
        has_last = any((d / "last.pt").exists() for d in run_dirs)
        again = [first[0], "--resume", "last", "--out", out, "--max-steps", 18 if name == "train-gan" else 16, "--device", "cpu",
                 "--save-every", 1] if has_last else first
        code, log = run_to_end(again, case, case / "again.log")
        row = "resumes" if has_last else "restarts"
        audit.case(row, code == 0 and "Traceback" not in log, case=case, code=code, log=log[-3000:])
        if code == 0:
            try:
                same, where = identical(only_run(out), reference)
            except Exception as e:  # noqa: BLE001 - an unreadable result is a failure too
                same, where = False, f"{type(e).__name__}: {e}"
            audit.case("bit-identical", same, case=case, differs=where, after=row)
        shutil.rmtree(case, ignore_errors=True)
    audit.note("kills", mid_write=mid_write, before_first_checkpoint=startup, attempts=attempts)
    say(f"kills: {landed} landed ({mid_write} mid-write, {startup} before the first checkpoint) in {attempts} attempts")


# ---------------------------------------------------------------- part 2: crafted checkpoints


WEIRD = ["x", "", None, True, False, -1, 0, 1, 10**6, 2**31, 2**63, 1e300, float("nan"), float("inf"), -1.5, [], {}, [100000],
         [-1], "64", [8, "x"], {"a": 1}]
HUGE = {"ngf": 4096, "ndf": 4096, "nz": 65536, "image_size": 16384, "encoder": 4096, "hidden": [4096] * 8, "kernel": 15,
        "latent_grid": 64, "size": 16384, "context": 10000, "horizon": 100000, "batch_size": 1 << 20, "max_pixels": 2**62}


def _leaves(d: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(d, dict):
        return [leaf for k, v in d.items() for leaf in _leaves(v, path + (k,))] or [path]
    return [path]


def _set(d: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _tensors(payload: dict) -> list[tuple]:
    import torch

    out = []

    def walk(x, path):
        if torch.is_tensor(x):
            out.append(path)
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, path + (k,))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, path + (i,))

    walk({k: payload[k] for k in ("models", "optimizers", "rng") if k in payload}, ())
    return out


def _get(d: Any, path: tuple) -> Any:
    for k in path:
        d = d[k]
    return d


def _edit(payload: dict, rng: random.Random) -> str:
    """One random damage to a loaded checkpoint dict, in place; returns what was done."""
    import torch

    mode = rng.choice(["config value", "config value", "huge dims", "config key", "tensor shape", "tensor dtype", "tensor value",
                       "tensor removed", "rng", "optimizer", "step", "extra", "kind/version", "models"])
    if mode == "config value":
        path = rng.choice(_leaves(payload["config"]))
        value = rng.choice(WEIRD)
        _set(payload["config"], path, value)
        return f"config{list(path)} = {value!r}"
    if mode == "huge dims":
        paths = [p for p in _leaves(payload["config"]) if p and p[-1] in HUGE]
        path = rng.choice(paths)
        _set(payload["config"], path, HUGE[path[-1]] if rng.random() < 0.7 else -abs(rng.choice([1, 64, 10**9])))
        return f"config{list(path)} = {_get(payload['config'], path)!r}"
    if mode == "config key":
        path = rng.choice([p for p in _leaves(payload["config"]) if p])
        parent = _get(payload["config"], path[:-1])
        if rng.random() < 0.5:
            del parent[path[-1]]
            return f"config{list(path)} removed"
        parent["wings"] = 2
        return f"config{list(path[:-1])} + unknown key"
    if mode.startswith("tensor") and _tensors(payload):
        path = rng.choice(_tensors(payload))
        t = _get(payload, path)
        parent = _get(payload, path[:-1])
        if mode == "tensor shape":
            parent[path[-1]] = t.reshape(-1)[: max(1, t.numel() // 2)].clone() if t.numel() > 1 else torch.zeros(3, 3)
        elif mode == "tensor dtype":
            parent[path[-1]] = t.to(rng.choice([torch.int64, torch.bool, torch.complex64, torch.float16]))
        elif mode == "tensor value":
            parent[path[-1]] = torch.full_like(t, rng.choice([float("nan"), float("inf"), 1e30])) if t.is_floating_point() else t
        else:
            del parent[path[-1]]
        return f"{mode} at {list(path)}"
    if mode == "rng":
        choice = rng.choice(["string", "torch", "numpy", "python"])
        if choice == "string":
            payload["rng"] = "not a state"
        elif choice == "torch":
            payload["rng"]["torch"] = rng.choice(["x", payload["rng"]["torch"][:10], torch.zeros(5056, dtype=torch.int64)])
        elif choice == "numpy":
            payload["rng"]["numpy"][rng.choice(["pos", "has_gauss", "keys", "cached_gaussian"])] = rng.choice(WEIRD)
        else:
            payload["rng"]["python"] = rng.choice([[3, [1, 2], None], "x", [3, [2**40] * 625, None], None])
        return f"rng {choice}"
    if mode == "optimizer" and payload.get("optimizers"):
        name = rng.choice(list(payload["optimizers"]))
        opt = payload["optimizers"][name]
        choice = rng.choice(["not a dict", "groups", "params", "lr", "betas", "state shape", "state key"])
        if choice == "not a dict":
            payload["optimizers"][name] = rng.choice(["x", [1, 2], None])
        elif choice == "groups":
            opt["param_groups"] = rng.choice([[], opt["param_groups"] * 2, "x"])
        elif choice == "params" and opt["param_groups"]:
            opt["param_groups"][0]["params"] = rng.choice([opt["param_groups"][0]["params"][:-1], ["a"], [10**9]])
        elif choice == "lr" and opt["param_groups"]:
            opt["param_groups"][0]["lr"] = rng.choice(["fast", -1.0, float("nan"), 1e6, None])
        elif choice == "betas" and opt["param_groups"]:
            opt["param_groups"][0]["betas"] = rng.choice([(0.5,), "x", (float("nan"), 0.9), None])
        elif choice in ("state shape", "state key") and opt["state"]:
            pid = rng.choice(list(opt["state"]))
            if choice == "state shape":
                opt["state"][pid]["exp_avg"] = torch.zeros(3, 2)
            else:
                opt["state"][10**6] = opt["state"].pop(pid)
        return f"optimizer {name} {choice}"
    if mode == "step":
        key = rng.choice(["step", "epoch"])
        payload[key] = rng.choice([-1, "x", 1.5, 10**20, None, True, [3]])
        return f"{key} = {payload[key]!r}"
    if mode == "extra":
        key = rng.choice(["batch_in_epoch", "best_score", "split", "grad_scalers", "rank_rng", "skipped_batches"])
        payload.setdefault("extra", {})[key] = rng.choice(WEIRD)
        return f"extra.{key} = {payload['extra'][key]!r}"
    if mode == "kind/version":
        key = rng.choice(["kind", "format_version"])
        payload[key] = rng.choice(["forecaster", "gan", 99, None, "x"])
        return f"{key} = {payload[key]!r}"
    payload["models"] = rng.choice(["x", {}, {"G": "x"}, [1]])
    return f"models = {payload['models']!r}"


class _Bomb:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import builtins

        return builtins.open, (self.marker, "w")


def craft(src: Path, dst: Path, rng: random.Random, marker: Path, mode: str) -> str:
    """A damaged copy of the real checkpoint ``src`` at ``dst``; returns what was done."""
    import torch

    from ganlstm.checkpoint import atomic_save

    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "bytes":
        data = bytearray(src.read_bytes())
        how = rng.choice(["flip", "cut", "zero"])
        if how == "cut":
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 16)):
                i = rng.randrange(len(data))
                data[i] = 0 if how == "zero" else data[i] ^ (1 << rng.randrange(8))
        dst.write_bytes(bytes(data))
        return f"bytes {how}"
    payload = torch.load(src, weights_only=True)
    if mode == "pickle bomb":
        payload["extra"] = {**payload.get("extra", {}), "note": _Bomb(str(marker))}
        with dst.open("wb") as f:
            torch.save(payload, f, pickle_module=pickle)
        return "pickle bomb"
    what = "; ".join(_edit(payload, rng) for _ in range(rng.choice([1, 1, 1, 2, 3])))
    if rng.random() < 0.6:  # a fresh checksum, so only the edit can be the reason for a refusal
        atomic_save(payload, dst)
    else:
        torch.save(payload, dst)
    return what


def entry_points(g: Path, f: Path, data: Path, runs: Path, out: Path, gan_step: int, enc_step: int) -> dict[str, list]:
    """Every command that reads a checkpoint (tests/test_untrusted_checkpoints.py), with cheap settings."""
    return {
        "sample": ["sample", "--checkpoint", g, "--n", 2, "--out", out / "s.png"],
        "sample (run dir)": ["sample", "--checkpoint", g.parent, "--n", 2, "--out", out / "s2.png"],
        "interpolate": ["interpolate", "--checkpoint", g, "--steps", 2, "--points", 2, "--out", out / "w.gif"],
        "evaluate-gan": ["evaluate-gan", "--checkpoint", g, "--data", data, "--split", "all", "--frames", 2, "--steps", 2,
                         "--restarts", 1, "--device", "cpu", "--out", out / "e.json"],
        "predict": ["predict", "--frames", data / "seq_0000", "--steps", 2, "--checkpoint", f, "--device", "cpu", "--out", out / "pred"],
        "evaluate": ["evaluate", "--checkpoint", f, "--data", data, "--context", 3, "--horizon", 2, "--split", "all",
                     "--device", "cpu", "--out", out / "ev"],
        "export": ["export", "--checkpoint", f, "--out", out / "small.pt"],
        "train-encoder --gan": ["train-encoder", "--gan", g, "--data", data, *ENCODER_FLAGS, "--batch-size", 4, "--max-steps", 1,
                                "--device", "cpu", "--out", out / "enc_runs"],
        "train-gan --resume FILE": ["train-gan", "--resume", g, "--max-steps", gan_step + 1, "--device", "cpu", "--out", out / "gan_runs"],
        "train-gan --resume last": ["train-gan", "--resume", "last", "--max-steps", gan_step + 1, "--device", "cpu", "--out", runs],
        "train-encoder --resume last": ["train-encoder", "--resume", "last", "--max-steps", enc_step + 1, "--device", "cpu", "--out", runs],
        "train-baseline --resume last": ["train-baseline", "--model", "convlstm", "--resume", "last", "--max-steps", enc_step + 1,
                                         "--device", "cpu", "--out", runs],
        "benchmark --checkpoint": ["benchmark", "--quick", "--models", "gan_lstm", "--checkpoint", f"gan={g}", "--device", "cpu",
                                   "--out", out / "bench"],
    }


def audit_crafted(audit: Audit, work: Path, n: int, rng: random.Random) -> None:
    from ganlstm.checkpoint import load_checkpoint

    data = tiny_data(work / "data", sequences=5, frames=8)
    base = work / "base"
    code, err = cli([*gan_command(data, base, 2)[:-2], "--save-every", 0], 600)
    assert code == 0, err
    gan = only_run(base)
    code, err = cli(encoder_command(data, gan, base / "enc", 1), 600)
    assert code == 0, err
    enc = only_run(base / "enc")
    steps = {"gan": load_checkpoint(gan)["step"], "enc": load_checkpoint(enc)["step"]}
    modes = ["edit"] * 7 + ["bytes", "bytes", "pickle bomb"]
    per_entry: dict[str, int] = {}
    for i in range(n):
        case = work / f"crafted_{i:03d}"
        marker = case / "PWNED"
        mode = rng.choice(modes)
        g = case / "given_gan" / "last.pt"
        f = case / "given_forecaster" / "last.pt"
        what = {"gan": craft(gan, g, rng, marker, mode), "forecaster": craft(enc, f, rng, marker, mode)}
        runs = case / "runs"
        for name, src, cfg in (("000-gan", g, gan.parent), ("000-gan_lstm", f, enc.parent), ("000-convlstm", f, enc.parent)):
            (runs / name).mkdir(parents=True)
            shutil.copy(src, runs / name / "last.pt")
            shutil.copy(cfg / "config.json", runs / name / "config.json")
        out = case / "out"
        for entry, args in entry_points(g, f, data, runs, out, steps["gan"], steps["enc"]).items():
            t0 = time.monotonic()
            code, err = cli(args)
            ok = cli_ok(code, err) and not marker.exists()
            problem = "" if ok else ("code ran" if marker.exists() else f"exit {code}")
            if ok and code == 0 and "--resume" in args:  # the resumed run's checkpoint must be readable
                target = Path(args[args.index("--out") + 1])
                stage = {"train-gan": "*-gan", "train-encoder": "*-gan_lstm", "train-baseline": "*-convlstm"}[args[0]]
                for p in target.glob(f"{stage}/last.pt"):
                    try:
                        load_checkpoint(p)
                    except Exception as e:  # noqa: BLE001 - counted
                        ok, problem = False, f"unreadable after resume: {e}"
            audit.case("crafted", ok, case=i, entry=entry, damage=what, problem=problem, seconds=round(time.monotonic() - t0, 1),
                       stderr=err[-3000:])
            per_entry[entry] = per_entry.get(entry, 0) + (code == 0)
            marker.unlink(missing_ok=True)
        shutil.rmtree(case, ignore_errors=True)
        if (i + 1) % 10 == 0:
            say(f"crafted: {i + 1}/{n} checkpoints, {audit.rows['crafted']['failures']} failures so far")
    audit.note("crafted", checkpoints=n, entry_points=len(per_entry), accepted_per_entry=per_entry)


# ---------------------------------------------------------------- part 3: reader fuzzing


def seed_files() -> dict[str, bytes]:
    """Valid small files of every format the readers take (several frames where the format has them)."""
    from PIL import Image

    r = np.random.default_rng(0)
    frames = r.integers(0, 256, (3, 12, 10), dtype=np.uint8)
    out = {}

    def pil(ext: str, images: list, **kw) -> bytes:
        buf = io.BytesIO()
        images[0].save(buf, format=ext, save_all=len(images) > 1, append_images=images[1:], **kw)
        return buf.getvalue()

    images = [Image.fromarray(f) for f in frames]
    out[".png"] = pil("PNG", images[:1])
    out["16.png"] = pil("PNG", [Image.fromarray(frames[0].astype(np.uint16) * 257)])
    out["rgb.png"] = pil("PNG", [Image.fromarray(np.stack([frames[0]] * 3, -1))])
    out[".gif"] = pil("GIF", images)
    out[".tif"] = pil("TIFF", images, compression="tiff_deflate")
    buf = io.BytesIO()
    np.save(buf, frames.astype(np.float32))
    out[".npy"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=frames)
    out[".npz"] = buf.getvalue()
    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(frames.astype(np.int16)).writeto(buf)
    out[".fits"] = buf.getvalue()
    import gzip

    out[".fits.gz"] = gzip.compress(out[".fits"])
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        how = rng.choice(["flip", "byte", "cut", "dup", "int", "delete", "insert"])
        if not b:
            break
        i = rng.randrange(len(b))
        if how == "flip":
            b[i] ^= 1 << rng.randrange(8)
        elif how == "byte":
            b[i] = rng.randrange(256)
        elif how == "cut":
            b = b[:i]
        elif how == "dup":
            j = min(len(b), i + rng.randint(1, 512))
            b[i:i] = b[i:j] * rng.randint(1, 4)
        elif how == "int":  # an extreme little- or big-endian integer over a header field
            value = rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**31, 65535 * 65535 % 2**32])
            b[i:i + 4] = struct.pack(rng.choice(["<I", ">I"]), value)
        elif how == "delete":
            del b[i:i + rng.randint(1, 64)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(b)


def audit_fuzz(audit: Audit, work: Path, n: int, rng: random.Random) -> None:
    from ganlstm.config import FrameOptions
    from ganlstm.data.frames import read_sequence
    from ganlstm.errors import GanlstmError

    seeds = seed_files()
    names = sorted(seeds)
    read = accepted = 0
    for i in range(n):
        kind = names[i % len(names)]
        ext = ".png" if kind.endswith(".png") else kind
        data = mutate(seeds[kind], rng)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            if ext == ".png":
                target = Path(tmp) / "frames"
                target.mkdir()
                (target / "f0.png").write_bytes(data)
            else:
                target = Path(tmp) / f"seq{ext}"
                target.write_bytes(data)
            opts = FrameOptions(size=8) if i % 2 else FrameOptions()
            problem = ""
            t0 = time.monotonic()
            try:
                with time_bound(READ_SECONDS), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    x = read_sequence(target, opts)
                accepted += 1
                if not (x.dtype == np.float32 and x.ndim == 4 and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
                    problem = f"invalid frames {x.dtype} {x.shape}"
            except GanlstmError as e:
                if not str(e).strip() or "\n" in str(e).strip():
                    problem = f"error not one line: {e!r}"
            except Hang as e:
                problem = f"hang: {e}"
            except BaseException:  # noqa: BLE001 - exactly what the audit counts
                problem = traceback.format_exc()[-3000:]
            read += 1
            audit.case("fuzz", not problem, kind=kind, case=i, problem=problem, seconds=round(time.monotonic() - t0, 2))
    audit.note("fuzz", accepted=accepted, formats=names)
    say(f"fuzz: {read} cases, {accepted} read as frames, {audit.rows['fuzz']['failures']} failures")


# ---------------------------------------------------------------- part 4: decompression bombs


_READER = _USE_SNAPSHOT + """
import time, warnings
warnings.simplefilter("ignore")
from ganlstm.config import FrameOptions
from ganlstm.data.frames import read_sequence
from ganlstm.errors import GanlstmError
size = None if sys.argv[2] == "none" else int(sys.argv[2])
t0 = time.monotonic()
try:
    x = read_sequence(sys.argv[1], FrameOptions(size=size))
    text = f"read {x.shape} {time.monotonic() - t0:.1f}s"
except GanlstmError as e:
    text = f"refused {time.monotonic() - t0:.1f}s {e}"
# This process's own peak (VmHWM): ru_maxrss would count the parent's memory, inherited through fork.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak * 1024, text)
"""


def bombs(folder: Path) -> list[tuple[str, Path, str]]:
    """(name, path, --size) of small files that expand within max_pixels / max_frames."""
    from PIL import Image

    out = []
    out.append(("npz 250 x 2048^2 u8 (1 GiB, the issue's 1 MB .npz)", npz_bomb(folder / "a.npz", (250, 2048, 2048)), "none"))
    out.append(("npz 250 x 2048^2 u8 read at --size 16", folder / "a.npz", "16"))
    out.append(("npz 64 x 1024^2 u8 (256 MiB as float32)", npz_bomb(folder / "b.npz", (64, 1024, 1024)), "none"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (100000, 4096, 4096)})
    with zipfile.ZipFile(folder / "c.npz", "w", compression=zipfile.ZIP_LZMA) as zf:
        zf.writestr("frames.npy", header.getvalue() + bytes(2**16))
    out.append(("npz declaring 100000 x 4096^2 f8 (LZMA, header only)", folder / "c.npz", "none"))
    out.append(("fits.gz 300 x 1024^2 u8 (1.2 GiB as float32)", fits_gz_bomb(folder / "d.fits.gz", (1024, 1024, 300)), "none"))
    out.append(("fits.gz 300 x 2048^2 u8 (4.7 GiB as float32)", fits_gz_bomb(folder / "e.fits.gz", (2048, 2048, 300)), "none"))
    out.append(("fits.gz 300 x 2048^2 u8 read at --size 16", folder / "e.fits.gz", "16"))
    def pages(n: int, start: int = 0):  # blank 4096^2 frames but for one pixel (no encoder merges them), made one at a time
        for i in range(start, start + n):
            im = Image.new("L", (4096, 4096))
            im.putpixel((i, 0), 255)
            yield im

    first = next(pages(1))
    first.save(folder / "f.tif", save_all=True, append_images=pages(99, 1), compression="tiff_deflate")
    out.append(("tif 100 pages of 4096^2 deflate (6.25 GiB as float32)", folder / "f.tif", "none"))
    out.append(("tif 100 pages of 4096^2 read at --size 16", folder / "f.tif", "16"))
    first.save(folder / "g.gif", save_all=True, append_images=pages(11, 1))
    out.append(("gif 12 frames of 4096^2 (768 MiB as float32)", folder / "g.gif", "none"))
    (folder / "h").mkdir()
    for i, im in enumerate(pages(40)):
        im.save(folder / "h" / f"f{i:03d}.png")
    out.append(("png frame folder, 40 x 4096^2 (2.5 GiB as float32)", folder / "h", "none"))
    out.append(("png frame folder, 40 x 4096^2 read at --size 64", folder / "h", "64"))
    return out


def audit_bombs(audit: Audit, work: Path) -> None:
    from ganlstm.data.limits import read_byte_limit

    folder = work / "bombs"
    folder.mkdir()
    t0 = time.monotonic()
    cases = bombs(folder)
    say(f"bombs: built {len(cases)} in {time.monotonic() - t0:.0f} s")
    allowed = read_byte_limit() + 2**30  # the read bound, plus the interpreter, numpy, Pillow and one frame's temporaries
    for name, path, size in cases:
        problem, rss, code, text, err = "", 0, None, "", ""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen([sys.executable, "-c", _READER, str(path), size], cwd=ROOT, env=ENV, stdout=out, stderr=errf)
            t0 = time.monotonic()
            try:
                code = proc.wait(timeout=BOMB_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                code, problem = proc.wait(), "hang"
            out.seek(0)
            errf.seek(0)
            text, err = out.read().decode(errors="replace").strip(), errf.read().decode(errors="replace")
        peak, _, text = text.partition(" ")
        rss = int(peak) if peak.isdigit() else 0
        seconds = time.monotonic() - t0
        if not problem and (code != 0 or not text.startswith(("read", "refused"))):
            problem = f"exit {code}: {err[-2000:]}"
        if not problem and rss > allowed:
            problem = f"peak memory {rss / 2**30:.2f} GiB"
        size_kb = sum(p.stat().st_size for p in ([path] if path.is_file() else path.iterdir())) / 1e3
        audit.case("bombs", not problem, bomb=name, file_kb=round(size_kb), outcome=text[:300], peak_gib=round(rss / 2**30, 2),
                   seconds=round(seconds, 1), problem=problem)
        audit.rows["bombs"].setdefault("detail", []).append(
            {"bomb": name, "file_kb": round(size_kb), "outcome": text.split(" ")[0], "peak_gib": round(rss / 2**30, 2),
             "seconds": round(seconds, 1)})
        say(f"bombs: {name}: {text[:120]} (peak {rss / 2**30:.2f} GiB, {seconds:.1f} s)")
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- the table


ROWS = [
    ("kills", "SIGKILLs at random moments of tiny training runs: during start-up, after 1-14 checkpoint writes, or mid-write",
     "a file the kill left does not load"),
    ("resumes", "`--resume last` after a kill, to the end of the budget", "exit not 0, or a traceback"),
    ("restarts", "the original command again, after a kill before the first checkpoint", "exit not 0, or a traceback"),
    ("bit-identical", "final last.pt of a resumed or restarted run vs an uninterrupted run", "any tensor or the RNG differs"),
    ("crafted", "crafted checkpoints x entry points", "traceback, exit not 0/2, hang, code ran, unreadable last.pt after a resume"),
    ("fuzz", "mutated PNG/GIF/TIFF/NPY/NPZ/FITS/FITS.GZ bytes, each read within 10 s", "not frames or one GanlstmError, or a hang"),
    ("bombs", "decompression bombs within max_pixels / max_frames, read in a subprocess", "peak RSS above the read bound + 1 GiB, hang, traceback"),
]


def table(audit: Audit) -> str:
    lines = ["| row | what | cases | failures | a failure is |", "|---|---|---|---|---|"]
    for key, what, failure in ROWS:
        r = audit.rows.get(key)
        if r is None:
            continue
        cases = r["cases"]
        if key == "crafted":
            cases = f"{r['cases']} ({r.get('checkpoints')} x {r.get('entry_points')})"
        if key == "kills":
            cases = f"{r['cases']} ({r.get('mid_write', 0)} mid-write, {r.get('before_first_checkpoint', 0)} before the first checkpoint)"
        lines.append(f"| {key} | {what} | {cases} | {r['failures']} | {failure} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/bench/audit"))
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--crafted", type=int, default=50)
    parser.add_argument("--fuzz", type=int, default=5000)
    parser.add_argument("--no-bombs", action="store_true")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--parts", default="kills,crafted,fuzz,bombs")
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="audit-", dir=a.out))
    use_snapshot(work)
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    audit = Audit(a.out)
    parts = a.parts.split(",")
    t0 = time.monotonic()
    seconds = {}
    try:
        for part, run in (("kills", lambda: audit_kills(audit, work / "kills", a.kills, random.Random(a.seed))),
                          ("crafted", lambda: audit_crafted(audit, work / "crafted", a.crafted, random.Random(a.seed + 1))),
                          ("fuzz", lambda: audit_fuzz(audit, work / "fuzz", a.fuzz, random.Random(a.seed + 2))),
                          ("bombs", lambda: audit_bombs(audit, work / "bombs"))):
            if part not in parts or (part == "bombs" and a.no_bombs):
                continue
            (work / part).mkdir(parents=True, exist_ok=True)
            t = time.monotonic()
            say(f"{part}: start")
            run()
            seconds[part] = round(time.monotonic() - t)
            (a.out / "results.json").write_text(json.dumps({"rows": audit.rows, "seconds": seconds}, indent=2, default=str) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        audit.failures.close()
    text = table(audit)
    (a.out / "table.md").write_text(text + "\n")
    (a.out / "results.json").write_text(json.dumps({"rows": audit.rows, "seconds": seconds, "total_seconds": round(time.monotonic() - t0),
                                                    "args": {k: str(v) for k, v in vars(a).items()}}, indent=2, default=str) + "\n")
    print(text)


if __name__ == "__main__":
    main()
