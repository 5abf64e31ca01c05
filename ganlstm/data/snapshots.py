"""Simulation snapshots (GADGET, SWIFT, tipsy, ... read by pynbody) rendered to a sequence of projected surface-density frames.

``pip install 'ganlstm[snapshots]'`` brings pynbody. :func:`find_snapshots` orders a directory's
snapshots by time, :func:`render_snapshot` projects one family (``stars``, ``gas``, ``dm``, ``all``)
along an axis into a mass-weighted 2-D histogram, and :func:`render_snapshots` writes a directory
as one sequence that :func:`ganlstm.data.frames.read_sequence` reads back. Its choices, recorded
in every output (``render.json``, the FITS header):

* Units: pynbody converts to kpc and Msol (cosmological ``a`` and ``h`` taken out), so the frames
  are surface densities in Msol / kpc^2 (FITS ``BUNIT`` = ``solMass kpc-2``); where pynbody knows
  no units, the snapshot's own are kept and said to be unknown. Times in Gyr where convertible.
* Field of view: one square field for the whole sequence, so motion in the frames is real motion:
  centred on the centre of mass of the rendered family in the FIRST snapshot (time order), with a
  half-width of the 99th percentile of that family's 3-D distances from that centre (the same for
  every projection) unless given. The share of mass falling outside is recorded per frame.
* No smoothing, no PSF: each pixel is the mass of its particles over its area, so an image sums
  (times the pixel area) to the mass within the field. Row 0 is the top (highest second
  coordinate), as in every ganlstm frame; the FITS header's linear WCS (``CDELT2`` < 0) says so.
"""
from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GanlstmError
from .frame_files import is_ganlstm_output, natural_key, visible_entries
from .limits import read_byte_limit

PROJECTIONS: dict[str, tuple[int, int]] = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}  # image (x, y) axes
QUANTITIES: dict[str, str | None] = {"stars": "star", "gas": "gas", "dm": "dm", "all": None}  # -> pynbody family
RENDER_FORMATS = ("fits", "npy", "png16")
MIN_SIZE, MAX_SIZE = 8, 4096
FOV_PERCENTILE = 99.0
PNG16_SOFTENING = 0.02  # asinh softening of png16 output, as a fraction of the sequence's maximum
RECORD = "render.json"  # what was rendered, in which units and field, beside the frames
CUBE_NAME = "surface_density"  # the .fits / .npy file; png16 frames are frame_0000.png, ...
PHYSICAL_UNITS = "Msol kpc**-2"
BUNIT = "solMass kpc-2"  # the same, as FITS and astropy spell it
UNKNOWN_UNITS = "snapshot mass unit per snapshot length unit squared (pynbody knows no units for these files)"


def import_pynbody() -> Any:
    """pynbody, or the one-sentence error saying how to install it."""
    try:
        import pynbody
    except ImportError:
        raise GanlstmError("reading simulation snapshots needs pynbody: pip install 'ganlstm[snapshots]'") from None
    return pynbody


@dataclass(frozen=True)
class Snapshots:
    """The snapshots of a directory, in order: by their own time when every one has one, else by name."""

    paths: list[Path]
    times: list[float] | None  # per path; None when some snapshot has no time
    time_unit: str  # "Gyr", or "snapshot time unit" where pynbody cannot convert
    order: str  # "time" or "name"


