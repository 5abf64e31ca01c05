"""Stage-two commands: ``train-encoder``, ``train-baseline`` and ``predict``.

Thin wrappers: the training commands build a :class:`~ganlstm.config.ForecastTrainConfig` and
call :func:`ganlstm.train.forecaster.train_forecaster`; ``predict`` calls
:func:`ganlstm.predict_files.predict_to_directory`. Defaults come from the config dataclasses.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..config import READER_WARMUP, ForecasterConfig, ForecastTrainConfig, FrameOptions
from ..errors import GanlstmError
from ._config_file import writer
from ._options import data_options, existing, frame_limits, limit_options, run_config, run_options, settle_resume

_M, _T = ForecasterConfig(), ForecastTrainConfig()
ANCHOR_HELP = ("GAN-LSTM: add the last observed frame's reading error x - G(read(x)) to the k-th predicted frame "
               "times D**(k-1) (0 = off).")

# Options that define the model, the data or how it trains; on --resume they come from the checkpoint.
_FROM_CHECKPOINT = ("data", "gan", "size", "interval", "context", "horizon", "stride", "hidden", "kernel", "cell", "feedback", "latent_cap",
                    "anchor_decay", "channels", "scaling", "alpha", "bright_weight", "gdl_weight", "ema", "recon_weight", "reader_warmup",
                    "sampling_start", "sampling_end", "lr",
                    "weight_decay", "val_fraction", "test_fraction", "seed", "split_seed", "batch_size", "max_frames", "max_pixels", "time_split")


def _hidden(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        hidden = tuple(int(h) for h in value.split(","))
    except ValueError:
        raise click.BadParameter("use comma-separated channel counts, e.g. 64,64") from None
    if not hidden or min(hidden) < 1:
        raise click.BadParameter("use positive channel counts, e.g. 64,64")
    return hidden


def forecast_options(f):
    """Windows, architecture and loss flags shared by train-encoder and train-baseline."""
    options = [
        click.option("--context", default=_T.context, show_default=True, type=click.IntRange(1), help="Observed frames per window (j)."),
        click.option("--horizon", default=_T.horizon, show_default=True, type=click.IntRange(1), help="Predicted frames per window (k)."),
        click.option("--stride", default=_T.stride, show_default=True, type=click.IntRange(1), help="Frames between window starts."),
        click.option("--hidden", default=",".join(map(str, _M.hidden)), show_default=True, callback=_hidden, help="ConvLSTM channels per layer."),
        click.option("--kernel", default=_M.kernel, show_default=True, type=click.IntRange(1), help="ConvLSTM kernel size."),
        click.option("--alpha", default=_T.alpha, show_default=True, type=click.FloatRange(0, 1), help="Pixel loss = alpha*(1-SSIM) + (1-alpha)*MSE."),
        click.option("--bright-weight", default=_T.bright_weight, show_default=True, type=click.FloatRange(0), help="Extra MSE weight on bright pixels (0 = uniform)."),
        click.option("--gdl-weight", default=_T.gdl_weight, show_default=True, type=click.FloatRange(0),
                     help="Add W times the gradient difference loss (Mathieu et al. 2016): predicted edges must match the truth's (0 = off)."),
        click.option("--ema", default=_T.ema, show_default=True, type=click.FloatRange(0, 1, max_open=True),
                     help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); validation, best.pt "
                          "and prediction use it (0 = off)."),
        click.option("--sampling-start", default=_T.sampling_start, show_default=True, type=click.FloatRange(0, 1), help="Scheduled sampling: P(feed the truth) at the first step ..."),
        click.option("--sampling-end", default=_T.sampling_end, show_default=True, type=click.FloatRange(0, 1), help="... decaying linearly to this at the last step."),
        click.option("--lr", default=_T.lr, show_default=True, type=click.FloatRange(0, min_open=True)),
        click.option("--weight-decay", default=_T.weight_decay, show_default=True, type=click.FloatRange(0)),
        click.option("--val-fraction", default=_T.val_fraction, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Sequences held out for validation."),
        click.option("--test-fraction", default=_T.test_fraction, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Sequences held out for the final test (never seen in training)."),
        click.option("--time-split", is_flag=True, help="One movie: train on its start, hold out its continuation (val/test fractions of its frames)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _train(ctx: click.Context, o: dict, model: ForecasterConfig, gan: str = "", recon: float = 0.0, warmup: int | None = 0) -> None:
    from ..train.forecaster import train_forecaster

    if o["resume"]:
        settle_resume(ctx, o, _FROM_CHECKPOINT, model.model)
    elif not o["data"]:
        raise GanlstmError(f"{ctx.info_name} needs --data DIR (or --resume to continue a run).")
    data = FrameOptions(size=o["size"], interval=o["interval"], **{k: o[k] for k in ("channels", "scaling") if k in o}, **frame_limits(o))
    cfg = ForecastTrainConfig(
        model=model, data=data, data_path=str(o["data"] or ""), gan_checkpoint=gan, context=o["context"], horizon=o["horizon"],
        stride=o["stride"], alpha=o["alpha"], bright_weight=o["bright_weight"], gdl_weight=o["gdl_weight"], ema=o["ema"], recon_weight=recon,
        reader_warmup=warmup,
        sampling_start=o["sampling_start"], sampling_end=o["sampling_end"], lr=o["lr"], weight_decay=o["weight_decay"],
        val_fraction=o["val_fraction"], test_fraction=o["test_fraction"], time_split=o["time_split"],
    )
    run_dir = train_forecaster(cfg, run_config(o), resume=o["resume"], on_start=writer(ctx, o))
    click.echo(f"run: {run_dir}  (model: {run_dir / 'best.pt'} if written, else {run_dir / 'last.pt'}; GIFs in {run_dir / 'samples'})")


def _reader_width(gan: Path, hidden: tuple[int, ...]) -> tuple[int, ...]:
    """Without --hidden: the width of the prior's encoder, so that the reader starts from it."""
    from ..checkpoint import load_checkpoint
    from ..models.dcgan import gan_config_from_checkpoint

    ckpt = load_checkpoint(gan, kind="gan")
    width = gan_config_from_checkpoint(ckpt).encoder
    if "E" not in ckpt["models"] or not width or width == hidden[0]:
        return hidden
    click.echo(f"--hidden {','.join([str(width)] * len(hidden))}: the width of {ckpt['path']}'s encoder, which the reader starts from", err=True)
    return (width,) * len(hidden)


