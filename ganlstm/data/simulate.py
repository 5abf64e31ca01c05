"""The built-in galaxy-merger simulator: restricted N-body with dynamical friction, rendered to frames.

Real merger simulations (GADGET-2, Illustris, ...) cannot be downloaded everywhere, so this
module is the default data set for training, the demo and the benchmark. It follows the
restricted three-body method of Toomre & Toomre (1972, ApJ 178, 623), as used by JSPAM
(Wallin, Holincheck & Harvey 2016, Astron. Comput. 16, 26) for Galaxy Zoo: Mergers:

* Each galaxy is a massive softened core with a Plummer potential
  ``phi(r) = -G M / sqrt(r^2 + a^2)`` (Plummer 1911) carrying massless test particles: an
  exponential disk on circular orbits with a small velocity dispersion, plus a compact
  spherical bulge of particles on circular orbits in random planes.
* The two cores move on a bound or parabolic orbit given by its Keplerian pericentre and
  eccentricity. Their mutual force uses the combined softening ``sqrt(a1^2 + a2^2)``, and a
  Chandrasekhar (1943) dynamical-friction drag (Binney & Tremaine 2008, eq. 8.13), evaluated
  with each core's Plummer density and velocity dispersion, makes them spiral in and coalesce.
* Test particles feel both cores and are advanced with kick-drift-kick leapfrog; the core
  orbit is integrated first (it is a 2-D problem in the orbital plane) and replayed.

The particles are projected along a sampled line of sight, binned into an S x S image,
blurred by a Gaussian PSF and asinh-stretched. Units: G = 1, the primary has mass 1 and
Plummer scale 1. See ``docs/simulator.md`` for the parameter ranges and measured speed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import GanlstmError

G = 1.0  # gravitational constant in simulation units

# Timestep of the leapfrog in units of the smaller core's dynamical time sqrt(a^3 / M):
# ~60 steps per orbit at the core scale keeps the energy error of an isolated disk ~1e-4.
STEP_FRACTION = 0.1
# How long the cores may take to coalesce, in simulation units, before we give up and
# simply show the encounter up to this time.
MAX_TIME = 120.0
# Extra time shown after coalescence, as a fraction of the coalescence time: the remnant
# settles and the tails keep expanding.
SETTLE_FRACTION = 0.1
# Cores count as coalesced once their separation falls below this fraction of the
# combined softening length sqrt(a1^2 + a2^2).
COALESCE_FRACTION = 0.5
DISK_EXTENT = 5.0  # disks are truncated at this many scale lengths
DISK_THICKNESS = 0.08  # vertical Gaussian scale height, in disk scale lengths
DISK_MARGIN = 4.5  # the field keeps this many disk scale lengths around each core
BULGE_SCALE = 0.25  # bulge Plummer scale, in units of the core's Plummer scale
# asinh stretch softening, as a fraction of the sequence's 99.9th-percentile brightness:
# linear below it, logarithmic above, so faint tails and bright cores both show.
ASINH_SOFTENING = 0.02


@dataclass
class MergerParams:
    """Everything that defines one simulated merger; ``sample`` draws it from the documented ranges.

    Angles are in degrees. The orbit lies in the x-y plane with angular momentum along +z;
    a disk's spin axis is tilted from +z by ``incl`` towards azimuth ``node`` (``incl`` < 90
    is prograde, > 90 retrograde). The camera looks along the direction with polar angle
    ``view_theta`` and azimuth ``view_phi`` and is rolled by ``view_roll``.
    """

    mass_ratio: float = 0.5  # M2 / M1 (primary mass M1 = 1)
    pericentre: float = 2.25  # Keplerian pericentre distance, in primary core scales
    eccentricity: float = 0.75  # < 1 bound, = 1 parabolic
    separation: float = 6.0  # initial core separation (clamped to the apocentre)
    disk_scale1: float = 0.7  # primary disk scale length, in its core scale
    disk_scale2: float = 0.7  # secondary disk scale length, in its core scale
    incl1: float = 30.0
    node1: float = 0.0
    incl2: float = 30.0
    node2: float = 90.0
    view_theta: float = 30.0
    view_phi: float = 0.0
    view_roll: float = 0.0
    particles: int = 18000  # total test particles, split between the galaxies by mass
    bulge_fraction: float = 0.2  # share of each galaxy's particles in its bulge
    dispersion: float = 0.05  # disk velocity dispersion as a fraction of the circular speed
    coulomb_log: float = 1.25  # ln(Lambda) of the dynamical-friction drag
    psf: float = 0.012  # Gaussian PSF sigma, as a fraction of the field width
    sky_noise: float = 0.0  # Gaussian sky noise sigma, as a fraction of the display range

    @classmethod
    def sample(cls, rng: np.random.Generator) -> MergerParams:
        """Draw a merger from the documented ranges (``docs/simulator.md``)."""
        prograde = rng.random(2) < 0.75  # prograde encounters make the long tidal tails
        tilt = rng.uniform(0.0, 60.0, 2)
        incl = np.where(prograde, tilt, 180.0 - tilt)
        return cls(
            mass_ratio=float(np.exp(rng.uniform(math.log(0.25), 0.0))),
            pericentre=float(rng.uniform(1.5, 3.0)),
            eccentricity=float(rng.uniform(0.6, 0.9)),
            separation=float(rng.uniform(5.0, 7.0)),
            disk_scale1=float(rng.uniform(0.5, 0.9)),
            disk_scale2=float(rng.uniform(0.5, 0.9)),
            incl1=float(incl[0]),
            node1=float(rng.uniform(0.0, 360.0)),
            incl2=float(incl[1]),
            node2=float(rng.uniform(0.0, 360.0)),
            # cos(theta) uniform in [cos 60deg, 1]: directions in a cap around the orbital pole.
            view_theta=float(np.degrees(np.arccos(rng.uniform(0.5, 1.0)))),
            view_phi=float(rng.uniform(0.0, 360.0)),
            view_roll=float(rng.uniform(0.0, 360.0)),
            particles=int(rng.integers(12000, 24001)),
            bulge_fraction=float(rng.uniform(0.1, 0.3)),
            dispersion=float(rng.uniform(0.02, 0.08)),
            coulomb_log=float(rng.uniform(1.0, 1.5)),
        )

    def to_dict(self) -> dict:
        """Plain JSON-safe dict; ``MergerParams(**d)`` rebuilds it."""
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Raise GanlstmError for values the physics cannot run with."""
        problems = [
            ("mass_ratio", self.mass_ratio > 0),
            ("pericentre", self.pericentre > 0),
            ("eccentricity", self.eccentricity > 0),
            ("separation", self.separation > 0),
            ("disk_scale1", self.disk_scale1 > 0),
            ("disk_scale2", self.disk_scale2 > 0),
            ("particles", self.particles >= 2),
            ("bulge_fraction", 0 <= self.bulge_fraction <= 1),
            ("dispersion", self.dispersion >= 0),
            ("coulomb_log", self.coulomb_log >= 0),
            ("psf", self.psf >= 0),
            ("sky_noise", self.sky_noise >= 0),
        ]
        bad = [name for name, ok in problems if not ok]
        if bad:
            raise GanlstmError(
                f"MergerParams has invalid {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}; "
                "use positive sizes and counts, 0 <= bulge_fraction <= 1 and non-negative dispersion, coulomb_log, psf, sky_noise."
            )

    @property
    def masses(self) -> tuple[float, float]:
        return 1.0, self.mass_ratio

    @property
    def scales(self) -> tuple[float, float]:
        # Plummer scale ~ sqrt(M): equal central surface density (Freeman's law for disks).
        return 1.0, math.sqrt(self.mass_ratio)

    @property
    def softening(self) -> float:
        """Softening length of the core-core force, sqrt(a1^2 + a2^2)."""
        a1, a2 = self.scales
        return math.hypot(a1, a2)


