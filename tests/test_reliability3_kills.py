"""Issue 18, "also": ``ganlstm simulate`` killed with a real SIGKILL, then run again, ends as an uninterrupted run.

tests/test_reliability2_simulate.py builds the leftovers of a kill by hand; here the command runs in a
subprocess and gets SIGKILL the instant its folder shows a chosen moment (polled every ~0.5 ms): its
progress file being written, a sequence half written, its summary being written, or a random moment.
Running the same command again must finish the job, and the folder must then hold exactly the files
of a run that was never interrupted.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


from ganlstm.data import simulate as sim
from reliability_helpers import cli

ARGS = dict(sequences=4, frames=6, size=16, seed=4)
TIMEOUT = 120.0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _command(out: Path) -> list[str]:
    return ["simulate", "--out", str(out), *[f"--{k}={v}" for k, v in ARGS.items()]]


MOMENTS = {
    "progress file being written": lambda names: any(n.startswith(f".{sim.PARTIAL}.") for n in names),
    "a sequence half written": lambda names: any(n.startswith(".seq_") for n in names),
    "summary being written": lambda names: any(n.startswith(".simulation.json.") for n in names),
}


def _kill_when(out: Path, moment, delay: float | None, tmp: Path) -> tuple[bool, set[str]]:
    """Start simulate, SIGKILL it at ``moment`` (or ``delay`` s after its progress file exists); (landed, what the folder held)."""
    proc = subprocess.Popen([sys.executable, "-m", "ganlstm", *_command(out)], cwd=tmp, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline, started = time.monotonic() + TIMEOUT, None
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            names = set(os.listdir(out)) if out.is_dir() else set()
            if delay is not None and started is None and sim.PARTIAL in names:
                started = time.monotonic()
            due = moment(names) if delay is None else started is not None and time.monotonic() - started >= delay
            if due:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=TIMEOUT)
                return proc.returncode == -signal.SIGKILL, names
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return False, set()


def test_simulate_killed_for_real_at_any_moment_finishes_when_run_again(tmp_path, capsys):
    whole = tmp_path / "whole"
    assert cli(_command(whole), capsys)[0] == 0
    expected = _files(whole)
    rng = random.Random(18)
    cases = [(name, moment, None) for name, moment in MOMENTS.items()] + [("random moment", None, rng.uniform(0.0, 0.6))]
    landed = []
    for name, moment, delay in cases:
        out = tmp_path / name.replace(" ", "_")
        hit, held = _kill_when(out, moment, delay, tmp_path)
        if not hit:  # the run finished before the moment came: nothing was interrupted
            continue
        assert "simulation.json" not in held or name == "random moment"
        code, err = cli(_command(out), capsys)  # the same command again
        assert code == 0, f"{name}: the rerun after a SIGKILL exited {code}: {err}"
        assert _files(out) == expected, f"{name}: the folder differs from an uninterrupted run's"
        landed.append(name)
    print(f"\nsimulate: {len(landed)} real SIGKILLs landed and were finished by a rerun: {', '.join(landed)}")
    assert "a sequence half written" in landed and len(landed) >= 2, landed