@click.command("train-encoder")
@click.option("--gan", type=click.Path(path_type=Path), callback=existing("checkpoint"), help="The stage-one checkpoint (train-gan best.pt/last.pt or its run directory).")
@data_options(size_help="Frame size; must equal the generator's (default: the generator's).")
@forecast_options
@click.option("--feedback", default=_M.feedback, show_default=True, type=click.Choice(["latent", "pixels"]),
              help="How a prediction re-enters the ConvLSTM: mapped from its latent, or decoded and re-encoded.")
@click.option("--latent-cap", default=_M.latent_cap, show_default=True, type=click.FloatRange(0),
              help="Scale down any predicted latent whose RMS exceeds this, keeping it where G was trained (0 = off; "
                   "docs/benchmarks.md measured 0.9-1.0).")
@click.option("--recon-weight", default=_T.recon_weight, show_default=True, type=click.FloatRange(0), help="Weight of G(E(x)) ~ x on the last observed frame.")
@click.option("--reader-warmup", type=click.IntRange(0),
              help=f"First train only the frame reader to invert the generator, for this many of the steps (0 = off; "
                   f"default: {READER_WARMUP}, at most 60 % of the run).")
@click.option("--cell", default=_M.cell, show_default=True, type=click.Choice(["convlstm", "convgru"]),
              help="The dynamics model between reading and drawing.")
@click.option("--anchor-decay", default=_M.anchor_decay, show_default=True, type=click.FloatRange(0, 1), metavar="D",
              help=ANCHOR_HELP + " Recorded in the checkpoint; validation scores the anchored frames, training never sees them.")
@run_options("gan_lstm")
@click.pass_context
def train_encoder(ctx: click.Context, **o) -> None:
    """Stage two: train encoder + ConvLSTM into the latent space of a frozen generator.

    Writes OUT/<n>-gan_lstm/ with config.json, split.json, log.csv, metrics.csv (validation MSE/SSIM
    at horizons 1 and K, next to copy-last-frame), samples/epoch_XXXX.gif, last.pt and best.pt;
    the checkpoint embeds the generator, so `ganlstm predict` needs only it.
    """
    if not o["resume"] and not o["gan"]:
        raise GanlstmError("train-encoder needs --gan GAN_CKPT (a train-gan checkpoint or run directory).")
    if o["gan"] and not o["resume"] and ctx.get_parameter_source("hidden") == click.core.ParameterSource.DEFAULT:
        o["hidden"] = _reader_width(o["gan"], o["hidden"])
    model = ForecasterConfig(model="gan_lstm", hidden=o["hidden"], kernel=o["kernel"], cell=o["cell"], feedback=o["feedback"],
                             latent_cap=o["latent_cap"], anchor_decay=o["anchor_decay"])
    _train(ctx, o, model, gan=str(o["gan"] or ""), recon=o["recon_weight"], warmup=o["reader_warmup"])


