"""``ganlstm render``: simulation snapshots (GADGET, SWIFT, tipsy, ... via pynbody) to a frame sequence of surface density.

A thin wrapper over :func:`ganlstm.data.snapshots.render_snapshots`; the path refusals come first,
before pynbody (or torch) is imported.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import GanlstmError


def _snapshot_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if not value.exists():
        raise GanlstmError(f"{value} does not exist; pass the directory that holds the snapshots.")
    if not value.is_dir():
        raise GanlstmError(f"{value} is not a directory; pass the directory that holds the snapshots, not one file.")
    return value


@click.command("render")
@click.option("--snapshots", "snapshot_dir", type=click.Path(path_type=Path), required=True, callback=_snapshot_dir,
              help="Directory of snapshots pynbody reads (GADGET, SWIFT, tipsy, RAMSES, ...); ordered by their own time.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write the frames into.")
@click.option("--size", type=click.IntRange(8, 4096), default=128, show_default=True, help="Frame width and height in pixels.")
@click.option("--projection", type=click.Choice(["xy", "xz", "yz"]), default="xy", show_default=True,
              help="Image axes; the third axis is summed along the line of sight.")
@click.option("--quantity", type=click.Choice(["stars", "gas", "dm", "all"]), default="stars", show_default=True,
              help="Particles whose mass is projected.")
@click.option("--format", "fmt", type=click.Choice(["fits", "npy", "png16"]), default="fits", show_default=True,
              help="One float32 cube in physical units (fits, npy), or 16-bit PNGs after an asinh stretch (png16).")
@click.option("--half-width", type=click.FloatRange(min=0, min_open=True),
              help="Half the field of view in kpc (default: the 99th-percentile radius of the first snapshot).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier rendering in a non-empty --out.")
def render(snapshot_dir: Path, out: Path, size: int, projection: str, quantity: str, fmt: str, half_width: float | None,
           overwrite: bool) -> None:
    """Render simulation snapshots as projected surface density, one frame per snapshot, in one field of view."""
    from ..data.snapshots import check_out, render_snapshots

    check_out(out, snapshot_dir, overwrite)  # before pynbody loads
    r = render_snapshots(snapshot_dir, out, size=size, projection=projection, quantity=quantity, fmt=fmt,
                         overwrite=overwrite, half_width=half_width, progress=True)
    where = out / r.files[0] if len(r.files) == 1 else out / f"{r.files[0]} ... {r.files[-1]}"
    click.echo(f"wrote {r.frames} frames ({r.size}x{r.size}, {r.quantity} projected on {r.projection}) to {where}")
    values = f"asinh-stretched surface density (stretch and inverse in {out / 'render.json'})" if r.stretch else "surface density"
    click.echo(f"values: {values} in {r.units}")
    c = ", ".join(f"{v:.4g}" for v in r.centre)
    click.echo(f"field of view: {2 * r.half_width:.4g} {r.length_unit} square ({r.pixel_size:.3g} {r.length_unit} per pixel) "
               f"centred on ({c}); {r.field_choice}")
    if r.times:
        click.echo(f"frames ordered by snapshot time, {r.times[0]:.4g} to {r.times[-1]:.4g} {r.time_unit}")
    else:
        click.echo("frames ordered by file name (not every snapshot records its time)")
    lost = max(r.mass_outside_fraction)
    if lost > 0:
        click.echo(f"up to {100 * lost:.1f}% of the mass ({r.quantity}) lies outside the field (per frame in render.json)")
    for note in r.notes:
        click.echo(f"note: {note}")
