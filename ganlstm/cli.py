"""The ``ganlstm`` command line: a click group whose commands load lazily.

Each command lives in ``ganlstm/commands/<module>.py`` and is thin: it builds a config,
calls one library function and prints where the results went. Loading lazily keeps
``ganlstm --help`` fast (no torch import) and lets each command own its module.
Bad input raises :class:`ganlstm.GanlstmError`; the group prints its one sentence
without a traceback and exits with status 2.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import click

from .errors import GanlstmError, Interrupted
from .commands._config_file import add_config_option
from .version import __version__

# name -> ("module under ganlstm.commands", "attribute", "one-line help for the listing")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "fit": ("fit", "fit", "From your frames to a scored model in one resumable command (all stages, a report)."),
    "simulate": ("simulate", "simulate", "Simulate galaxy mergers and write them as PNG frame sequences."),
    "render": ("render", "render", "Render simulation snapshots (GADGET, SWIFT, tipsy, ... via pynbody) as surface-density frames."),
    "train-gan": ("gan", "train_gan", "Stage one: train the DCGAN prior on single frames."),
    "sample": ("gan", "sample", "Draw a grid of frames from a trained generator."),
    "interpolate": ("gan", "interpolate", "Render a latent-space walk of a generator as a GIF."),
    "evaluate-gan": ("gan", "evaluate_gan", "Measure how well the generator can reproduce held-out frames."),
    "train-encoder": ("forecast", "train_encoder", "Stage two: train encoder + ConvLSTM into the frozen generator."),
    "train-baseline": ("forecast", "train_baseline", "Train a baseline forecaster (convlstm, predrnn) the same way."),
    "predict": ("forecast", "predict", "Predict the frames that follow a sequence."),
    "phases": ("phases", "phases", "Label every frame with its merger phase from the generator latent (k-means, ARI vs the truth)."),
    "evaluate": ("evaluate", "evaluate", "Compare models on the same windows: per-horizon MSE/MAE/PSNR/SSIM/sharpness."),
    "benchmark": ("evaluate", "benchmark", "Run the reproducible merger benchmark (train, evaluate, tabulate)."),
    "export": ("forecast", "export", "Write a small, prediction-only copy of a forecaster checkpoint."),
    "demo": ("demo", "demo", "Predict held-out simulated mergers with the shipped checkpoint."),
}


# One line a user can copy, shown under every command's --help.
EXAMPLES: dict[str, str] = {
    "fit": "ganlstm fit --data my_movie.gif --out runs/mine --budget 45m",
    "simulate": "ganlstm simulate --out data/mergers --sequences 120 --frames 50 --size 32 --seed 1",
    "render": "ganlstm render --snapshots sims/run1 --out frames/run1 --size 128 --projection xy --quantity stars",
    "train-gan": "ganlstm train-gan --data data/mergers --size 32 --max-steps 3000 --threads 1",
    "sample": "ganlstm sample --checkpoint runs/000-gan --out samples.png",
    "interpolate": "ganlstm interpolate --checkpoint runs/000-gan --steps 60 --out walk.gif",
    "evaluate-gan": "ganlstm evaluate-gan --checkpoint runs/000-gan --data data/mergers",
    "train-encoder": "ganlstm train-encoder --gan runs/000-gan --data data/mergers --context 10 --horizon 20 --max-steps 5400",
    "train-baseline": "ganlstm train-baseline --model convlstm --data data/mergers --size 32 --max-steps 1000",
    "predict": "ganlstm predict --frames data/mergers/seq_0007 --steps 30 --out pred/",
    "phases": "ganlstm phases --checkpoint runs/001-gan_lstm/best.pt --data data/mergers --out phases/",
    "evaluate": "ganlstm evaluate --checkpoint runs/001-gan_lstm --data data/mergers --context 20 --horizon 30 --out eval/",
    "benchmark": "ganlstm benchmark --quick --out bench/",
    "export": "ganlstm export --checkpoint runs/001-gan_lstm/best.pt --out small.pt",
    "demo": "ganlstm demo --out outputs/demo --overwrite",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(f"ganlstm.commands.{module}"), attr)
        add_config_option(command)
        if name in EXAMPLES and not command.epilog:
            command.epilog = "\b\nExample:\n  " + EXAMPLES[name]  # \b: click keeps the line as written
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name][0]
        return importlib.util.find_spec(f"ganlstm.commands.{module}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganlstm")
def cli() -> None:
    """ganlstm: predict how an image sequence continues with a GAN prior.

    Typical flow: simulate (or bring frames) -> train-gan -> train-encoder -> predict.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the group, turning GanlstmError into one line + exit 2."""
    try:
        cli.main(args=argv, prog_name="ganlstm", standalone_mode=False)
    except GanlstmError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, Interrupted) as e:
        saved = e if isinstance(e, Interrupted) else e.__cause__
        if isinstance(saved, Interrupted):
            run_dir = Path(saved.checkpoint).parent
            command = (argv if argv is not None else sys.argv[1:])[:1] or ["train-gan"]
            click.echo(f"interrupted: saved {saved.checkpoint}; continue with: ganlstm {command[0]} --resume {run_dir}", err=True)
        else:
            click.echo("aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