@click.command("train-baseline")
@click.option("--model", "model_name", default="convlstm", show_default=True,
              help="A trainable registered forecaster: convlstm, predrnn, convgru, trajgru, e3dlstm, mim or simvp "
                   "(simvp reads --hidden as hid_S,hid_T; with --resume last: which runs to look at).")
@data_options()
@click.option("--channels", default=FrameOptions.channels, show_default=True, type=click.Choice(["1", "3"]), callback=lambda c, p, v: int(v),
              help="1 grayscale, 3 RGB.")
@click.option("--scaling", default=FrameOptions.scaling, show_default=True, type=click.Choice(["minmax", "fixed", "asinh", "log", "none"]),
              help="How raw pixel values map to [0, 1] (train-encoder takes this from the generator's checkpoint).")
@forecast_options
@run_options("MODEL")
@click.pass_context
def train_baseline(ctx: click.Context, model_name: str, **o) -> None:
    """Train a baseline forecaster (the pixel-space ConvLSTM, PredRNN, ...) exactly as train-encoder trains the GAN prior."""
    if model_name == "gan_lstm":
        raise GanlstmError("gan_lstm needs a generator; train it with `ganlstm train-encoder --gan GAN_CKPT`.")
    _train(ctx, o, ForecasterConfig(model=model_name, hidden=o["hidden"], kernel=o["kernel"]))


@click.command("predict")
@click.option("--frames", required=True, type=click.Path(path_type=Path), callback=existing("frames"), help="The observed sequence: frame directory, GIF/MP4, .npy/.npz or FITS.")
@click.option("--steps", required=True, type=click.IntRange(1), help="How many frames to predict.")
@click.option("--checkpoint", type=click.Path(path_type=Path), callback=existing("checkpoint"), help="A train-encoder/train-baseline checkpoint or run directory (default: the shipped one).")
@click.option("--out", type=click.Path(path_type=Path), help="Output directory (default: <frames>_predicted beside the input, or <collection>_predicted/<name> "
                   "when the input is one sequence of a collection, so training on it never reads predictions).")
@click.option("--truth", type=click.Path(path_type=Path), callback=existing("frames"), help="The frames that really followed: adds truth|prediction|error to the GIF and writes metrics.json.")
@click.option("--format", "fmt", default="png", show_default=True, type=click.Choice(["png", "png16", "npy", "fits"]), help="How predicted frames are written.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty directory (or the input's), replacing files of the same name.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--amp", default="no", show_default=True, type=click.Choice(["no", "bf16", "fp16"]), help="Mixed precision on GPU (ignored on CPU).")
@click.option("--anchor-decay", type=click.FloatRange(0, 1), metavar="D",
              help=ANCHOR_HELP + " Default: the checkpoint's (the shipped 64 px GAN-LSTM: 0, off); 0 shows the generator's frames as drawn.")
@click.option("--motion-scale", type=click.FloatRange(0, 1), metavar="S",
              help="GAN-LSTM: draw the k-th frame from z_J + S * (z_k - z_J), the predicted latent change from the last frame's "
                   "reading scaled (1 = as predicted; 0 with --anchor-decay 1 = copy-last-frame). Default: the checkpoint's "
                   "(fit chooses it on validation; the shipped ones: 1).")
@click.option("--context-check/--no-context-check", default=None,
              help="GAN-LSTM: first forecast this sequence's last 5 observed frames from the earlier ones, and where the "
                   "model's frames clearly lose to a fallback there (copy-last-frame, or the last frame relaxing towards the "
                   "prior's drawing of it), predict with that fallback: for frames unlike the model's training data. "
                   "Default: the checkpoint's (on in the shipped GAN-LSTMs).")
@click.option("--output-size", default="model", show_default=True, type=click.Choice(["model", "native"]),
              help="Write the predicted frames at the model's size, or resized back (bilinear) to the input's H x W. "
                   "Colour is never invented: a grayscale model's frames stay grayscale.")
