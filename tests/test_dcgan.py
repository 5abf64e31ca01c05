"""Stage-one building blocks: DCGAN shapes, DiffAugment, latent helpers, frozen loading, projection, pictures."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganlstm import GanlstmError
from ganlstm.checkpoint import save_checkpoint
from ganlstm.config import GanConfig, GanTrainConfig, RunConfig, to_dict
from ganlstm.models.augment import DiffAugment, brightness, cutout, translation
from ganlstm.models.dcgan import (
    Discriminator, Generator, build_discriminator, build_generator, latent_walk, load_generator, sample_latents, slerp,
)
from ganlstm.projection import intensity_distance, project, projection_quality
from ganlstm.viz import make_grid, plot_curves, save_gif, save_grid, side_by_side

# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_size(size, channels):
    G = Generator(nz=8, image_size=size, channels=channels, ngf=4)
    x = G(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    for sn in (True, False):
        D = Discriminator(image_size=size, channels=channels, ndf=4, spectral_norm=sn)
        assert D(x).shape == (2,)


def test_unsupported_size_and_channels_are_clear_errors():
    with pytest.raises(GanlstmError, match="image size 48"):
        Generator(image_size=48)
    with pytest.raises(GanlstmError, match="channels=2"):
        Discriminator(image_size=16, channels=2)


def test_builders_follow_config():
    cfg = GanConfig(image_size=16, channels=3, nz=5, ngf=4, ndf=4, spectral_norm=False, latent_grid=1)
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert G.nz == 5 and G(torch.randn(1, 5)).shape == (1, 3, 16, 16)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())  # the DCGAN discriminator
    D_sn = build_discriminator(GanConfig(image_size=16, ndf=4, spectral_norm=True, latent_grid=1))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D_sn.modules())
    assert any("parametrizations" in k for k in D_sn.state_dict())


def test_spatial_latent_grid():
    from ganlstm.checkpoint import save_checkpoint
    from ganlstm.config import GanTrainConfig, RunConfig, to_dict

    cfg = GanConfig(image_size=32, channels=1, nz=32, ngf=4, ndf=4, latent_grid=4)
    G = build_generator(cfg).eval()
    z = torch.randn(3, 32)
    assert G(z).shape == (3, 1, 32, 32)  # the public latent stays flat (B, nz)
    assert G.net[0].in_channels == 2 and G.net[0].kernel_size == (3, 3)  # z seen as (2, 4, 4)
    # Different cells of the grid drive different regions: moving one corner's latents changes that corner most.
    dz = torch.zeros_like(z[:1]).view(1, 2, 4, 4)
    dz[..., 0, 0] = 3.0
    diff = (G(z[:1] + dz.view(1, 32)) - G(z[:1])).abs()[0, 0]  # (32, 32)
    assert diff[:16, :16].sum() > 2 * diff[16:, 16:].sum()
    with pytest.raises(GanlstmError, match="multiple of 16"):
        Generator(nz=20, image_size=32, latent_grid=4)
    with pytest.raises(GanlstmError, match="latent grid 2"):
        Generator(nz=32, image_size=32, latent_grid=2)


# ---------------------------------------------------------------- DiffAugment


def test_translation_shifts_content_and_fills_black():
    torch.manual_seed(0)
    x = torch.full((8, 1, 16, 16), -1.0)
    x[:, :, 8, 8] = 1.0  # one bright pixel per image
    y = translation(x)
    assert y.shape == x.shape
    for img in y[:, 0]:
        assert (img == 1.0).sum() == 1 and (img == -1.0).sum() == 255  # moved, not duplicated; the rest is sky
        r, c = (img == 1.0).nonzero()[0].tolist()
        assert abs(r - 8) <= 2 and abs(c - 8) <= 2  # at most 1/8 of 16 px
    assert not torch.equal(y, x.expand_as(y))  # some image actually moved


def test_cutout_and_brightness():
    torch.manual_seed(0)
    x = torch.ones(16, 1, 16, 16)
    y = cutout(x)
    blanked = (y == -1.0).flatten(1).sum(1)
    assert (blanked > 0).all() and (blanked <= 64).all()  # a square of side 8, clipped at the border
    b = brightness(x)
    offsets = (b - x).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets))  # one offset per image
    assert offsets.abs().max() <= 0.5


def test_diffaugment_is_differentiable_and_policy_checked():
    x = torch.zeros(4, 1, 16, 16, requires_grad=True)
    aug = DiffAugment("translation,cutout,brightness")
    aug(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    none = DiffAugment("")
    assert not none and none(x) is x
    with pytest.raises(GanlstmError, match="unknown DiffAugment operation"):
        DiffAugment("translation,flip")


# ---------------------------------------------------------------- latents


def test_slerp_and_closed_walk():
    a, b = torch.randn(8), torch.randn(8)
    ends = slerp(a, b, torch.tensor([0.0, 1.0]))
    assert torch.allclose(ends[0], a, atol=1e-5) and torch.allclose(ends[1], b, atol=1e-5)
    pts = sample_latents(3, 8, seed=1)
    assert torch.equal(pts, sample_latents(3, 8, seed=1))
    walk = latent_walk(pts, 12)
    assert walk.shape == (12, 8)
    assert torch.allclose(walk[0], pts[0]) and torch.allclose(walk[4], pts[1], atol=1e-5)  # 4 steps per segment
    with pytest.raises(GanlstmError, match="at least 2 points"):
        latent_walk(pts[:1], 10)


# ---------------------------------------------------------------- frozen loading


def _gan_checkpoint(tmp_path, cfg: GanConfig):
    torch.manual_seed(0)
    G, G_ema = build_generator(cfg), build_generator(cfg)
    config = {"train": to_dict(GanTrainConfig(model=cfg)), "run": to_dict(RunConfig())}
    return save_checkpoint(tmp_path / "g.pt", kind="gan", config=config, models={"G": G, "G_ema": G_ema}), G, G_ema


def test_load_generator_is_frozen_and_picks_ema(tmp_path):
    path, G, G_ema = _gan_checkpoint(tmp_path, GanConfig(image_size=16, nz=8, ngf=4, latent_grid=1))
    loaded = load_generator(path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    z = torch.randn(3, 8)
    assert torch.equal(loaded(z), G_ema.eval()(z))
    assert torch.equal(load_generator(path, ema=False)(z), G.eval()(z))


def test_load_generator_refuses_other_checkpoints(tmp_path):
    other = save_checkpoint(tmp_path / "f.pt", kind="forecaster", config={}, models={"net": torch.nn.Linear(2, 2)})
    with pytest.raises(GanlstmError, match="'forecaster' checkpoint"):
        load_generator(other)
    bad = save_checkpoint(tmp_path / "b.pt", kind="gan", config={"x": 1}, models={"G_ema": torch.nn.Linear(2, 2)})
    with pytest.raises(GanlstmError, match="no GAN architecture"):
        load_generator(bad)


# ---------------------------------------------------------------- projection


def test_projection_recovers_generated_frames_without_touching_G():
    torch.manual_seed(0)
    G = Generator(nz=8, image_size=16, channels=1, ngf=8).eval()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    target = G.render(sample_latents(4, 8, seed=5)).detach()  # frames G can draw exactly
    z, recon = project(G, target, steps=100, restarts=2, lr=0.1, seed=0)
    assert z.shape == (4, 8) and recon.shape == target.shape
    start = (G.render(sample_latents(4, 8, seed=9)).detach() - target).pow(2).mean()
    assert (recon - target).pow(2).mean() < 0.05 * start  # far better than a random latent
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert all(p.grad is None for p in G.parameters())
    short = [project(G, target, steps=5, restarts=2, seed=0)[0] for _ in range(2)]
    assert torch.equal(*short)  # deterministic for a seed


def test_projection_quality_and_intensity_distance():
    G = Generator(nz=8, image_size=16, channels=1, ngf=4)
    frames = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    q = projection_quality(G, frames, steps=3, restarts=1)
    assert set(q) >= {"ssim", "mse", "mse_pixel", "psnr", "hist_distance"} and q["frames"] == 3
    assert q["mse"] == pytest.approx(q["mse_pixel"] * 256, rel=1e-5)  # per-frame sum vs per-pixel mean
    black, white = torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    assert intensity_distance(black, black) == 0 and intensity_distance(black, white) == pytest.approx(1.0, abs=1e-2)
    with pytest.raises(GanlstmError, match="match the generator"):
        project(G, torch.rand(2, 1, 32, 32))


# ---------------------------------------------------------------- pictures


def test_grid_gif_and_plots(tmp_path):
    frames = torch.rand(5, 1, 8, 8)
    grid = make_grid(frames, nrow=3, padding=2)
    assert grid.shape == (1, 2 * 10 + 2, 3 * 10 + 2)
    path = save_grid(frames, tmp_path / "g.png", nrow=3, scale=2)
    assert Image.open(path).size == (3 * 18 + 2, 2 * 18 + 2)
    with pytest.raises(GanlstmError, match="already exists"):
        save_grid(frames, path)
    rgb = np.random.rand(5, 3, 8, 8).astype(np.float32)
    both = side_by_side(frames, rgb, padding=1)
    assert both.shape == (5, 3, 8, 17)
    gif = save_gif([frames, rgb], tmp_path / "w.gif", fps=5)
    im = Image.open(gif)
    assert im.n_frames == 5 and im.size == (18, 8)  # default padding 2
    with pytest.raises(GanlstmError, match="unsupported file type"):
        save_gif(frames, tmp_path / "w.mp4")
    plot = plot_curves({"a": [3, 2, 1], "b": [1, 2, 3]}, tmp_path / "p.png", title="t")
    assert Image.open(plot).size[0] > 100
