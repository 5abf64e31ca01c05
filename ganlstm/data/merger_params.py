"""The parameters of one simulated galaxy merger (:class:`MergerParams`) and the ranges they are drawn
from; the physics that runs them is :mod:`ganlstm.data.merger_physics` (see ``docs/simulator.md``)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import GanlstmError


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