@click.option("--size", type=click.IntRange(4), help="Frame size to read at; the model's own (the default) is the only one it can predict at.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="1 grayscale, 3 RGB; the model's own (the default) is the only one it predicts.")
@click.option("--interval", type=click.IntRange(1), help="Keep every N-th input frame (default: the checkpoint's).")
@click.option("--scaling", type=click.Choice(["minmax", "fixed", "asinh", "log", "none"]),
              help="How raw values map to [0, 1] (default: the checkpoint's); e.g. minmax or asinh for a cube in physical units.")
@click.option("--samples", default=1, show_default=True, type=click.IntRange(1), metavar="N",
              help="Draw N plausible futures (GAN-LSTM): the frames written are their mean; samples/, spread.npy, spread.gif "
                   "and ensemble.json (with --truth: spread-skill and CRPS per horizon) are added.")
@click.option("--spread", type=click.FloatRange(0, 10), metavar="S", help="With --samples: the latent nudge per horizon (default: the checkpoint's, which fit calibrates on its validation windows, else 0.7).")
@click.option("--seed", default=0, show_default=True, type=int, help="With --samples: the seed of the draw (the same seed draws the same futures).")
@click.option("--morphology", is_flag=True, help="With --truth: metrics.json also scores Gini, M20, C, A, the merger class, the nuclei and flux statistics.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each rollout step: on a GPU with CUDA graphs (2-4x faster at batch 1 on an H100; the first "
                   "call compiles for a while). On CPU only batches of 16+ are compiled (median 1.14x faster); one sequence, "
                   "as predict runs, measured no faster there, so it runs eagerly and says so.")
@limit_options(default=False)
def predict(frames: Path, steps: int, checkpoint: Path | None, out: Path | None, truth: Path | None, fmt: str, overwrite: bool,
            device: str, amp: str, max_frames: int | None, max_pixels: int | None, anchor_decay: float | None,
            motion_scale: float | None, context_check: bool | None, output_size: str, size: int | None, channels: str | None, interval: int | None, scaling: str | None,
            samples: int, spread: float | None, seed: int, morphology: bool, compile_: bool) -> None:
    """Predict the frames that follow a sequence.

    The model predicts at its own size and channels; when the input's differ, one warning on
    stderr names the conversions, and prediction.json in --out records them. It warns when the
    input's values lie outside the range the model's scaling maps to [0, 1]. A FITS input written
    with --format fits keeps its units and header (WCS included), with a HISTORY card.
    """
    import warnings

    from ..compiled import CompileWarning
    from ..predict_files import predict_to_directory
    from ..resolution import ResolutionWarning

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResolutionWarning)
            result = predict_to_directory(frames, steps, checkpoint=checkpoint, out=out, truth=truth, fmt=fmt, overwrite=overwrite,
                                          device=device, amp=amp, limits=frame_limits(dict(max_frames=max_frames, max_pixels=max_pixels)),
                                          anchor_decay=anchor_decay, motion_scale=motion_scale,
                                          context_check=context_check, output_size=output_size,
                                          reading={k: v for k, v in (("size", size), ("channels", int(channels) if channels else None),
                                                                     ("interval", interval), ("scaling", scaling)) if v is not None},
                                          samples=samples, spread=spread, seed=seed, morphology=morphology,
                                          compile=compile_)
    finally:  # the conversions are said even when a later step fails; other warnings go on as raised
        for w in caught:
            if issubclass(w.category, (ResolutionWarning, CompileWarning)):
                click.echo(f"warning: {w.message}", err=True)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    what = f"predicted frames (the mean of {samples} sampled futures)" if samples > 1 else "predicted frames"
    click.echo(f"wrote {steps} {what} to {result['out']} (animation: {result['gif']})")
    if result.get("compile") and not any(issubclass(w.category, CompileWarning) for w in caught):  # a failure was said above
        click.echo(f"--compile: {result['compile']}", err=True)
    ens = result.get("ensemble")
    if ens:
        cal = ens.get("calibration")
        extra = (f"; vs --truth: spread-skill {sum(cal['spread_skill']) / len(cal['spread_skill']):.2f}, "
                 f"CRPS {sum(cal['crps']) / len(cal['crps']):.4f} per pixel") if cal else ""
        click.echo(f"samples in {ens['samples']}, spread map {ens['spread']} (mean spread {ens['mean_spread']:.4f}){extra}")
        if ens["mean_spread"] == 0:
            click.echo("warning: every sampled future is the same frame sequence: the model's motion scale is 0 for this "
                       "sequence (fit found, or the context check decided, that its predicted motion does not help), so the "
                       "spread map is zero and says nothing about the uncertainty.", err=True)
    if result["metrics"]:
        mean = result["metrics"]["mean"]
        click.echo(f"vs --truth: MSE {mean['mse']:.3f} (per frame)  SSIM {mean['ssim']:.4f}  PSNR {mean['psnr']:.2f} dB  "
                   f"(per horizon: {result['out'] / 'metrics.json'})")


@click.command("export")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), callback=existing("checkpoint"), help="A train-encoder/train-baseline checkpoint or run directory.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The file to write, e.g. model.pt.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def export(checkpoint: Path, out: Path, overwrite: bool) -> None:
    """Write a prediction-only copy of a checkpoint: its config and the weights prediction uses.

    An --ema run's averaged weights (else its weights); no optimiser state, raw weights or RNG, so the
    file is a fraction of the size. predict, evaluate and Predictor read it as they read the original;
    it cannot be resumed.
    """
    from ..train.forecaster import export_forecaster

    path = export_forecaster(checkpoint, out, overwrite=overwrite)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