# ---------------------------------------------------------------------------- potentials


def plummer_potential(r: np.ndarray, mass: float, scale: float) -> np.ndarray:
    """Plummer potential at radius ``r``: -G M / sqrt(r^2 + a^2)."""
    return -G * mass / np.sqrt(r * r + scale * scale)


def plummer_density(r: float, mass: float, scale: float) -> float:
    """Plummer mass density: 3 M / (4 pi a^3) (1 + r^2 / a^2)^(-5/2)."""
    return 3.0 * mass / (4.0 * math.pi * scale**3) * (1.0 + (r / scale) ** 2) ** -2.5


def plummer_dispersion(r: float, mass: float, scale: float) -> float:
    """1-D velocity dispersion of an isotropic Plummer sphere: sigma^2 = G M / (6 sqrt(r^2 + a^2))."""
    return math.sqrt(G * mass / (6.0 * math.sqrt(r * r + scale * scale)))


def circular_speed(r: np.ndarray, mass: float, scale: float) -> np.ndarray:
    """Circular speed in a Plummer potential: v^2 = G M r^2 / (r^2 + a^2)^(3/2)."""
    s = r * r + scale * scale
    return np.sqrt(G * mass * r * r / (s * np.sqrt(s)))


def specific_energy(pos: np.ndarray, vel: np.ndarray, mass: float, scale: float) -> np.ndarray:
    """Energy per unit mass of test particles (3, N) in a static Plummer core at the origin."""
    r = np.sqrt(np.einsum("ij,ij->j", pos, pos, dtype=np.float64))
    return 0.5 * np.einsum("ij,ij->j", vel, vel, dtype=np.float64) + plummer_potential(r, mass, scale)


