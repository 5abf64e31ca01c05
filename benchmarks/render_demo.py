"""Simulation snapshots to frames: one simulated merger written as tipsy snapshots by pynbody, then rendered.

The built-in simulator's particles (:func:`ganlstm.data.simulate.simulate_particles`) of one merger
are written as ``--snapshots`` tipsy files (pynbody's default tipsy units: kpc, 1e10 Msol, G = 1;
the simulator's length unit is taken as 3 kpc and its mass unit as 1e11 Msol), rendered at
``--size`` px exactly as ``ganlstm render`` does (:func:`ganlstm.data.snapshots.render_snapshots`,
stars, xy, FITS cube in Msol / kpc^2), and a strip of 6 evenly spaced frames is saved, asinh-stretched
for display, to ``docs/demo/rendered_snapshot.png``. Prints the time of each step::

    python benchmarks/render_demo.py                     # 40 snapshots, 128 px
    python benchmarks/render_demo.py --snapshots 60 --work /tmp/snaps
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from ganlstm.data.frames import read_raw_sequence
from ganlstm.data.merger_params import MergerParams
from ganlstm.data.simulate import simulate_particles
from ganlstm.data.snapshots import import_pynbody, render_snapshots
from ganlstm.viz import save_grid

LENGTH_KPC, MASS_MSOL = 3.0, 1e11  # the simulator's length and mass units, as written into the snapshots
STRIP = 6  # frames shown
DISPLAY_SOFTENING = 0.02  # asinh softening of the picture, as a fraction of the cube's 99.9th percentile


def write_tipsy_snapshots(directory: Path, snapshots: int, seed: int) -> int:
    """Write one simulated merger as ``snap_000.tipsy`` ... in ``directory``; returns the particle count."""
    pynbody = import_pynbody()
    units = pynbody.units
    rng = np.random.default_rng(seed)
    params = MergerParams.sample(rng)
    p = simulate_particles(params, snapshots, rng)  # times (T,), positions (T, 3, N), masses (N,)
    sim_time = (units.Unit(f"{LENGTH_KPC} kpc") ** 3 / (units.G * units.Unit(f"{MASS_MSOL} Msol"))) ** (1, 2)
    tipsy_time = (units.Unit("kpc") ** 3 / (units.G * units.Unit("1e10 Msol"))) ** (1, 2)
    to_tipsy_time = float(sim_time.in_units(tipsy_time))
    n = p.positions.shape[2]
    for k in range(snapshots):
        s = pynbody.new(star=n)
        for name in ("eps", "phi", "metals", "tform"):  # every field of a tipsy star record set
            s[name] = np.full(n, 0.05 if name == "eps" else 0.0)
        s["vel"] = np.zeros((n, 3))
        s["pos"] = p.positions[k].T.astype(np.float64) * LENGTH_KPC
        s["pos"].units = "kpc"
        s["mass"] = p.masses.astype(np.float64) * (MASS_MSOL / 1e10)
        s["mass"].units = "1e10 Msol"
        s.properties["time"] = float(p.times[k]) * to_tipsy_time
        s.write(fmt=pynbody.snapshot.tipsy.TipsySnap, filename=str(directory / f"snap_{k:03d}.tipsy"))
    return n


def display(cube: np.ndarray) -> np.ndarray:
    """Surface density (T, 1, H, W) -> [0, 1] by one asinh stretch for the whole strip."""
    ref = max(float(np.quantile(cube, 0.999)), 1e-30)
    soft = DISPLAY_SOFTENING * ref
    return np.clip(np.arcsinh(cube / soft) / math.asinh(ref / soft), 0.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=40)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--work", type=Path, help="directory for the snapshots and the rendering (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "demo" / "rendered_snapshot.png")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        snaps, frames = work / "snapshots", work / "frames"
        snaps.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        n = write_tipsy_snapshots(snaps, args.snapshots, args.seed)
        t1 = time.perf_counter()
        r = render_snapshots(snaps, frames, size=args.size, overwrite=True, progress=True)
        t2 = time.perf_counter()
        cube, _ = read_raw_sequence(frames / r.files[0])  # (T, 1, S, S) in Msol / kpc^2
        shown = np.linspace(0, len(cube) - 1, STRIP).round().astype(int)
        path = save_grid(display(cube[shown]), args.out, nrow=STRIP, overwrite=True)
    print(f"{args.snapshots} tipsy snapshots of {n} star particles written in {t1 - t0:.2f} s; "
          f"rendered at {args.size} px in {t2 - t1:.2f} s ({(t2 - t1) / args.snapshots * 1e3:.0f} ms per snapshot)")
    print(f"units {r.units}; field {2 * r.half_width:.1f} kpc square ({r.field_choice}); "
          f"mass outside the field: {100 * min(r.mass_outside_fraction):.1f}% to {100 * max(r.mass_outside_fraction):.1f}%")
    print(f"frames {', '.join(map(str, shown))} at t = {', '.join(f'{r.times[i]:.2f}' for i in shown)} {r.time_unit} "
          f"-> {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
