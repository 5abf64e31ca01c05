"""Stage-one commands: ``train-gan``, ``sample``, ``interpolate`` and ``evaluate-gan``.

Thin wrappers: each builds a config, calls one library function from
:mod:`ganlstm.train.gan`, :mod:`ganlstm.models.dcgan` or :mod:`ganlstm.viz`, and prints where
the results went. Defaults are read from the config dataclasses so the CLI never drifts from them.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import FrameOptions, GanConfig, GanTrainConfig
from ..errors import GanlstmError
from ._config_file import writer
from ._options import existing, frame_limits, limit_options, run_config, run_options, settle_resume

_G, _T, _F = GanConfig(), GanTrainConfig(), FrameOptions()

# Options that define the model or how it trains; on --resume they come from the checkpoint.
_FROM_CHECKPOINT = ("data", "size", "channels", "nz", "latent_grid", "ngf", "ndf", "spectral_norm", "loss", "r1", "diffaug", "ema",
                    "lr_g", "lr_d", "interval", "scaling", "val_fraction", "test_fraction", "seed", "split_seed", "batch_size", "max_frames", "max_pixels",
                    "encoder", "recon_weight", "ada_target", "init", "freeze_d", "time_split")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise GanlstmError(f"{path} already exists; choose another --out or pass --overwrite.")


@click.command("train-gan")
@click.option("--data", type=click.Path(path_type=Path), callback=existing("frames"), help="Frames: a sequence, or a directory of sequences (e.g. `ganlstm simulate` output).")
@click.option("--size", default=str(_G.image_size), show_default=True, type=click.Choice(["16", "32", "64", "128"]), help="Frame size the DCGAN is built for.")
@click.option("--channels", default=str(_G.channels), show_default=True, type=click.Choice(["1", "3"]), help="1 grayscale, 3 RGB.")
@click.option("--interval", default=_F.interval, show_default=True, type=click.IntRange(1), help="Keep every N-th frame of each sequence.")
@click.option("--scaling", default=_F.scaling, show_default=True, type=click.Choice(["minmax", "fixed", "asinh", "log", "none"]), help="How raw pixel values map to [0, 1].")
@limit_options()
@run_options("gan")
@click.option("--nz", default=_G.nz, show_default=True, type=click.IntRange(1), help="Latent size.")
@click.option("--latent-grid", default=str(_G.latent_grid), show_default=True, type=click.Choice(["1", "4"]),
              help="1: z is DCGAN's (nz, 1, 1) vector; 4: z is a (nz/16, 4, 4) spatial grid (nz a multiple of 16).")
@click.option("--ngf", default=_G.ngf, show_default=True, type=click.IntRange(1), help="Generator base width.")
@click.option("--ndf", default=_G.ndf, show_default=True, type=click.IntRange(1), help="Discriminator base width.")
@click.option("--spectral-norm/--no-spectral-norm", default=_G.spectral_norm, show_default=True,
              help="Spectral norm in D (SN-GAN) instead of the original DCGAN discriminator with BatchNorm.")
@click.option("--loss", default=_T.loss, show_default=True, type=click.Choice(["hinge", "ns"]), help="Hinge or non-saturating GAN loss.")
@click.option("--r1", default=_T.r1, show_default=True, type=float, help="R1 penalty weight (0 = off).")
@click.option("--diffaug", default=_T.diffaug, show_default=True, help="DiffAugment ops, e.g. translation,cutout,brightness ('' = none).")
@click.option("--ema", default=_T.ema, show_default=True, type=float, help="EMA decay of the saved generator (0 = off).")
@click.option("--encoder", default=_G.encoder, show_default=True, type=click.IntRange(0),
              help="Width of a frame encoder E trained beside G so that G(E(x)) ~ x; stage two's reader starts from it (0 = none).")
@click.option("--recon-weight", default=_T.recon_weight, show_default=True, type=click.FloatRange(0),
              help="Weight of the reconstruction term G(E(x)) ~ x beside the adversarial loss (needs --encoder).")
@click.option("--ada-target", default=_T.ada_target, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Adaptive augmentation (ADA): p follows E[sign(D(real))] towards this target (0 = off; 0.6 in StyleGAN2-ADA).")
@click.option("--init", default=_T.init, help="Fine-tune from this train-gan checkpoint (its architecture; optimisers start fresh).")
@click.option("--freeze-d", default=_T.freeze_d, show_default=True, type=click.IntRange(0),
              help="FreezeD: keep the discriminator's first N convolution blocks fixed (with --init).")
@click.option("--time-split", is_flag=True, help="One movie: train on its start, hold out its continuation (val/test fractions of its frames).")
@click.option("--lr-g", default=_T.lr_g, show_default=True, type=float)
@click.option("--lr-d", default=_T.lr_d, show_default=True, type=float)
@click.option("--val-fraction", default=_T.val_fraction, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Sequences held out to score epochs (picks best.pt).")
@click.option("--test-fraction", default=_T.test_fraction, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Sequences never used (stage two's test split for the same data and seed).")
@click.pass_context
def train_gan(ctx: click.Context, **o) -> None:
    """Stage one: train the DCGAN prior on single frames.

    Writes OUT/<n>-gan/ with config.json, log.csv, metrics.csv (projection proxy on held-out
    sequences), samples/epoch_XXXX.png, last.pt and best.pt (the EMA generator is the decoder).
    """
    from ..train.gan import train_gan as run_training

    if o["resume"]:
        settle_resume(ctx, o, _FROM_CHECKPOINT, "gan")
    elif not o["data"]:
        raise GanlstmError("train-gan needs --data DIR (or --resume to continue a run).")
    model = GanConfig(image_size=int(o["size"]), channels=int(o["channels"]), nz=o["nz"], ngf=o["ngf"], ndf=o["ndf"], latent_grid=int(o["latent_grid"]),
                      spectral_norm=o["spectral_norm"], encoder=o["encoder"])
    data = FrameOptions(size=model.image_size, channels=model.channels, interval=o["interval"], scaling=o["scaling"], **frame_limits(o))
    cfg = GanTrainConfig(model=model, data=data, data_path=str(o["data"] or ""), loss=o["loss"], r1=o["r1"], diffaug=o["diffaug"],
                         ema=o["ema"], lr_g=o["lr_g"], lr_d=o["lr_d"], val_fraction=o["val_fraction"],
                         test_fraction=o["test_fraction"], recon_weight=o["recon_weight"], ada_target=o["ada_target"],
                         init=o["init"] or "", freeze_d=o["freeze_d"], time_split=o["time_split"])
    run_dir = run_training(cfg, run_config(o), resume=o["resume"], on_start=writer(ctx, o))
    click.echo(f"run: {run_dir}  (decoder: {run_dir / 'best.pt'} if written, else {run_dir / 'last.pt'}; samples in {run_dir / 'samples'})")


@click.command("sample")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), callback=existing("checkpoint"), help="A train-gan checkpoint or run directory.")
@click.option("--n", default=64, show_default=True, type=click.IntRange(1), help="Number of frames.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG grid to write.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def sample(checkpoint: Path, n: int, out: Path, seed: int, overwrite: bool) -> None:
    """Draw a grid of frames from a trained generator (its EMA weights)."""
    from ..models.dcgan import load_generator, sample_latents
    from ..viz import save_grid

    _refuse_existing(out, overwrite)
    G = load_generator(checkpoint)
    frames = G.render(sample_latents(n, G.nz, seed))  # (n, C, S, S) in [0, 1]
    save_grid(frames, out, scale=max(1, 64 // G.image_size), overwrite=overwrite)
    click.echo(f"wrote {n} samples to {out}")


@click.command("interpolate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), callback=existing("checkpoint"), help="A train-gan checkpoint or run directory.")
@click.option("--steps", default=60, show_default=True, type=click.IntRange(2), help="Frames in the GIF.")
@click.option("--points", default=4, show_default=True, type=click.IntRange(2), help="Random latents the closed walk passes through.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="GIF to write.")
@click.option("--fps", default=15.0, show_default=True, type=click.FloatRange(0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def interpolate(checkpoint: Path, steps: int, points: int, out: Path, fps: float, seed: int, overwrite: bool) -> None:
    """Render a latent-space walk (slerp through random latents, back to the start) as a GIF."""
    from ..models.dcgan import latent_walk, load_generator, sample_latents
    from ..viz import save_gif

    _refuse_existing(out, overwrite)
    G = load_generator(checkpoint)
    z = latent_walk(sample_latents(points, G.nz, seed), steps)  # (steps, nz)
    save_gif(G.render(z), out, fps=fps, scale=max(1, 128 // G.image_size), overwrite=overwrite)
    click.echo(f"wrote a {steps}-frame walk through {points} latents to {out}")


@click.command("evaluate-gan")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), callback=existing("checkpoint"), help="A train-gan checkpoint or run directory.")
@click.option("--data", type=click.Path(path_type=Path), callback=existing("frames"), help="Frames to measure on (default: the training data in the checkpoint).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val", "all"]),
              help="test: sequences training never saw; val: those behind best.pt; all: every sequence (for other data).")
@click.option("--frames", default=64, show_default=True, type=click.IntRange(1), help="Frames, evenly spread over the sequences.")
@click.option("--steps", default=200, show_default=True, type=click.IntRange(1), help="Adam steps per projection.")
@click.option("--restarts", default=4, show_default=True, type=click.IntRange(1), help="Random starts per frame (the best is kept).")
@click.option("--lr", default=0.05, show_default=True, type=float, help="Adam learning rate on the latent.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="JSON to write (default: evaluate_gan.json next to the checkpoint).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def evaluate_gan(checkpoint: Path, data: Path | None, split: str, frames: int, steps: int, restarts: int, lr: float,
                 seed: int, device: str, out: Path | None, overwrite: bool) -> None:
    """Projection SSIM/MSE of held-out frames through the generator, and the intensity-histogram distance."""
    from ..checkpoint import atomic_write_bytes
    from ..train.gan_evaluation import evaluate_gan as run_evaluation

    ckpt_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    out = out or ckpt_dir / "evaluate_gan.json"
    _refuse_existing(out, overwrite)
    result = run_evaluation(checkpoint, data, frames=frames, steps=steps, restarts=restarts, lr=lr, split=split, seed=seed, device=device)
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    click.echo(f"projection SSIM {result['ssim']:.4f}  MSE {result['mse']:.3f} (per frame; {result['mse_pixel']:.5f} per pixel)  "
               f"PSNR {result['psnr']:.2f} dB  histogram distance {result['hist_distance']:.4f}  on {result['frames']} {split} frames")
    click.echo(f"wrote {out}")
