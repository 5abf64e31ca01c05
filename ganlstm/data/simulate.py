"""The built-in galaxy-merger simulator: restricted N-body with dynamical friction, rendered to frames.

Real merger simulations (GADGET-2, Illustris, ...) cannot be downloaded everywhere, so this
module is the default data set for training, the demo and the benchmark. It follows the
restricted three-body method of Toomre & Toomre (1972, ApJ 178, 623), as used by JSPAM
(Wallin, Holincheck & Harvey 2016, Astron. Comput. 16, 26) for Galaxy Zoo: Mergers: the
parameters of a merger are :class:`~ganlstm.data.merger_params.MergerParams`, its physics
(Plummer cores, dynamical friction, test-particle disks and bulges, leapfrog) is
:mod:`ganlstm.data.merger_physics`, and :mod:`ganlstm.data.merger_render` turns the particles into frames.

The particles are projected along a sampled line of sight, binned into an S x S image,
blurred by a Gaussian PSF and asinh-stretched. Units: G = 1, the primary has mass 1 and
Plummer scale 1. See ``docs/simulator.md`` for the parameter ranges and measured speed.

This module simulates whole sequences (:func:`simulate_sequence`, :func:`simulate_arrays`) and
writes collections of them, resumably (:func:`simulate_dataset`).
"""
from __future__ import annotations

import json
import math
import multiprocessing
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import GanlstmError
from ..version import __version__
from .merger_params import MergerParams
from .merger_physics import MAX_TIME, base_timestep, coalescence_time, initial_particles, integrate_cores, integrate_particles
from .merger_render import camera_axes, field_half_width, render

# Extra time shown after coalescence, as a fraction of the coalescence time: the remnant
# settles and the tails keep expanding.
SETTLE_FRACTION = 0.1


# ---------------------------------------------------------------------------- sequences


