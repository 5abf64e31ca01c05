"""Tests of ``ganlstm render``: snapshots written by pynbody (tipsy, GADGET-2) from the built-in simulator's particles,
rendered to surface-density cubes that read back, conserve mass and keep time order."""
from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganlstm.cli import cli, main
from ganlstm.data.frames import read_raw_sequence, read_sequence
from ganlstm.data.merger_params import MergerParams
from ganlstm.data.merger_render import camera_axes, field_half_width, render
from ganlstm.data.simulate import simulate_particles, simulate_sequence
from ganlstm.errors import GanlstmError

pynbody = pytest.importorskip("pynbody")
from pynbody import units as pu  # noqa: E402 - only once pynbody is known to be there

from ganlstm.data import snapshots as snap  # noqa: E402

T, SIZE = 5, 24
LENGTH, MASS = pu.Unit("3 kpc"), pu.Unit("1e11 Msol")  # the simulator's length and mass units, as written here
SIM_TIME_GYR = float(((LENGTH**3 / (pu.G * MASS)) ** (1, 2)).in_units("Gyr"))
# GADGET-2 format 2: a 16-byte "HEAD" label block, the header's 4-byte length, then NumFiles 124 bytes into it.
NUM_FILES_OFFSET = 16 + 4 + 124
TIPSY_TIME_GYR = float(((pu.Unit("kpc") ** 3 / (pu.G * pu.Unit("1e10 Msol"))) ** (1, 2)).in_units("Gyr"))


@pytest.fixture(scope="module")
def merger():
    """One small simulated merger: times (T,) in Gyr, positions (T, N, 3) in kpc, masses (N,) in Msol."""
    rng = np.random.default_rng(11)
    params = dataclasses.replace(MergerParams.sample(rng), particles=1500, incl1=60.0)
    p = simulate_particles(params, T, rng)
    kpc, msol = float(LENGTH.in_units("kpc")), float(MASS.in_units("Msol"))
    return p.times * SIM_TIME_GYR, np.moveaxis(p.positions, 1, 2).astype(np.float64) * kpc, p.masses.astype(np.float64) * msol


def write_tipsy(path: Path, pos: np.ndarray, mass: np.ndarray, t_gyr: float, family: str = "star") -> None:
    """A tipsy file in pynbody's default tipsy units (kpc, 1e10 Msol, G = 1), as read without a .param file."""
    s = pynbody.new(**{family: len(mass)})
    for name in ("eps", "phi", "metals", "tform", "rho", "temp"):  # every field of a tipsy record set, none left garbage
        s[name] = np.full(len(mass), 0.05 if name == "eps" else 0.0)
    s["vel"] = np.zeros_like(pos)  # the simulator's velocities are not rendered
    s["pos"] = pos
    s["pos"].units = "kpc"
    s["mass"] = mass / 1e10
    s["mass"].units = "1e10 Msol"
    s.properties["time"] = t_gyr / TIPSY_TIME_GYR
    s.write(fmt=pynbody.snapshot.tipsy.TipsySnap, filename=str(path))


def write_gadget(path: Path, pos: np.ndarray, mass: np.ndarray, t_gyr: float) -> None:
    """A non-cosmological GADGET-2 binary file (format 2) in the units pynbody assumes for GADGET."""
    cfg = {k: pu.Unit(pynbody.config_parser.get("gadget-units", k)) for k in ("pos", "vel", "mass")}
    to_pos, to_mass = pu.Unit("kpc").in_units(cfg["pos"], a=1, h=1), pu.Unit("Msol").in_units(cfg["mass"], a=1, h=1)
    s = pynbody.new(star=len(mass))
    s["vel"] = np.zeros_like(pos)
    s["pos"] = pos * to_pos
    s["pos"].units = pu.Unit("kpc") / to_pos
    s["mass"] = mass * to_mass
    s["mass"].units = pu.Unit("Msol") / to_mass
    # GADGET's header time is pynbody's "a"; h = 0 marks the file as non-cosmological.
    s.properties.update(a=t_gyr * pu.Unit("Gyr").in_units(cfg["pos"] / cfg["vel"], a=1, h=1), z=0.0, h=0.0,
                        omegaM0=0.0, omegaL0=0.0, boxsize=pu.Unit("1 kpc"))
    s.write(fmt=pynbody.snapshot.gadget.GadgetSnap, filename=str(path))


