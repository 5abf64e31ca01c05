"""predict reads like every command, says when an input's values do not fit the model's scaling, and keeps a FITS cube's units and header."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from forecast_helpers import SIZE, trained_checkpoint

from ganlstm.cli import cli
from ganlstm.config import ForecasterConfig, FrameOptions

fits = pytest.importorskip("astropy.io.fits")

T = 6


@pytest.fixture(scope="module")
def fixed_ckpt(tmp_path_factory):
    """A 16 px ConvLSTM that reads frames with scaling 'fixed' (float data: [0, 1] maps to [0, 1])."""
    return trained_checkpoint(tmp_path_factory.mktemp("units"), model=ForecasterConfig(model="convlstm", image_size=SIZE, hidden=(4,)),
                              gan_checkpoint="", data=FrameOptions(size=SIZE, scaling="fixed"))


def physical_cube(path, peak: float = 1234.5):
    """A float FITS cube (T, H, W) in physical units, with a WCS and a unit in its header."""
    rng = np.random.default_rng(0)
    cube = (rng.random((T, SIZE, SIZE)) * peak).astype(np.float32)
    hdu = fits.PrimaryHDU(cube)
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.1, "CRVAL2": 2.2, "CRPIX1": 8.0, "CRPIX2": 8.0,
                       "CDELT1": -0.0002, "CDELT2": 0.0002, "BUNIT": "MJy/sr", "OBJECT": "merger-7"}.items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path, cube


def _predict(*args):
    return CliRunner().invoke(cli, ["predict", "--steps", "2", "--device", "cpu", *map(str, args)])


def test_physical_units_under_fixed_scaling_are_said_and_minmax_reads_them(fixed_ckpt, tmp_path):
    cube, _ = physical_cube(tmp_path / "cube.fits")
    result = _predict("--frames", cube, "--checkpoint", fixed_ckpt, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "lie outside [0, 1], the range the model's 'fixed' scaling" in result.output and "--scaling minmax" in result.output
    result = _predict("--frames", cube, "--checkpoint", fixed_ckpt, "--out", tmp_path / "b", "--scaling", "minmax", "--interval", "2")
    assert result.exit_code == 0 and "lie outside" not in result.output, result.output


def test_a_fits_cube_comes_back_in_its_units_with_its_header(fixed_ckpt, tmp_path):
    cube, values = physical_cube(tmp_path / "cube.fits")
    out = tmp_path / "pred"
    result = _predict("--frames", cube, "--checkpoint", fixed_ckpt, "--out", out, "--scaling", "minmax", "--format", "fits")
    assert result.exit_code == 0, result.output
    (written,) = sorted(out.glob("*.fits"))
    with fits.open(written) as hdul:
        header, data = hdul[0].header, hdul[0].data
    for key in ("CTYPE1", "CRVAL1", "CRPIX2", "CDELT1", "BUNIT", "OBJECT"):
        assert header[key] == fits.getheader(cube)[key], key
    history = " ".join(str(h) for h in header["HISTORY"])
    assert "ganlstm predict" in history and "scaling 'minmax'" in history
    assert data.shape == (2, SIZE, SIZE) and data.dtype.kind == "f" and data.dtype.itemsize == 4
    # In the input's units: the untrained-ish model is close to persistence, so values span the cube's range, not [0, 1].
    assert data.max() > 100 and data.min() >= values.min() - 1e-3 and data.max() <= values.max() + 1e-3


def test_predict_refuses_a_size_or_colour_the_model_cannot_predict(fixed_ckpt, tmp_path, capsys):
    from reliability_helpers import cli as run

    cube, _ = physical_cube(tmp_path / "cube.fits")
    base = ["predict", "--steps", 2, "--device", "cpu", "--frames", cube, "--checkpoint", fixed_ckpt, "--out", tmp_path / "c"]
    code, err = run([*base, "--size", 32], capsys)
    assert code == 2 and "predicts at size 16 only" in err and len(err.strip().splitlines()) == 1, err
    code, err = run([*base, "--channels", 3], capsys)
    assert code == 2 and "predicts at channels 1 only" in err, err


def test_unscaling_inverts_every_scaling():
    from ganlstm.data.scaling import scale_frames, scaling_range, unscale_frames

    raw = (np.random.default_rng(1).random((3, 1, 8, 8)) * 500 + 20).astype(np.float32)
    for scaling in ("minmax", "asinh", "log"):
        opts = FrameOptions(scaling=scaling)
        lo, hi = scaling_range(raw, raw.dtype, opts)
        y = scale_frames(raw.copy(), raw.dtype, opts, "x")
        assert np.allclose(unscale_frames(y, lo, hi, opts), raw, rtol=1e-4, atol=1e-2), scaling
