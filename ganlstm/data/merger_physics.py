"""The simulator's physics: restricted N-body with dynamical friction (:mod:`ganlstm.data.simulate` renders it to frames).

It follows the restricted three-body method of Toomre & Toomre (1972, ApJ 178, 623), as used by
JSPAM (Wallin, Holincheck & Harvey 2016, Astron. Comput. 16, 26) for Galaxy Zoo: Mergers:

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

Units: G = 1, the primary has mass 1 and Plummer scale 1. See ``docs/simulator.md`` for the
parameter ranges and measured speed.
"""
from __future__ import annotations

import math

import numpy as np

from .merger_params import MergerParams

G = 1.0  # gravitational constant in simulation units

# Timestep of the leapfrog in units of the smaller core's dynamical time sqrt(a^3 / M):
# ~60 steps per orbit at the core scale keeps the energy error of an isolated disk ~1e-4.
STEP_FRACTION = 0.1
# How long the cores may take to coalesce, in simulation units, before we give up and
# simply show the encounter up to this time.
MAX_TIME = 120.0
# Cores count as coalesced once their separation falls below this fraction of the
# combined softening length sqrt(a1^2 + a2^2).
COALESCE_FRACTION = 0.5
DISK_EXTENT = 5.0  # disks are truncated at this many scale lengths
DISK_THICKNESS = 0.08  # vertical Gaussian scale height, in disk scale lengths
BULGE_SCALE = 0.25  # bulge Plummer scale, in units of the core's Plummer scale


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


def axis_basis(incl: float, node: float) -> np.ndarray:
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
    basis = axis_basis(incl, node)
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


def initial_particles(params: MergerParams, cores: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