def simulate_sequence(params: MergerParams, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Simulate one merger: float32 frames (frames, 1, size, size) in [0, 1].

    The frames are evenly spaced from the start of the encounter to a little after the
    cores coalesce (or to ``MAX_TIME`` if they do not), so the whole interaction fits.
    """
    _check_counts(1, frames, size)
    particles = simulate_particles(params, frames, rng)
    camera = camera_axes(params)
    xy = np.einsum("ck,tkn->tcn", camera.astype(np.float32), particles.positions)  # (T, 2, N)
    half_width = field_half_width(np.einsum("ck,tgk->tgc", camera, particles.cores), params)
    return render(xy, size, half_width, params.psf, params.sky_noise, rng)


def end_time(params: MergerParams) -> float:
    """When a simulated sequence ends: a little after the cores coalesce, or ``MAX_TIME`` if they do not."""
    t_merge = coalescence_time(params)
    return MAX_TIME if t_merge is None else min(MAX_TIME, (1.0 + SETTLE_FRACTION) * t_merge)


class MergerParticles(NamedTuple):
    """The particles of one simulated merger, frame by frame (see :func:`simulate_particles`)."""

    times: np.ndarray  # (T,) simulation time of each frame
    positions: np.ndarray  # (T, 3, N) float32 particle positions
    masses: np.ndarray  # (N,) float32: the equal share (m1 + m2) / N of the total mass
    cores: np.ndarray  # (T, 2, 3) positions of the two cores


def simulate_particles(params: MergerParams, frames: int, rng: np.random.Generator) -> MergerParticles:
    """The particles :func:`simulate_sequence` renders, before its projection: times, positions, masses, cores.

    The same steps as :func:`simulate_sequence` (same frame times, same leapfrog, same draws from
    ``rng`` for the initial particles): with an ``rng`` in the same state, these are the particles
    behind its frames. Coordinates are the orbital frame (the cores orbit in the x-y plane, each disk
    tilted by its ``incl``/``node``) in simulation units (G = 1, the primary has mass 1 and Plummer
    scale 1). The test particles are massless in the physics; light follows mass
    (:func:`initial_particles` splits them between the galaxies by mass), so each is given the
    equal share ``(m1 + m2) / N`` of the total mass.
    """
    _check_counts(1, frames, 4)
    params.check()
    frame_dt = end_time(params) / max(frames - 1, 1)
    substeps = max(1, math.ceil(frame_dt / base_timestep(params)))
    dt = frame_dt / substeps
    steps = substeps * (frames - 1)

    m1, m2 = params.masses
    rel = integrate_cores(params, dt, steps)  # (steps + 1, 2) core 2 relative to core 1
    rel3 = np.concatenate([rel, np.zeros((steps + 1, 1))], axis=1)
    # The centre of mass stays at the origin: the drag is internal to the pair.
    cores = np.stack([-m2 / (m1 + m2) * rel3, m1 / (m1 + m2) * rel3], axis=1)  # (steps + 1, 2, 3)
    pos, vel = initial_particles(params, cores[0], rng)
    track, _ = integrate_particles(pos, vel, cores, params.masses, params.scales, dt, substeps)  # (T, 3, N)
    masses = np.full(track.shape[2], (m1 + m2) / track.shape[2], dtype=np.float32)  # (N,)
    return MergerParticles(frame_dt * np.arange(frames), track, masses, cores[::substeps])


def _check_counts(sequences: int, frames: int, size: int) -> None:
    if sequences < 1 or frames < 1 or size < 4:
        raise GanlstmError(
            f"simulate needs sequences >= 1, frames >= 1 and size >= 4, got {sequences}, {frames}, {size}; pass larger values."
        )


def _sequence_rng(seed: int, index: int) -> np.random.Generator:
    # Sequence i depends only on (seed, i): subsets and parallel workers reproduce it.
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _simulate_one(args: tuple[int, int, int, int]) -> tuple[np.ndarray, dict]:
    seed, index, frames, size = args
    rng = _sequence_rng(seed, index)
    params = MergerParams.sample(rng)
    return simulate_sequence(params, frames, size, rng), params.to_dict()


def simulate_arrays(
    sequences: int, frames: int, size: int, seed: int, workers: int = 1
) -> tuple[list[np.ndarray], list[dict]]:
    """Simulate ``sequences`` mergers in memory: float32 arrays (frames, 1, size, size) and their params.

    Deterministic for a seed; sequence i depends only on (seed, i). ``workers`` > 1
    simulates sequences in parallel processes with identical results.
    """
    _check_counts(sequences, frames, size)
    results = list(_simulate_many(seed, range(sequences), frames, size, workers, progress=False))
    return [r[0] for r in results], [r[1] for r in results]


def _simulate_many(
    seed: int, indices: Sequence[int] | range, frames: int, size: int, workers: int, progress: bool
) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield (frames, params) in index order, from this process or a pool of ``workers``."""
    from tqdm.auto import tqdm

    jobs = [(seed, i, frames, size) for i in indices]
    bar = dict(total=len(jobs), desc="simulate", unit="seq", disable=not progress)
    if workers <= 1 or len(jobs) <= 1:
        yield from tqdm(map(_simulate_one, jobs), **bar)
        return
    with multiprocessing.get_context(_START_METHOD).Pool(min(workers, len(jobs))) as pool:
        yield from tqdm(pool.imap(_simulate_one, jobs), **bar)


# fork starts workers in milliseconds; elsewhere (macOS/Windows defaults) fall back to spawn.
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


PARTIAL = ".simulation.partial.json"  # written first, replaced by simulation.json when every sequence is done


def simulate_dataset(
    out: Path,
    sequences: int,
    frames: int,
    size: int,
    seed: int,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Write ``out/seq_0000/frame_0000.png`` ... (8-bit grayscale), ``seq_*/params.json`` and ``simulation.json``.

    Refuses a non-empty ``out`` unless ``overwrite``; then earlier ``seq_*`` folders are
    replaced so no stale sequence survives. Each sequence is written into a hidden folder and
    renamed when complete, so readers never see half a sequence, and ``simulation.json``
    appears only when all are done. An interrupted call resumes, wherever it was killed (even
    while writing its progress file): the same call again keeps the finished sequences and
    simulates the rest (sequence i depends only on (seed, i)); see :func:`_resumable`.
    Returns ``out``.
    """
    out = Path(out)
    _check_counts(sequences, frames, size)
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"{out} exists and is not a directory; pass another --out.")
    args = dict(sequences=sequences, frames=frames, size=size, seed=seed, generator="ganlstm.data.simulate")
    if out.is_dir() and any(out.iterdir()) and not _resumable(out, args, overwrite):
        if not overwrite:
            raise GanlstmError(f"{out} is not empty; pass --overwrite to replace its sequences or choose another --out.")
        for old in [*out.glob("seq_*"), *out.glob(".seq_*")]:
            if old.is_dir():
                shutil.rmtree(old)
        for name in ("simulation.json", PARTIAL):
            (out / name).unlink(missing_ok=True)
    from PIL import Image

    from ..checkpoint import atomic_write_bytes  # after the refusals above, which stay instant (torch loads here)

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".seq_*"):  # a sequence cut off mid-write
        shutil.rmtree(stale)
    for tmp in _temp_files(out):  # a progress or summary file cut off mid-write
        tmp.unlink(missing_ok=True)
    atomic_write_bytes(out / PARTIAL, (json.dumps(args, indent=2) + "\n").encode())
    todo = [i for i in range(sequences) if not (out / f"seq_{i:04d}").is_dir()]
    for i, (seq, params) in zip(todo, _simulate_many(seed, todo, frames, size, workers, progress)):
        tmp, folder = out / f".seq_{i:04d}", out / f"seq_{i:04d}"
        tmp.mkdir()
        pixels = np.round(seq[:, 0] * 255.0).astype(np.uint8)  # (T, S, S)
        for t, frame in enumerate(pixels):
            Image.fromarray(frame).save(tmp / f"frame_{t:04d}.png")
        (tmp / "params.json").write_text(json.dumps(params, indent=2) + "\n")
        tmp.rename(folder)
    atomic_write_bytes(out / "simulation.json", (json.dumps({**args, "ganlstm_version": __version__}, indent=2) + "\n").encode())
    (out / PARTIAL).unlink()
    return out


def _resumable(out: Path, args: dict, overwrite: bool) -> bool:
    """True if ``out`` holds an interrupted simulation with exactly ``args`` (and no ``overwrite``).

    Interrupted means any of: the progress file is there (or, killed while it was written, only a temp
    file of it or of ``simulation.json`` with these settings); ``simulation.json`` was written but the
    progress file not yet removed; or ``out`` holds nothing but finished sequences of these settings
    (checked against their params.json and frames) and leftovers of an interrupted write (temp files,
    hidden ``.seq_*`` folders). Raises GanlstmError when saved settings differ from ``args``.
    """
    partial, final = out / PARTIAL, out / "simulation.json"
    if overwrite:
        return False
    if final.exists():  # finished, unless killed between writing it and removing the progress file
        return partial.is_file() and _saved_settings(final) == args
    candidates = [partial] if partial.is_file() else []
    saved = next((s for s in map(_saved_settings, candidates + _temp_files(out)) if s is not None), None)
    if saved is None:  # no readable record of the settings: the finished sequences must show them
        return _holds_only_sequences_of(out, args)
    if saved != args:
        differ = ", ".join(f"{k} {saved.get(k)} (now {v})" for k, v in args.items() if saved.get(k) != v)
        raise GanlstmError(f"{out} holds an interrupted simulation with other settings: {differ}; rerun it with those settings "
                           f"to finish it, or pass --overwrite to start again.")
    return True


def _temp_files(out: Path) -> list[Path]:
    """Temp files that atomic writes of the progress file or simulation.json leave when killed (``.NAME.XXXX.tmp``)."""
    return sorted(p for name in (PARTIAL, "simulation.json") for p in out.glob(f".{name}.*.tmp") if p.is_file())


def _saved_settings(path: Path) -> dict | None:
    """The settings recorded in a progress/summary file (without ``ganlstm_version``), or None if unreadable."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return None
    if not isinstance(saved, dict):
        return None
    saved.pop("ganlstm_version", None)
    return saved


_SEQ_NAME = re.compile(r"seq_(\d{4,})")


def _holds_only_sequences_of(out: Path, args: dict) -> bool:
    """Whether every entry of ``out`` is a finished sequence of ``args``, a hidden ``.seq_*`` folder or a temp file."""
    temps = set(_temp_files(out))
    for entry in out.iterdir():
        if entry in temps or (entry.name.startswith(".seq_") and entry.is_dir()):
            continue
        m = _SEQ_NAME.fullmatch(entry.name)
        if m is None or not entry.is_dir() or not _is_finished_sequence(entry, int(m.group(1)), args):
            return False
    return True


def _is_finished_sequence(folder: Path, index: int, args: dict) -> bool:
    """Whether ``folder`` is sequence ``index`` exactly as simulate_dataset(**args) writes it (params, frame names, size)."""
    from PIL import Image

    if folder.name != f"seq_{index:04d}" or index >= args["sequences"]:
        return False
    expected = {f"frame_{t:04d}.png" for t in range(args["frames"])} | {"params.json"}
    try:
        if {p.name for p in folder.iterdir()} != expected:
            return False
        params = json.loads((folder / "params.json").read_text())
        with Image.open(folder / "frame_0000.png") as im:
            size = im.size
    except (OSError, ValueError):  # unreadable params.json or frame: not finished
        return False
    return params == MergerParams.sample(_sequence_rng(args["seed"], index)).to_dict() and size == (args["size"],) * 2
