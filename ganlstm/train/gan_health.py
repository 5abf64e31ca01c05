"""Stage one's failure detector: say during the run when the GAN is not learning, and how to fix it.

A GAN on a few hundred frames fails in two plain ways, and a user should not discover either
only after stage two:

* **the discriminator wins outright**: it tells real from generated frames almost always
  (accuracy >= :data:`D_WINS_ACCURACY` over an evaluation window) while G's loss is high and
  not falling, so G's gradient carries no information;
* **mode collapse**: G draws (nearly) the same frame for every latent. Measured as the
  diversity ratio: the per-pixel variance across a batch of samples (fixed latents) divided by
  the same variance across training frames. With an encoder beside G the redrawings G(E(x)) of
  those frames count too (random latents may sit where E's readings do not, which is no collapse);
  below :data:`COLLAPSE_RATIO` for both, G collapsed.

:class:`GanHealth` accumulates D's accuracy and G's loss as tensors inside the training step (no
host sync per step) and reads them at each evaluation, from step :data:`WARMUP_STEPS` on. Every diagnosis is one sentence naming
the fix; it is printed to stderr, appended to ``health.txt`` in the run directory, and the
numbers go to ``metrics.csv`` (``d_accuracy``, ``diversity``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor

D_WINS_ACCURACY = 0.95  # D right on this share of real and fake frames over a whole window
D_WINS_G_LOSS = 2.0  # ... while G's non-saturating loss stays above this (D(fake) < ~13 %)
COLLAPSE_RATIO = 0.2  # sample variance across a batch below this share of the real frames'
MIN_WINDOW = 10  # D's accuracy is judged over at least this many steps
WARMUP_STEPS = 100  # no diagnosis before this step: an untrained G draws near-constant frames by design
HEALTH_FILE = "health.txt"

ADA_FIX = "turn on adaptive augmentation (--ada-target 0.6)"
RECON_FIX = "turn on the reconstruction term (--encoder 32 --recon-weight 30), which ties the latents to real frames"


def _fixes(*options: str) -> str:
    return ", ".join(options[:-1]) + ", or " + options[-1] if len(options) > 1 else options[0]


def diversity(frames: Tensor) -> Tensor:
    """Mean per-pixel variance across a batch of frames (N, C, H, W) in [0, 1]: half their mean squared pairwise distance."""
    return frames.float().var(dim=0, unbiased=False).mean()


def diversity_ratio(samples: Tensor, real: Tensor) -> float:
    """Sample diversity over real-frame diversity (1 = as varied as the data; near 0 = collapsed)."""
    ref = float(diversity(real))
    return float(diversity(samples)) / ref if ref > 0 else float("nan")


class GanHealth:
    """Window statistics of D's accuracy and G's loss, and the diagnoses drawn from them at each evaluation."""

    def __init__(self, device: torch.device, reconstructs: bool = False, adaptive: bool = False):
        self.reconstructs = reconstructs  # an encoder beside G: G still learns from G(E(x)) ~ x when D wins
        missing = ([] if adaptive else [ADA_FIX]) + ([] if reconstructs else [RECON_FIX])
        self.fix_d_wins = _fixes(*missing, "lower --lr-d", "fine-tune from a prior with --init CKPT --freeze-d 2")
        self.fix_collapse = _fixes(*([] if reconstructs else [RECON_FIX]), "lower --lr-g", "resume from an earlier checkpoint")
        self.sums = torch.zeros(3, device=device)  # (D accuracy, G loss, steps) since the last evaluation
        self.said: set[str] = set()

    def observe_d(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        """One D step's logits (B,): D's accuracy, kept on the device; counts the step."""
        acc = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
        self.sums += torch.stack([acc, torch.zeros_like(acc), torch.ones_like(acc)])

    def observe_g(self, g_loss: Tensor) -> None:
        """One G step's adversarial loss (a scalar), kept on the device."""
        self.sums[1] += g_loss.detach().float()

    def check(self, step: int, samples: Tensor | None, real: Tensor | None, run_dir: Path | None,
              redrawn: Tensor | None = None) -> dict[str, float]:
        """Diagnose the window that ends at ``step``; returns ``d_accuracy`` and ``diversity`` for metrics.csv.

        ``samples`` and ``real`` (N, C, H, W) in [0, 1] are the generator's fixed-latent samples and real frames;
        ``redrawn``, with an encoder, G(E(real)). G has collapsed when neither its samples nor its redrawings vary.
        """
        acc, g, n = (float(v) for v in self.sums)
        self.sums.zero_()
        out: dict[str, float] = {}
        messages = []
        judge = step >= WARMUP_STEPS
        if n:
            out["d_accuracy"], g = acc / n, g / n
            if judge and n >= MIN_WINDOW and out["d_accuracy"] >= D_WINS_ACCURACY and g >= D_WINS_G_LOSS:
                effect = ("samples from random latents will look unlike your frames (G still learns to redraw them, "
                          "G(E(x)) ~ x)" if self.reconstructs else "so G is learning little")
                messages.append(("d_wins", f"step {step}: the discriminator wins outright (right on {out['d_accuracy']:.0%} of "
                                 f"real and generated frames, G loss {g:.2f}): {effect}; {self.fix_d_wins}."))
        if samples is not None and real is not None and len(samples) > 1 and len(real) > 1:
            out["diversity"] = diversity_ratio(samples, real)
            spread = out["diversity"]
            if redrawn is not None:
                out["redrawn_diversity"] = diversity_ratio(redrawn, real)
                spread = max(spread, out["redrawn_diversity"])
            if judge and spread < COLLAPSE_RATIO:
                messages.append(("collapse", f"step {step}: the samples collapsed: their spread across a batch is "
                                 f"{spread:.0%} of the real frames'; {self.fix_collapse}."))
        for kind, text in messages:
            self.report(kind, text, run_dir)
        return out

    def report(self, kind: str, text: str, run_dir: Path | None) -> None:
        """Record a diagnosis in health.txt every time; print it the first time its kind occurs."""
        if run_dir is not None:
            with open(Path(run_dir) / HEALTH_FILE, "a") as f:
                f.write(text + "\n")
        if kind not in self.said:
            self.said.add(kind)
            print(f"warning: {text}", file=sys.stderr, flush=True)


def read_health(run_dir: str | Path) -> list[str]:
    """The diagnoses a stage-one run recorded (``health.txt``), oldest first; [] when healthy."""
    path = Path(run_dir) / HEALTH_FILE
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