def find_snapshots(directory: str | Path) -> Snapshots:
    """The files (or directories, e.g. RAMSES outputs) under ``directory`` that pynbody can load, in order.

    Hidden entries, folders ganlstm wrote and ``.txt`` files (pynbody's ASCII reader claims any, and a
    README is no snapshot) are skipped; the parts of a multi-file GADGET snapshot count once. Names sort
    naturally (``snap_2`` before ``snap_10``); ``properties['time']`` decides when every snapshot has one.
    """
    pynbody = import_pynbody()
    directory = Path(directory)
    if not directory.exists():
        raise GanlstmError(f"{directory} does not exist; pass the directory that holds the snapshots.")
    if not directory.is_dir():
        raise GanlstmError(f"{directory} is not a directory; pass the directory that holds the snapshots, not one file.")
    paths = [p for p in visible_entries(directory) if not is_ganlstm_output(p) and _loadable(pynbody, p)]
    if not paths:
        found = sorted({p.suffix.lower() or p.name for p in visible_entries(directory)})
        held = f" (it holds {', '.join(found[:8])})" if found else " (it is empty)"
        raise GanlstmError(f"{directory} holds no simulation snapshot that pynbody can read{held}; "
                           f"pass a directory of GADGET, SWIFT, tipsy, RAMSES, ... snapshots.")
    # A multi-file GADGET snapshot (snap.0, snap.1, ...) is one snapshot, which pynbody reads whole by its stem.
    multi = {p.with_name(p.name[:-2]) for p in paths
             if p.name.endswith(".0") and getattr(getattr(load_snapshot(p), "header", None), "num_files", 1) > 1}
    paths = sorted({p for p in paths if _stem_of_part(p) not in multi} | multi, key=lambda p: natural_key(p.name))
    stamps = [snapshot_time(load_snapshot(p)) for p in paths]
    for gyr, unit in ((True, "Gyr"), (False, "snapshot time unit")):
        if all(st is not None and st[1] is gyr for st in stamps):
            times = [st[0] for st in stamps]
            order = sorted(range(len(paths)), key=lambda i: times[i])  # stable: equal times keep name order
            return Snapshots([paths[i] for i in order], [times[i] for i in order], unit, "time")
    return Snapshots(paths, None, "", "name")


def _stem_of_part(path: Path) -> Path | None:
    stem, _, k = path.name.rpartition(".")
    return path.with_name(stem) if stem and k.isdigit() else None


def _loadable(pynbody: Any, path: Path) -> bool:
    try:
        cls = pynbody.snapshot.identify(path)
    except Exception:  # noqa: BLE001 - a file no reader can even inspect is no snapshot
        return False
    return cls is not None and cls.__name__ != "AsciiSnap"


def load_snapshot(path: Path, notes: set[str] | None = None) -> Any:
    """``pynbody.load(path)`` (arrays load lazily), failures as one sentence naming the file; tipsy's default units into ``notes``."""
    pynbody = import_pynbody()
    with _snapshot_guard(path), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = pynbody.load(str(path))
    for w in caught:
        if "param file" in str(w.message):
            if notes is not None:
                notes.add("tipsy: no .param file beside the snapshots, so pynbody assumed its default units (kpc, 1e10 Msol, G = 1)")
        else:
            warnings.warn(w.message, w.category, stacklevel=2)
    return sim


@contextmanager
def _snapshot_guard(path: Any) -> Iterator[None]:
    """Turn whatever pynbody raises while reading ``path`` into a GanlstmError naming it."""
    try:
        yield
    except GanlstmError:
        raise
    except Exception as e:  # noqa: BLE001 - pynbody raises many kinds; the caller gets one sentence
        detail = str(e).strip().split("\n")[0][:160]
        raise GanlstmError(f"{path} could not be read as a simulation snapshot ({type(e).__name__}: {detail}); "
                           f"check that it is complete, or move it out of the directory.") from e


def snapshot_time(sim: Any) -> tuple[float, bool] | None:
    """(time, whether in Gyr) from ``sim.properties['time']``: in Gyr where pynbody can convert it, else as stored."""
    t = sim.properties.get("time")
    if t is None:
        return None
    try:
        return float(t.in_units("Gyr", **sim.conversion_context())), True
    except Exception:  # noqa: BLE001 - no convertible unit: keep the snapshot's own number
        try:
            return float(t), False
        except (TypeError, ValueError):
            return None