# ---------------------------------------------------------------------------- core orbit


def _friction(r: float, v: float, params: MergerParams) -> float:
    """Magnitude of the Chandrasekhar drag on the relative velocity (acts along -v).

    Each core is dragged by the other's Plummer sphere: a = 4 pi G^2 M ln(Lambda) rho F(X) / v^2,
    F(X) = erf(X) - 2X/sqrt(pi) exp(-X^2), X = v / (sqrt(2) sigma). The relative
    acceleration is the sum of both terms (the halos absorb the momentum).
    """
    (m1, m2), (a1, a2) = params.masses, params.scales
    total = 0.0
    for mass_self, mass_host, a_host in ((m2, m1, a1), (m1, m2, a2)):
        x = v / (math.sqrt(2.0) * plummer_dispersion(r, mass_host, a_host))
        f = math.erf(x) - 2.0 * x / math.sqrt(math.pi) * math.exp(-x * x)
        total += mass_self * plummer_density(r, mass_host, a_host) * f
    return 4.0 * math.pi * G * G * params.coulomb_log * total / max(v * v, 1e-12)


def initial_orbit(params: MergerParams) -> tuple[np.ndarray, np.ndarray]:
    """Relative position and velocity (2-D, orbital plane) of core 2 about core 1, inbound.

    The cores start at ``params.separation`` on the Keplerian conic with the given
    pericentre and eccentricity (at apocentre if the orbit never reaches that far).
    """
    mu = G * sum(params.masses)
    e, rp = params.eccentricity, params.pericentre
    p = rp * (1.0 + e)  # semi-latus rectum
    r0 = params.separation if e >= 1.0 else min(params.separation, p / (1.0 - e))
    r0 = max(r0, rp)
    cos_f = float(np.clip((p / r0 - 1.0) / e, -1.0, 1.0))
    f = -math.acos(cos_f)  # negative true anomaly: before pericentre
    vr = math.sqrt(mu / p) * e * math.sin(f)
    vt = math.sqrt(mu / p) * (1.0 + e * math.cos(f))
    rhat = np.array([math.cos(f), math.sin(f)])
    phat = np.array([-math.sin(f), math.cos(f)])
    return r0 * rhat, vr * rhat + vt * phat


def integrate_cores(
    params: MergerParams, dt: float, steps: int, friction: bool = True, stop_within: float | None = None
) -> np.ndarray:
    """Relative core position (steps + 1, 2) every ``dt``, by kick-drift-kick leapfrog.

    The drag uses the velocity at the start of each half kick (explicit); with the steps
    used here that is far more accurate than the drag law itself. With ``stop_within``
    the integration ends (and the array is cut) once the separation falls below it.
    """
    (x, y), (vx, vy) = initial_orbit(params)
    mu, eps2 = G * sum(params.masses), params.softening**2
    out = np.empty((steps + 1, 2))
    out[0] = x, y

    def accel(x: float, y: float, vx: float, vy: float) -> tuple[float, float]:
        r2 = x * x + y * y
        s = r2 + eps2
        g = -mu / (s * math.sqrt(s))
        ax, ay = g * x, g * y
        if friction:
            v = math.hypot(vx, vy)
            k = _friction(math.sqrt(r2), v, params) / max(v, 1e-12)
            ax, ay = ax - k * vx, ay - k * vy
        return ax, ay

    # Pure-Python floats: for a 2-D two-body problem they beat numpy's per-call overhead.
    for i in range(steps):
        ax, ay = accel(x, y, vx, vy)
        vx, vy = vx + 0.5 * dt * ax, vy + 0.5 * dt * ay
        x, y = x + dt * vx, y + dt * vy
        ax, ay = accel(x, y, vx, vy)
        vx, vy = vx + 0.5 * dt * ax, vy + 0.5 * dt * ay
        out[i + 1] = x, y
        if stop_within is not None and x * x + y * y < stop_within * stop_within:
            return out[: i + 2]
    return out


