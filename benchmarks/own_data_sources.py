"""User-style data sources for benchmarks/own_data.py and benchmarks/stage_one.py.

* ``gif``: ``../shared/data/galaxy_collision/Galaxy_Collision.gif``, a third-party merger movie
  (MIT licence; one 1000 x 1000 palette GIF of 251 frames). Referenced by path, never copied.
* ``sim-colour``: the built-in simulator rendered unlike its default: a third of the particles,
  a PSF twice as wide, sky noise, and a false-colour map (black -> blue -> white -> orange), at
  64 px, written as .npy (T, H, W, 3) uint8 sequences.
* ``shapes``: a non-astronomy sequence: coloured discs and squares bouncing on a dim
  gradient background, 64 px, .npy (T, H, W, 3) uint8.

Each generated collection depends only on its seed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

GIF = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "galaxy_collision" / "Galaxy_Collision.gif"
SOURCES = ("gif", "sim-colour", "shapes")


def _colour_map(x: np.ndarray) -> np.ndarray:
    """Gray (..., ) in [0, 1] -> RGB (..., 3) in [0, 1]: black, blue, white, orange."""
    stops = np.array([0.0, 0.35, 0.75, 1.0])
    colours = np.array([[0, 0, 0], [0.15, 0.3, 0.9], [1, 1, 1], [1.0, 0.6, 0.2]])
    return np.stack([np.interp(x, stops, colours[:, c]) for c in range(3)], axis=-1)


def sim_colour(root: Path, sequences: int = 16, frames: int = 40, size: int = 64, seed: int = 11) -> Path:
    """The simulator, rendered unlike its default (see module docstring); returns the collection directory."""
    from ganlstm.data.merger_params import MergerParams
    from ganlstm.data.simulate import _sequence_rng, simulate_sequence

    out = root / "sim-colour"
    if (out / ".done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for i in range(sequences):
        rng = _sequence_rng(seed, i)
        params = dataclasses.replace(MergerParams.sample(rng), particles=6000, psf=0.024, sky_noise=0.005)
        gray = simulate_sequence(params, frames, size, rng)[:, 0]  # (T, S, S) in [0, 1]
        np.save(out / f"merger_{i:03d}.npy", (_colour_map(gray) * 255 + 0.5).astype(np.uint8))  # (T, S, S, 3)
    (out / ".done").write_text("complete\n")
    return out


def shapes(root: Path, sequences: int = 16, frames: int = 40, size: int = 64, seed: int = 12) -> Path:
    """Bouncing coloured shapes (see module docstring); returns the collection directory."""
    out = root / "shapes"
    if (out / ".done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(sequences):
        background = 0.08 + 0.08 * (np.cos(rng.uniform(0, 6.3)) * xx + np.sin(rng.uniform(0, 6.3)) * yy) / size
        n = int(rng.integers(2, 4))
        pos = rng.uniform(10, size - 10, (n, 2))
        vel = rng.uniform(-2.0, 2.0, (n, 2))
        radius = rng.uniform(4, 9, n)
        colour = rng.uniform(0.3, 1.0, (n, 3))
        square = rng.random(n) < 0.5
        seq = np.empty((frames, size, size, 3), dtype=np.float32)
        for t in range(frames):
            img = np.repeat(background[..., None], 3, axis=2)
            for k in range(n):
                dy, dx = yy - pos[k, 0], xx - pos[k, 1]
                mask = (np.maximum(abs(dy), abs(dx)) <= radius[k]) if square[k] else (dy**2 + dx**2 <= radius[k] ** 2)
                img[mask] = colour[k]
            seq[t] = img
            pos += vel
            for axis in range(2):  # bounce off the walls
                low, high = pos[:, axis] < radius, pos[:, axis] > size - 1 - radius
                vel[low | high, axis] *= -1
                pos[:, axis] = np.clip(pos[:, axis], radius, size - 1 - radius)
        np.save(out / f"shapes_{i:03d}.npy", (np.clip(seq, 0, 1) * 255 + 0.5).astype(np.uint8))
    (out / ".done").write_text("complete\n")
    return out


def source_path(name: str, root: Path, gif: Path = GIF) -> Path:
    """The data path of a named source, generating it under ``root`` if needed."""
    if name == "gif":
        if not gif.exists():
            raise SystemExit(f"{gif} is missing; pass --gif PATH to the galaxy-collision movie (../shared/data/galaxy_collision/).")
        return gif
    if name == "sim-colour":
        return sim_colour(root)
    if name == "shapes":
        return shapes(root)
    raise SystemExit(f"unknown source {name!r}; use one of {', '.join(SOURCES)}.")