def family_particles(sim: Any, quantity: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Positions (N, 3) in kpc and masses (N,) in Msol of one family (float64), and whether pynbody knew the units
    (if not, both stay in the snapshot's own). An unknown quantity or an empty family is refused, naming the families held."""
    name, present = str(getattr(sim, "filename", "the snapshot")), [f.name for f in sim.families() if len(sim[f])]
    names = ", ".join(present) or "no particles at all"
    if quantity not in QUANTITIES:
        raise GanlstmError(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)} (this snapshot holds {names}).")
    family = QUANTITIES[quantity]
    part = sim if family is None else (sim[import_pynbody().family.get_family(family)] if family in present else None)
    if part is None or len(part) == 0:
        usable = [q for q, f in QUANTITIES.items() if f in present] + (["all"] if present else [])
        fix = f"pass --quantity {' or '.join(usable)}" if usable else "check the file"
        raise GanlstmError(f"{name} holds no {quantity} particles (its families: {names}); {fix}.")
    with _snapshot_guard(name):
        ctx = sim.conversion_context()
        pos, mass = part["pos"], part["mass"]
        known = not _unitless(pos) and not _unitless(mass)
        if known:
            pos, mass = pos.in_units("kpc", **ctx), mass.in_units("Msol", **ctx)
        return np.asarray(pos, dtype=np.float64).reshape(-1, 3), np.asarray(mass, dtype=np.float64).reshape(-1), known


def _unitless(array: Any) -> bool:
    units = getattr(array, "units", None)
    return units is None or type(units).__name__ == "NoUnit"


def field_of_view(pos: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre (3,), half-width): the centre of mass and the 99th-percentile 3-D distance from it."""
    total = mass.sum()
    centre = (pos * mass[:, None]).sum(axis=0) / total if total > 0 else pos.mean(axis=0)
    radius = np.linalg.norm(pos - centre, axis=1)  # (N,)
    half_width = float(np.percentile(radius, FOV_PERCENTILE))
    if not math.isfinite(half_width) or half_width <= 0:
        raise GanlstmError("the particles sit at one point (their 99th-percentile radius is 0); pass a half-width explicitly.")
    return centre, half_width


def render_snapshot(sim: Any, size: int, projection: str = "xy", quantity: str = "stars", half_width: float | None = None,
                    centre: np.ndarray | None = None) -> np.ndarray:
    """Surface density float32 (size, size) of one family of ``sim``, projected along the axis ``projection`` omits.

    A mass-weighted 2-D histogram divided by the pixel area: Msol / kpc^2 where pynbody knows the
    units. The square field spans ``centre +- half_width`` (kpc) on the two image axes; unless given,
    both come from this snapshot (:func:`field_of_view`). Row 0 is the top of the image.
    """
    _check_size(size)
    if projection not in PROJECTIONS:
        raise GanlstmError(f"unknown projection {projection!r}; use one of {', '.join(PROJECTIONS)}.")
    pos, mass, _ = family_particles(sim, quantity)
    if centre is None or half_width is None:
        own_centre, own_half = field_of_view(pos, mass)
        centre = own_centre if centre is None else centre
        half_width = own_half if half_width is None else half_width
    _check_half_width(half_width)
    return _histogram(pos, mass, np.asarray(centre, dtype=np.float64), float(half_width), size, projection)[0]


def _histogram(pos: np.ndarray, mass: np.ndarray, centre: np.ndarray, half_width: float, size: int,
               projection: str) -> tuple[np.ndarray, float]:
    """(surface density float32 (size, size), mass outside the field) of particles (N, 3) with masses (N,)."""
    i, j = PROJECTIONS[projection]
    edges = [(centre[i] - half_width, centre[i] + half_width), (centre[j] - half_width, centre[j] + half_width)]
    counts, _, _ = np.histogram2d(pos[:, i], pos[:, j], bins=size, range=edges, weights=mass)  # (x bin, y bin)
    pixel_area = (2.0 * half_width / size) ** 2
    image = counts.T[::-1] / pixel_area  # (row, col) with row 0 at the top (highest y)
    return np.ascontiguousarray(image, dtype=np.float32), float(mass.sum() - counts.sum())


def _check_half_width(half_width: Any, unset_ok: bool = False) -> None:
    if not (unset_ok and half_width is None) and not (isinstance(half_width, (int, float)) and math.isfinite(half_width) and half_width > 0):
        raise GanlstmError(f"half_width={half_width!r} is invalid; pass a positive field half-width in kpc, or leave it unset.")


def _check_size(size: int) -> None:
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise GanlstmError(f"size={size!r} is out of range; pass a frame size between {MIN_SIZE} and {MAX_SIZE} pixels.")


@dataclass
class Rendering:
    """What :func:`render_snapshots` wrote: the files, and everything needed to read them in physical units."""

    files: list[str]
    format: str
    frames: int
    size: int
    projection: str
    quantity: str
    units: str  # of the values in a FITS/NPY cube (png16: before the stretch)
    length_unit: str
    centre: list[float]  # (3,) field centre
    half_width: float
    pixel_size: float
    field_choice: str
    snapshots: list[str]  # in frame order
    order: str  # "time" or "name"
    times: list[float] | None
    time_unit: str
    mass_outside_fraction: list[float]  # per frame: the family's mass outside the field / its total
    stretch: dict | None = None  # png16 only: how values became [0, 1], and back
    notes: list[str] = field(default_factory=list)


def render_snapshots(snapshot_dir: str | Path, out: str | Path, size: int = 128, projection: str = "xy", quantity: str = "stars",
                     fmt: str = "fits", overwrite: bool = False, half_width: float | None = None, progress: bool = True) -> Rendering:
    """Render every snapshot of ``snapshot_dir`` into ``out``: one FITS or NPY cube (T, H, W), or 16-bit PNGs.

    FITS (``surface_density.fits``) and NPY (``surface_density.npy``) hold the surface density itself
    (float32; units in ``render.json`` and the FITS ``BUNIT``); ``png16`` (``frame_0000.png`` ...)
    holds it asinh-stretched to [0, 1], the stretch and its inverse recorded in ``render.json``. ``half_width``
    (kpc) overrides the 99th-percentile radius. A non-empty ``out`` is refused unless ``overwrite`` (an earlier
    rendering there is then replaced, other files kept). Returns the :class:`Rendering` saved as ``render.json``.
    """
    from tqdm.auto import tqdm

    snapshot_dir, out = Path(snapshot_dir), Path(out)
    _check_size(size)
    check_choices(projection, quantity, fmt)
    _check_half_width(half_width, unset_ok=True)
    check_out(out, snapshot_dir, overwrite)
    found = find_snapshots(snapshot_dir)
    need = len(found.paths) * size * size * 4
    if need > read_byte_limit():
        raise GanlstmError(f"{len(found.paths)} frames of {size}x{size} take {need / 2**30:.1f} GiB, more than the readers accept; "
                           f"pass a smaller --size or render fewer snapshots at a time.")
    cube = np.empty((len(found.paths), size, size), dtype=np.float32)  # (T, H, W)
    outside: list[float] = []
    centre, radius, known_all, notes = None, 0.0, True, set()
    for t, path in enumerate(tqdm(found.paths, desc="render", unit="snap", disable=not progress or len(found.paths) < 10)):
        pos, mass, known = family_particles(load_snapshot(path, notes), quantity)
        if t and known != known_all:  # one cube, one unit
            raise GanlstmError(f"{path.name} has {'' if known else 'no '}units that pynbody knows, unlike {found.paths[0].name}; "
                               f"render such snapshots separately.")
        known_all = known
        if centre is None:
            centre, radius = field_of_view(pos, mass)
        cube[t], lost = _histogram(pos, mass, centre, half_width or radius, size, projection)
        outside.append(round(float(lost / mass.sum()), 6) if mass.sum() > 0 else 0.0)
    if not known_all:
        notes.add("pynbody knows no units for these snapshots: the values are in the snapshots' own mass and length units")
    hw = float(half_width or radius)
    how = "given" if half_width else f"the {FOV_PERCENTILE:g}th-percentile 3-D distance of its {quantity} from that centre"
    record = Rendering(
        files=[], format=fmt, frames=len(cube), size=size, projection=projection, quantity=quantity,
        units=PHYSICAL_UNITS if known_all else UNKNOWN_UNITS, length_unit="kpc" if known_all else "snapshot length unit",
        centre=[float(c) for c in centre], half_width=hw, pixel_size=2.0 * hw / size,
        field_choice=f"centre of mass of the {quantity} in the first snapshot ({found.paths[0].name}); half-width {how}",
        snapshots=[p.name for p in found.paths], order=found.order, times=found.times, time_unit=found.time_unit,
        mass_outside_fraction=outside, notes=sorted(notes),
    )
    _write(cube, out, record, overwrite)
    return record


def check_choices(projection: str, quantity: str, fmt: str) -> None:
    """Refuse an unknown projection, quantity or output format, in one sentence each."""
    for what, value, allowed in (("projection", projection, PROJECTIONS), ("quantity", quantity, QUANTITIES),
                                 ("format", fmt, RENDER_FORMATS)):
        if value not in allowed:
            raise GanlstmError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}.")


def check_out(out: Path, snapshot_dir: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, is the snapshot directory, or is non-empty without ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"{out} exists and is not a directory; pass another --out.")
    if out.is_dir() and snapshot_dir.is_dir() and out.resolve() == snapshot_dir.resolve():
        raise GanlstmError(f"--out {out} is the snapshot directory itself; pass another directory for the frames.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GanlstmError(f"{out} is not empty; pass --overwrite to replace an earlier rendering there, or choose another --out.")


def _write(cube: np.ndarray, out: Path, record: Rendering, overwrite: bool) -> None:
    """Write the cube (T, H, W) in ``record.format``, then ``render.json`` (last, so it marks a finished rendering)."""
    from ..checkpoint import atomic_write_bytes

    if overwrite and out.is_dir():  # an earlier rendering's frames, cube and record go, so nothing stale survives
        for p in [*out.glob("frame_*.png"), *(out / f"{CUBE_NAME}.{ext}" for ext in ("fits", "npy")), out / RECORD]:
            if p.is_file():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    if record.format == "png16":
        from .frame_writer import write_frames

        stretched, record.stretch = asinh_stretch(cube)
        paths = write_frames(stretched[:, None], out, fmt="png16", overwrite=True)  # (T, 1, H, W) in [0, 1]
    elif record.format == "npy":
        paths, buf = [out / f"{CUBE_NAME}.npy"], io.BytesIO()
        np.save(buf, cube)  # (T, H, W) float32
        atomic_write_bytes(paths[0], buf.getvalue())
    else:
        paths = [out / f"{CUBE_NAME}.fits"]
        atomic_write_bytes(paths[0], _fits_bytes(cube, record, paths[0]))
    record.files = [p.name for p in paths]
    atomic_write_bytes(out / RECORD, (json.dumps(asdict(record), indent=2) + "\n").encode())


def asinh_stretch(cube: np.ndarray) -> tuple[np.ndarray, dict]:
    """(cube mapped to [0, 1] by one asinh stretch for the whole sequence, the stretch and its inverse)."""
    ref = float(cube.max())
    soft = PNG16_SOFTENING * ref
    if ref <= 0:
        return np.zeros_like(cube), {"kind": "none: every pixel is 0"}
    stretched = np.arcsinh(cube / soft) / math.asinh(ref / soft)
    return stretched.astype(np.float32), {
        "kind": "asinh", "softening": soft, "reference": ref,
        "forward": "v = asinh(S / softening) / asinh(reference / softening), stored as round(v * 65535)",
        "inverse": "S = softening * sinh(v * asinh(reference / softening)), v = pixel / 65535",
    }


def _fits_bytes(cube: np.ndarray, r: Rendering, path: Path) -> bytes:
    """A primary HDU with the cube (T, H, W) and a linear WCS, and a ``TIMES`` table of the frames' snapshots."""
    from .read_fits import import_fits

    fits = import_fits(path)
    hdu = fits.PrimaryHDU(cube)
    h, known = hdu.header, r.units == PHYSICAL_UNITS
    if known:
        h["BUNIT"] = (BUNIT, "projected mass surface density")
    h["QUANTITY"] = (r.quantity, "particles rendered (stars, gas, dm, all)")
    h["PROJECT"] = (r.projection, "image axes; the third axis is summed")
    h["NSNAP"] = (r.frames, "frames, one per snapshot")
    for axis, (k, sign) in enumerate(zip(PROJECTIONS[r.projection], (1.0, -1.0)), start=1):  # row 0 is the top
        h[f"CTYPE{axis}"] = ("XYZ"[k], "simulation coordinate")
        h[f"CUNIT{axis}"] = "kpc" if known else ""
        h[f"CRPIX{axis}"] = ((r.size + 1) / 2.0, "the field centre")
        h[f"CRVAL{axis}"] = r.centre[k]
        h[f"CDELT{axis}"] = sign * r.pixel_size
    h["HALFWID"] = (r.half_width, f"field half-width ({r.length_unit})")
    h["ORDER"] = (r.order, "frames ordered by snapshot time or by name")
    h["TIMEUNIT"] = (r.time_unit[:68], "unit of the TIMES table")
    h["COMMENT"] = f"ganlstm render: {r.quantity} surface density in {r.units}, no smoothing; field: {r.field_choice}."
    columns = [fits.Column(name="FRAME", format="J", array=np.arange(r.frames)),
               fits.Column(name="SNAPSHOT", format=f"{max(map(len, r.snapshots))}A", array=np.array(r.snapshots)),
               fits.Column(name="MASS_OUT", format="E", array=np.array(r.mass_outside_fraction))]
    if r.times is not None:
        columns.insert(1, fits.Column(name="TIME", format="D", array=np.array(r.times), unit=r.time_unit if r.time_unit == "Gyr" else None))
    buf = io.BytesIO()
    fits.HDUList([hdu, fits.BinTableHDU.from_columns(columns, name="TIMES")]).writeto(buf)
    return buf.getvalue()