def core_separation(params: MergerParams, times: np.ndarray, friction: bool = True) -> np.ndarray:
    """Core separation at ``times`` (sorted, starting >= 0), integrated with the simulator's timestep."""
    times = np.asarray(times, dtype=np.float64)
    dt = base_timestep(params)
    steps = int(math.ceil(times[-1] / dt)) if len(times) else 0
    rel = integrate_cores(params, dt, steps, friction=friction)
    r = np.hypot(rel[:, 0], rel[:, 1])
    return np.interp(times, dt * np.arange(steps + 1), r)


def base_timestep(params: MergerParams) -> float:
    """Largest leapfrog step: a fixed fraction of the smaller core's dynamical time."""
    return STEP_FRACTION * min(math.sqrt(a**3 / (G * m)) for m, a in zip(params.masses, params.scales))


def coalescence_time(params: MergerParams) -> float | None:
    """First time the cores come within ``COALESCE_FRACTION`` softening lengths, or None by ``MAX_TIME``."""
    dt, radius = base_timestep(params), COALESCE_FRACTION * params.softening
    rel = integrate_cores(params, dt, int(math.ceil(MAX_TIME / dt)), stop_within=radius)
    inside = np.hypot(*rel[-1]) < radius
    return float((len(rel) - 1) * dt) if inside else None


# ---------------------------------------------------------------------------- particles


def _axis_basis(incl: float, node: float) -> np.ndarray:
    """Rows e1, e2, n: an orthonormal basis whose third vector n has polar angle ``incl`` and azimuth ``node`` (degrees)."""
    i, w = math.radians(incl), math.radians(node)
    n = np.array([math.sin(i) * math.cos(w), math.sin(i) * math.sin(w), math.cos(i)])
    helper = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, n)
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(n, e1), n])


def _exponential_radii(n: int, h: float, rng: np.random.Generator) -> np.ndarray:
    """Radii of an exponential disk (p(R) ~ R exp(-R/h)) truncated at DISK_EXTENT h, by inverse CDF."""
    x = np.linspace(0.0, DISK_EXTENT, 512)
    cdf = 1.0 - (1.0 + x) * np.exp(-x)
    return h * np.interp(rng.uniform(0.0, cdf[-1], n), cdf, x)


