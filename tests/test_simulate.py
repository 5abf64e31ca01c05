"""Tests of the built-in merger simulator: reproducibility, output format, physics, files and CLI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganlstm.cli import cli, main
from ganlstm.data import merger_physics as physics
from ganlstm.data import simulate as sim
from ganlstm.data.merger_params import MergerParams
from ganlstm.errors import GanlstmError


def test_arrays_are_deterministic_and_sequence_i_depends_only_on_seed_and_i():
    a, pa = sim.simulate_arrays(3, 3, 16, seed=5)
    b, pb = sim.simulate_arrays(3, 3, 16, seed=5)
    subset, psub = sim.simulate_arrays(2, 3, 16, seed=5)
    other, pother = sim.simulate_arrays(1, 3, 16, seed=6)
    assert pa == pb and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert psub == pa[:2] and all(np.array_equal(x, y) for x, y in zip(subset, a))
    assert pother[0] != pa[0] and not np.array_equal(other[0], a[0])
    assert len({json.dumps(p, sort_keys=True) for p in pa}) == 3  # sequences differ from each other


def test_parallel_workers_give_identical_sequences():
    serial, ps = sim.simulate_arrays(2, 2, 16, seed=1)
    parallel, pp = sim.simulate_arrays(2, 2, 16, seed=1, workers=2)
    assert ps == pp and all(np.array_equal(x, y) for x, y in zip(serial, parallel))


def test_sequence_shape_range_and_motion():
    params = dataclasses.replace(MergerParams(), particles=3000)
    seq = sim.simulate_sequence(params, frames=6, size=24, rng=np.random.default_rng(0))
    assert seq.shape == (6, 1, 24, 24) and seq.dtype == np.float32
    assert seq.min() >= 0.0 and seq.max() <= 1.0
    assert seq.max() > 0.9  # the stretch maps the brightest pixels near 1
    assert (seq > 0.05).mean() > 0.02  # the galaxies cover a visible part of the field, not one pixel
    assert np.abs(seq[0] - seq[-1]).mean() > 0.01  # the merger moves between first and last frame


def test_sky_noise_brightens_the_empty_background():
    params = dataclasses.replace(MergerParams(), particles=2000)
    clean = sim.simulate_sequence(params, 2, 24, np.random.default_rng(0))
    noisy = sim.simulate_sequence(dataclasses.replace(params, sky_noise=0.01), 2, 24, np.random.default_rng(0))
    dark = clean < 0.01  # pixels with (almost) no light in the clean render
    assert noisy[dark].std() > 10 * clean[dark].std() + 1e-3


def test_isolated_disk_conserves_energy_and_stays_in_equilibrium():
    """A galaxy alone (static core, no companion, no friction) over ~20 outer-disk orbits.

    Kick-drift-kick leapfrog is symplectic: each test particle's specific energy must
    oscillate at the 1e-4 level without drift (tolerance 1e-3), and the disk must keep its
    size (median radius within 3%), i.e. the initial conditions are an equilibrium.
    """
    rng = np.random.default_rng(0)
    mass, scale, disk_scale = 1.0, 1.0, 0.7
    pos, vel = physics.make_galaxy(mass, scale, disk_scale, 300, 0.2, 0.05, incl=30.0, node=40.0, rng=rng)
    pos, vel = pos.astype(np.float32), vel.astype(np.float32)  # the simulator's precision
    e0 = physics.specific_energy(pos, vel, mass, scale)
    r_outer = physics.DISK_EXTENT * disk_scale * scale
    outer_period = 2 * np.pi * r_outer / float(physics.circular_speed(np.array(r_outer), mass, scale))
    dt = physics.STEP_FRACTION  # the simulator's step for a unit core
    steps = int(2 * outer_period / dt)
    static_core = np.zeros((steps + 1, 1, 3))
    median_r0 = np.median(np.linalg.norm(pos, axis=0))
    for _ in range(10):  # 10 chunks x 2 outer orbits; a second call continues exactly
        track, vel = physics.integrate_particles(pos, vel, static_core, (mass,), (scale,), dt, record_every=steps)
        pos = track[-1]
        drift = np.abs((physics.specific_energy(pos, vel, mass, scale) - e0) / e0).max()
        assert drift < 1e-3
    assert abs(np.median(np.linalg.norm(pos, axis=0)) / median_r0 - 1) < 0.03


def test_friction_makes_a_typical_merger_coalesce():
    params = MergerParams()  # mid-range values of every sampled parameter
    times = np.linspace(0.0, physics.MAX_TIME, 400)
    with_friction = physics.core_separation(params, times)
    without = physics.core_separation(params, times, friction=False)
    assert with_friction.min() < params.softening / 2
    t_merge = physics.coalescence_time(params)
    assert t_merge is not None and t_merge < physics.MAX_TIME
    assert without.min() > params.softening  # the orbit alone never brings the cores together
    # after coalescence the cores stay together
    assert with_friction[times > t_merge + 5].max() < params.softening


def test_most_sampled_mergers_coalesce_within_the_simulated_time():
    merged = [physics.coalescence_time(MergerParams.sample(np.random.default_rng(i))) is not None for i in range(30)]
    assert np.mean(merged) >= 0.8


def test_invalid_params_and_sizes_are_refused(tmp_path):
    with pytest.raises(GanlstmError, match="mass_ratio"):
        sim.simulate_sequence(MergerParams(mass_ratio=0.0), 2, 16, np.random.default_rng(0))
    (tmp_path / "seq_0000").mkdir()
    with pytest.raises(GanlstmError, match="size >= 4"):
        sim.simulate_dataset(tmp_path, 1, 2, 2, seed=0, overwrite=True, progress=False)
    assert (tmp_path / "seq_0000").is_dir()  # bad arguments are refused before anything is removed


def test_dataset_refuses_non_empty_out_without_overwrite(tmp_path):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "seq_0007").mkdir()  # a stale sequence from an earlier, longer run
    with pytest.raises(GanlstmError, match="--overwrite"):
        sim.simulate_dataset(out, 1, 2, 16, seed=0, progress=False)
    sim.simulate_dataset(out, 1, 2, 16, seed=0, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["seq_0000", "simulation.json"]


def test_interrupted_simulation_resumes_and_readers_never_see_half_a_sequence(tmp_path, monkeypatch):
    from ganlstm.data.frames import read_collection

    whole = sim.simulate_dataset(tmp_path / "whole", 3, 4, 16, seed=5, progress=False)
    real = sim._simulate_one

    def dies_at_third(job):
        if job[1] == 2:
            raise KeyboardInterrupt  # Ctrl-C while simulating sequence 2
        return real(job)

    out = tmp_path / "cut"
    monkeypatch.setattr(sim, "_simulate_one", dies_at_third)
    with pytest.raises(KeyboardInterrupt):
        sim.simulate_dataset(out, 3, 4, 16, seed=5, progress=False)
    monkeypatch.undo()
    (out / ".seq_0002").mkdir()  # as if killed while writing its frames
    (out / ".seq_0002" / "frame_0000.png").write_bytes(b"half a png")
    assert not (out / "simulation.json").exists()
    assert [name for name, _ in read_collection(out)] == ["seq_0000", "seq_0001"]
    with pytest.raises(GanlstmError, match="interrupted simulation with other settings: frames 4 \\(now 5\\)"):
        sim.simulate_dataset(out, 3, 5, 16, seed=5, progress=False)
    sim.simulate_dataset(out, 3, 4, 16, seed=5, progress=False)  # the same call again finishes the job
    assert sorted(p.name for p in out.iterdir()) == ["seq_0000", "seq_0001", "seq_0002", "simulation.json"]
    assert json.loads((out / "simulation.json").read_text()) == json.loads((whole / "simulation.json").read_text())
    for (_, a), (_, b) in zip(read_collection(out), read_collection(whole), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(GanlstmError, match="--overwrite"):  # finished: no longer resumable
        sim.simulate_dataset(out, 3, 4, 16, seed=5, progress=False)


def test_cli_writes_frames_params_and_summary(tmp_path):
    out = tmp_path / "m"
    args = ["simulate", "--out", str(out), "--sequences", "2", "--frames", "3", "--size", "16", "--workers", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    for i in range(2):
        frames = sorted((out / f"seq_{i:04d}").glob("frame_*.png"))
        assert [f.name for f in frames] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
        img = Image.open(frames[0])
        assert img.mode == "L" and img.size == (16, 16)
        params = json.loads((out / f"seq_{i:04d}" / "params.json").read_text())
        MergerParams(**params).check()
    summary = json.loads((out / "simulation.json").read_text())
    assert {k: summary[k] for k in ("sequences", "frames", "size", "seed")} == dict(sequences=2, frames=3, size=16, seed=0)
    # the PNGs are the in-memory frames, quantised to 8 bits
    arrays, _ = sim.simulate_arrays(1, 3, 16, seed=0)
    png = np.stack([np.asarray(Image.open(f)) for f in sorted((out / "seq_0000").glob("frame_*.png"))])
    assert np.abs(png / 255.0 - arrays[0][:, 0]).max() <= 0.5 / 255 + 1e-6


def test_cli_refusal_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path), "--sequences", "1", "--frames", "2", "--size", "16"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--overwrite" in err and len(err.splitlines()) == 1
    assert (tmp_path / "keep.txt").read_text() == "user data"