@pytest.fixture(scope="module")
def tipsy_dir(merger, tmp_path_factory):
    """5 tipsy snapshots named against time order: snap_004 is the first in time, snap_000 the last."""
    times, pos, mass = merger
    d = tmp_path_factory.mktemp("tipsy")
    for k in range(T):
        write_tipsy(d / f"snap_{T - 1 - k:03d}.tipsy", pos[k], mass, times[k])
    (d / "README.txt").write_text("not a snapshot")  # pynbody's ASCII reader would claim it
    return d


def _mass_in_field(pos: np.ndarray, mass: np.ndarray, record: dict) -> float:
    i, j = snap.PROJECTIONS[record["projection"]]
    c, hw = np.asarray(record["centre"]), record["half_width"]
    inside = (np.abs(pos[:, i] - c[i]) <= hw) & (np.abs(pos[:, j] - c[j]) <= hw)
    return float(mass[inside].sum())


def test_simulate_particles_are_the_particles_simulate_sequence_renders():
    params = dataclasses.replace(MergerParams.sample(np.random.default_rng(3)), particles=800)
    frames = simulate_sequence(params, 4, 16, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    p = simulate_particles(params, 4, rng)
    camera = camera_axes(params)
    xy = np.einsum("ck,tkn->tcn", camera.astype(np.float32), p.positions)
    half_width = field_half_width(np.einsum("ck,tgk->tgc", camera, p.cores), params)
    assert np.array_equal(render(xy, 16, half_width, params.psf, params.sky_noise, rng), frames)
    assert p.positions.shape == (4, 3, 800) and p.times[0] == 0 and np.all(np.diff(p.times) > 0)
    assert p.masses.sum() == pytest.approx(sum(params.masses), rel=1e-5)


def test_cli_renders_tipsy_to_a_fits_cube_in_time_order_that_conserves_mass(tipsy_dir, merger, tmp_path):
    times, pos, mass = merger
    out = tmp_path / "frames"
    result = CliRunner().invoke(cli, ["render", "--snapshots", str(tipsy_dir), "--out", str(out), "--size", str(SIZE)])
    assert result.exit_code == 0, result.output
    assert "Msol kpc**-2" in result.output and "field of view" in result.output and "5 frames" in result.output
    record = json.loads((out / "render.json").read_text())
    assert record["snapshots"] == [f"snap_{k:03d}.tipsy" for k in range(T - 1, -1, -1)]  # time order, not name order
    assert record["order"] == "time" and record["time_unit"] == "Gyr"
    np.testing.assert_allclose(record["times"], times, rtol=1e-5, atol=1e-9)
    assert read_sequence(out / "surface_density.fits").shape == (T, 1, SIZE, SIZE)
    raw, _ = read_raw_sequence(out / "surface_density.fits")  # (T, 1, S, S) in Msol / kpc^2
    pixel_area = record["pixel_size"] ** 2
    for k in range(T):  # the image holds exactly the mass inside the field
        assert raw[k].sum(dtype=np.float64) * pixel_area == pytest.approx(_mass_in_field(pos[k], mass, record), rel=1e-4)
        assert record["mass_outside_fraction"][k] == pytest.approx(1 - _mass_in_field(pos[k], mass, record) / mass.sum(), abs=1e-5)
    c0 = (pos[0] * mass[:, None]).sum(0) / mass.sum()  # the field: the first snapshot's centre of mass and 99th-pct radius
    np.testing.assert_allclose(record["centre"], c0, atol=1e-3)
    assert record["half_width"] == pytest.approx(np.percentile(np.linalg.norm(pos[0] - c0, axis=1), 99), rel=1e-4)
    from astropy.io import fits

    with fits.open(out / "surface_density.fits") as hdul:
        assert hdul[0].header["BUNIT"] == "solMass kpc-2" and hdul[0].header["PROJECT"] == "xy"
        assert list(hdul["TIMES"].data["SNAPSHOT"]) == record["snapshots"]
    assert any("param file" in n for n in record["notes"])  # the default tipsy units are said


def test_gadget_snapshots_render_like_the_same_particles_in_tipsy(tipsy_dir, merger, tmp_path):
    times, pos, mass = merger
    gadget = tmp_path / "gadget"
    gadget.mkdir()
    for k in range(T):
        write_gadget(gadget / f"snapshot_{k:03d}", pos[k], mass, times[k])
    a = snap.render_snapshots(gadget, tmp_path / "g", size=SIZE, fmt="npy", progress=False)
    b = snap.render_snapshots(tipsy_dir, tmp_path / "t", size=SIZE, fmt="npy", progress=False)
    assert a.units == b.units == snap.PHYSICAL_UNITS and a.order == "time"
    np.testing.assert_allclose(a.times, b.times, rtol=1e-4)
    np.testing.assert_allclose(a.centre, b.centre, atol=1e-3)
    ga, tb = np.load(tmp_path / "g" / "surface_density.npy"), np.load(tmp_path / "t" / "surface_density.npy")
    assert ga.shape == tb.shape == (T, SIZE, SIZE)
    np.testing.assert_allclose(ga.sum(axis=(1, 2)), tb.sum(axis=(1, 2)), rtol=2e-3)  # float32 files: a particle may change bin
    assert read_sequence(tmp_path / "g" / "surface_density.npy").shape == (T, 1, SIZE, SIZE)


def test_a_multi_file_gadget_snapshot_is_one_frame(merger, tmp_path):
    times, pos, mass = merger
    d = tmp_path / "split"
    d.mkdir()
    write_gadget(d / "snapshot_000", pos[0], mass, times[0])
    half = len(mass) // 2
    for part, rows in enumerate((slice(0, half), slice(half, None))):  # pynbody cannot split a file: write the parts
        path = d / f"snapshot_001.{part}"
        write_gadget(path, pos[1][rows], mass[rows], times[1])
        data = bytearray(path.read_bytes())
        assert data[4:8] == b"HEAD" and struct.unpack_from("<i", data, NUM_FILES_OFFSET) == (1,)
        struct.pack_into("<i", data, NUM_FILES_OFFSET, 2)  # the header's NumFiles: this snapshot has two parts
        path.write_bytes(bytes(data))
    r = snap.render_snapshots(d, tmp_path / "out", size=16, fmt="npy", progress=False)
    assert r.snapshots == ["snapshot_000", "snapshot_001"] and r.frames == 2
    cube = np.load(tmp_path / "out" / "surface_density.npy")
    record = dataclasses.asdict(r)
    assert cube[1].sum(dtype=np.float64) * r.pixel_size**2 == pytest.approx(_mass_in_field(pos[1], mass, record), rel=1e-4)


def test_a_gadget_hdf5_snapshot_written_with_h5py_renders(merger, tmp_path):
    """pynbody cannot write HDF5 snapshots (GADGET-3/4 style), so this one is written with h5py, in GADGET's default units."""
    h5py = pytest.importorskip("h5py")
    _, pos, mass = merger
    d = tmp_path / "hdf5"
    d.mkdir()
    with h5py.File(d / "snap_000.hdf5", "w") as f:
        counts = np.array([0, 0, 0, 0, len(mass), 0], dtype=np.uint32)  # type 4: stars
        header = {"NumPart_ThisFile": counts, "NumPart_Total": counts, "NumPart_Total_HighWord": np.zeros(6, np.uint32),
                  "MassTable": np.zeros(6), "Time": 1.0, "Redshift": 0.0, "BoxSize": 0.0, "Omega0": 0.0,
                  "OmegaLambda": 0.0, "HubbleParam": 1.0, "NumFilesPerSnapshot": 1}
        f.create_group("Header").attrs.update(header)
        stars = f.create_group("PartType4")
        stars["Coordinates"] = (pos[0] / 1000).astype(np.float32)  # Mpc
        stars["Velocities"] = np.zeros_like(pos[0], dtype=np.float32)
        stars["Masses"] = (mass / 1e10).astype(np.float32)  # 1e10 Msol
        stars["ParticleIDs"] = np.arange(len(mass), dtype=np.uint64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(unit information|infer units).*")
        r = snap.render_snapshots(d, tmp_path / "out", size=16, fmt="npy", progress=False)
    cube = np.load(tmp_path / "out" / "surface_density.npy")
    assert r.units == snap.PHYSICAL_UNITS and cube.shape == (1, 16, 16)
    mass_in_field = _mass_in_field(pos[0], mass, dataclasses.asdict(r))
    assert cube.sum(dtype=np.float64) * r.pixel_size**2 == pytest.approx(mass_in_field, rel=1e-4)


def test_projection_xz_differs_from_xy_for_an_inclined_disc(tipsy_dir):
    sim = snap.load_snapshot(tipsy_dir / f"snap_{T - 1:03d}.tipsy")  # the first in time: two discs, one at 60 degrees
    xy, xz = (snap.render_snapshot(sim, 32, projection=p) for p in ("xy", "xz"))
    assert xy.shape == xz.shape == (32, 32) and xy.dtype == np.float32
    assert np.abs(xy - xz).sum() > 0.3 * xy.sum()
    pos, mass, known = snap.family_particles(sim, "stars")
    assert known and (xy.sum() * (2 * np.percentile(np.linalg.norm(pos - (pos * mass[:, None]).sum(0) / mass.sum(), axis=1), 99) / 32) ** 2
                      == pytest.approx(mass.sum() * 0.99, rel=0.02))


def test_non_empty_out_is_refused_with_exit_2_and_overwrite_replaces_the_rendering(tipsy_dir, tmp_path, capsys):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--snapshots", str(tipsy_dir), "--out", str(out), "--size", "16"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--overwrite" in err and len(err.splitlines()) == 1
    args = ["render", "--snapshots", str(tipsy_dir), "--out", str(out), "--size", "16", "--overwrite"]
    assert CliRunner().invoke(cli, [*args, "--format", "png16"]).exit_code == 0
    record = json.loads((out / "render.json").read_text())
    assert record["files"] == [f"frame_{k:04d}.png" for k in range(T)] and record["stretch"]["kind"] == "asinh"
    png = np.stack([np.asarray(Image.open(out / f)) for f in record["files"]]).astype(np.float64) / 65535  # (T, S, S)
    st = record["stretch"]
    density = st["softening"] * np.sinh(png * np.arcsinh(st["reference"] / st["softening"]))  # the recorded inverse
    assert CliRunner().invoke(cli, [*args, "--format", "fits"]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "render.json", "surface_density.fits"]  # no stale PNG
    raw, _ = read_raw_sequence(out / "surface_density.fits")
    np.testing.assert_allclose(density, raw[:, 0], atol=1e-3 * st["reference"])


def test_a_directory_without_snapshots_gets_one_sentence(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "frame.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--snapshots", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "no simulation snapshot" in err and ".png" in err
    with pytest.raises(SystemExit):
        main(["render", "--snapshots", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    assert "does not exist" in capsys.readouterr().err


def test_a_missing_family_is_refused_naming_the_families_present(tmp_path, merger, capsys):
    _, pos, mass = merger
    d = tmp_path / "dark"
    d.mkdir()
    write_tipsy(d / "halo.tipsy", pos[0], mass, 0.0, family="dm")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--snapshots", str(d), "--out", str(tmp_path / "out"), "--quantity", "gas"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "no gas particles" in err and "dm" in err and "--quantity dm" in err
    with pytest.raises(GanlstmError, match="unknown quantity 'bh'.*holds dm"):
        snap.family_particles(snap.load_snapshot(d / "halo.tipsy"), "bh")
    assert snap.render_snapshots(d, tmp_path / "dm", size=8, quantity="dm", progress=False).frames == 1
    bare = pynbody.new(star=10)  # in memory, without units: the values stay as they are, and that is said
    bare["pos"], bare["mass"] = pos[0][:10], mass[:10]
    p, m, known = snap.family_particles(bare, "stars")
    assert known is False and np.array_equal(m, mass[:10]) and np.allclose(p, pos[0][:10])


def test_an_unreadable_snapshot_is_named(tmp_path, tipsy_dir):
    d = tmp_path / "broken"
    shutil.copytree(tipsy_dir, d)
    data = (d / "snap_002.tipsy").read_bytes()
    (d / "snap_002.tipsy").write_bytes(data[:200])  # the header promises particles the file no longer holds
    with pytest.raises(GanlstmError, match="snap_002.tipsy") as info:
        snap.render_snapshots(d, tmp_path / "out", size=8, progress=False)
    assert len(str(info.value).splitlines()) == 1


def test_sizes_and_a_missing_pynbody_are_refused_in_one_sentence(tipsy_dir, tmp_path, monkeypatch):
    for size in (4, 5000):
        with pytest.raises(GanlstmError, match="between 8 and 4096"):
            snap.render_snapshots(tipsy_dir, tmp_path / "out", size=size)
    monkeypatch.setitem(sys.modules, "pynbody", None)  # import pynbody now raises ImportError
    with pytest.raises(GanlstmError, match=r"needs pynbody: pip install 'ganlstm\[snapshots\]'"):
        snap.render_snapshots(tipsy_dir, tmp_path / "out")


def test_path_refusals_come_before_pynbody_and_torch_load(tipsy_dir, tmp_path):
    import subprocess

    (tmp_path / "keep.txt").write_text("user data")
    probe = ("import sys\nfrom ganlstm.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
             "    print('code', e.code, 'torch' in sys.modules, 'pynbody' in sys.modules, file=sys.stderr)\n")
    for out in (tmp_path, tmp_path / "keep.txt"):
        r = subprocess.run([sys.executable, "-c", probe, "render", "--snapshots", str(tipsy_dir), "--out", str(out)],
                           capture_output=True, text=True, timeout=60)
        assert r.stderr.strip().splitlines()[-1] == "code 2 False False", r.stderr