def make_galaxy(
    mass: float,
    scale: float,
    disk_scale: float,
    n: int,
    bulge_fraction: float,
    dispersion: float,
    incl: float,
    node: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Test particles of one galaxy relative to its core: positions and velocities, each (3, n).

    ``disk_scale`` is the exponential scale length in units of the core's Plummer ``scale``.
    """
    n_bulge = int(round(bulge_fraction * n))
    n_disk = n - n_bulge
    h = disk_scale * scale

    # Disk: circular orbits about the spin axis, thin Gaussian layer, isotropic Gaussian dispersion.
    radius = _exponential_radii(n_disk, h, rng)
    phi = rng.uniform(0.0, 2.0 * math.pi, n_disk)
    z = rng.normal(0.0, DISK_THICKNESS * h, n_disk)
    vc = circular_speed(radius, mass, scale)
    local = np.stack([radius * np.cos(phi), radius * np.sin(phi), z])
    vlocal = np.stack([-vc * np.sin(phi), vc * np.cos(phi), np.zeros(n_disk)])
    vlocal += rng.normal(0.0, 1.0, (3, n_disk)) * (dispersion * vc)
    basis = _axis_basis(incl, node)
    disk_pos, disk_vel = basis.T @ local, basis.T @ vlocal

    # Bulge: Plummer-distributed radii (scale BULGE_SCALE * a) on circular orbits in random
    # planes -- every orbit is an exact equilibrium of the spherical core potential.
    u = rng.uniform(0.0, 0.99, n_bulge)  # cut the far tail: it would only add faint noise
    rb = BULGE_SCALE * scale / np.sqrt(u ** (-2.0 / 3.0) - 1.0)
    rhat = _unit_vectors(n_bulge, rng)
    tangent = np.cross(rhat.T, _unit_vectors(n_bulge, rng).T).T
    tangent /= np.linalg.norm(tangent, axis=0, keepdims=True)
    bulge_pos = rhat * rb
    bulge_vel = tangent * circular_speed(rb, mass, scale)

    return np.concatenate([disk_pos, bulge_pos], axis=1), np.concatenate([disk_vel, bulge_vel], axis=1)


def _unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=(3, n))
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def integrate_particles(
    pos: np.ndarray,
    vel: np.ndarray,
    cores: np.ndarray,
    masses: tuple[float, ...],
    scales: tuple[float, ...],
    dt: float,
    record_every: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Kick-drift-kick leapfrog of test particles in moving Plummer cores.

    pos, vel: (3, N); cores: (steps + 1, K, 3) core positions at every step. Returns the
    positions (steps // record_every + 1, 3, N) at step 0, record_every, 2 * record_every, ...
    and the velocities (3, N) at the last step (synchronised with the positions, so a
    second call continues the integration exactly).
    Works in pos.dtype: float32 in the simulator, where the error is set by the step, not by
    rounding (the energy test measures the same error in float64), at half the memory traffic.
    """
    pos, vel = pos.copy(), vel.copy()
    steps = cores.shape[0] - 1
    out = np.empty((steps // record_every + 1,) + pos.shape, dtype=pos.dtype)
    out[0] = pos
    cores = cores.astype(pos.dtype)
    acc, tmp = np.empty_like(pos), np.empty_like(pos)
    scale2 = [np.asarray(a * a, dtype=pos.dtype) for a in scales]
    gm = [np.asarray(G * m, dtype=pos.dtype) for m in masses]
    if steps == 0:
        return out, vel

    def accel(step: int) -> np.ndarray:
        acc.fill(0.0)
        for k in range(len(masses)):
            np.subtract(pos, cores[step, k][:, None], out=tmp)  # (3, N) offsets from core k
            s = np.einsum("ij,ij->j", tmp, tmp)
            s += scale2[k]
            s = gm[k] / (s * np.sqrt(s))  # G M / (r^2 + a^2)^(3/2)
            np.multiply(tmp, s, out=tmp)
            np.subtract(acc, tmp, out=acc)
        return acc

    # Two half kicks between drifts fuse into one full kick: one force evaluation per step.
    vel += (0.5 * dt) * accel(0)
    for step in range(1, steps + 1):
        pos += dt * vel
        a = accel(step)
        last = step == steps
        vel += (0.5 * dt if last else dt) * a
        if step % record_every == 0:
            out[step // record_every] = pos
    return out, vel


# ---------------------------------------------------------------------------- rendering


def _camera(params: MergerParams) -> np.ndarray:
    """(2, 3) rows: the image's x and y axes for the sampled line of sight and roll."""
    roll = math.radians(params.view_roll)
    basis = _axis_basis(params.view_theta, params.view_phi)  # third row is the line of sight
    c, s = math.cos(roll), math.sin(roll)
    return np.stack([c * basis[0] + s * basis[1], -s * basis[0] + c * basis[1]])


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) matrix that blurs one image axis by a Gaussian (zero padding at the edges)."""
    idx = np.arange(size)
    k = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / max(sigma, 1e-6)) ** 2)
    return k / k.sum(axis=1, keepdims=True).max()


def render(
    xy: np.ndarray,
    size: int,
    half_width: float,
    psf: float,
    sky_noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Projected particle positions (T, 2, N) -> float32 frames (T, 1, size, size) in [0, 1].

    Surface density by binning, a separable Gaussian PSF as two small matrix products,
    optional Gaussian sky noise, then an asinh stretch normalised once per sequence (so
    brightness is comparable across frames).
    """
    t = xy.shape[0]
    pix = (xy * np.float32(0.5 * size / half_width) + np.float32(0.5 * size))  # (T, 2, N) pixel coordinates
    ok = ((pix >= 0) & (pix < size)).all(axis=1)  # (T, N); before truncation, which rounds towards 0
    col, row = pix[:, 0].astype(np.int32), (size - 1) - pix[:, 1].astype(np.int32)  # image y points up
    flat = (np.arange(t, dtype=np.int32)[:, None] * size + row) * size + col
    img = np.bincount(flat[ok], minlength=t * size * size).reshape(t, size, size).astype(np.float64)
    k = _gaussian_matrix(size, psf * size)
    img = k @ img @ k.T  # (T, S, S): blur rows and columns
    ref = np.quantile(img, 0.999)
    img /= max(ref, 1e-12)
    if sky_noise > 0:
        img += rng.normal(0.0, sky_noise, img.shape)
    out = np.arcsinh(img / ASINH_SOFTENING) / math.asinh(1.0 / ASINH_SOFTENING)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[:, None]


# ---------------------------------------------------------------------------- sequences


def simulate_sequence(params: MergerParams, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Simulate one merger: float32 frames (frames, 1, size, size) in [0, 1].

    The frames are evenly spaced from the start of the encounter to a little after the
    cores coalesce (or to ``MAX_TIME`` if they do not), so the whole interaction fits.
    """
    _check_counts(1, frames, size)
    params.check()
    t_merge = coalescence_time(params)
    t_end = MAX_TIME if t_merge is None else min(MAX_TIME, (1.0 + SETTLE_FRACTION) * t_merge)
    dt_max = base_timestep(params)
    frame_dt = t_end / max(frames - 1, 1)
    substeps = max(1, math.ceil(frame_dt / dt_max))
    dt = frame_dt / substeps
    steps = substeps * (frames - 1)

    m1, m2 = params.masses
    rel = integrate_cores(params, dt, steps)  # (steps + 1, 2) core 2 relative to core 1
    rel3 = np.concatenate([rel, np.zeros((steps + 1, 1))], axis=1)
    # The centre of mass stays at the origin: the drag is internal to the pair.
    cores = np.stack([-m2 / (m1 + m2) * rel3, m1 / (m1 + m2) * rel3], axis=1)  # (steps + 1, 2, 3)
    pos, vel = _initial_particles(params, cores[0], rng)

    track, _ = integrate_particles(pos, vel, cores, params.masses, params.scales, dt, substeps)  # (T, 3, N)
    camera = _camera(params)
    xy = np.einsum("ck,tkn->tcn", camera.astype(np.float32), track)  # (T, 2, N)
    half_width = _field_half_width(np.einsum("ck,tgk->tgc", camera, cores[::substeps]), params)
    return render(xy, size, half_width, params.psf, params.sky_noise, rng)


def _check_counts(sequences: int, frames: int, size: int) -> None:
    if sequences < 1 or frames < 1 or size < 4:
        raise GanlstmError(
            f"simulate needs sequences >= 1, frames >= 1 and size >= 4, got {sequences}, {frames}, {size}; pass larger values."
        )


def _initial_particles(params: MergerParams, cores: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """float32 positions and velocities (3, N) of both galaxies' particles; cores: (2, 3) start positions."""
    m1, m2 = params.masses
    _, v_rel = initial_orbit(params)
    core_vel = np.outer([-m2 / (m1 + m2), m1 / (m1 + m2)], np.append(v_rel, 0.0))  # (2, 3)
    n2 = int(round(params.particles * m2 / (m1 + m2)))  # particles (light) follow mass
    galaxies = (
        (params.particles - n2, params.disk_scale1, params.incl1, params.node1),
        (n2, params.disk_scale2, params.incl2, params.node2),
    )
    pos, vel = [], []
    for k, (n, disk_scale, incl, node) in enumerate(galaxies):
        p, v = make_galaxy(
            params.masses[k], params.scales[k], disk_scale, n, params.bulge_fraction, params.dispersion, incl, node, rng
        )
        pos.append(p + cores[k][:, None])
        vel.append(v + core_vel[k][:, None])
    return np.concatenate(pos, axis=1).astype(np.float32), np.concatenate(vel, axis=1).astype(np.float32)


def _field_half_width(core_xy: np.ndarray, params: MergerParams) -> float:
    """Half the field of view from the projected core tracks (T, 2 cores, 2): both disks always fit.

    One field per sequence (never per frame), so motion in the frames is real motion.
    Long tidal tails may run off the edge; following them would shrink the galaxies to dots.
    """
    margin = [DISK_MARGIN * hs * a for hs, a in zip((params.disk_scale1, params.disk_scale2), params.scales)]
    reach = np.abs(core_xy).max(axis=2) + np.asarray(margin)  # (T, 2)
    return float(reach.max())


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
    from PIL import Image

    from ..checkpoint import atomic_write_bytes

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
