"""Your own frames: ``ganlstm fit`` on user-style sources, scored against the issue's targets.

Sources (benchmarks/own_data_sources.py): the third-party ``gif`` movie (one movie, split in
time), ``sim-colour`` (the simulator rendered in false colour with noise, a wider PSF and fewer
particles) and ``shapes`` (bouncing coloured shapes). Each runs the whole ``fit`` at 64 px (RGB:
all three are colour) on the same budget, then this script tabulates, per source: projection
SSIM of held-out frames, and per-horizon MSE and SSIM of the GAN-LSTM, ConvLSTM, persistence and
linear, and checks the targets (projection SSIM >= 0.90; the GAN-LSTM beats persistence in MSE
and SSIM at every horizon; it matches the ConvLSTM's SSIM from horizon 5 on).

    python benchmarks/own_data.py --out bench/own --budget 20m --threads 1 --sources gif,sim-colour,shapes --seed 0

Each fit resumes when the command is run again; ``--summary`` only tabulates finished fits.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from own_data_sources import GIF, SOURCES, source_path  # noqa: E402

from ganlstm.commands.fit import parse_budget  # noqa: E402
from ganlstm.config import FitConfig  # noqa: E402
from ganlstm.pipeline import run_fit  # noqa: E402

MODELS = ("gan_lstm", "convlstm", "persistence", "linear")
SHOWN = (1, 2, 5, 10)


def targets(facts: dict) -> dict[str, bool]:
    """The issue's three targets on one source's report."""
    ph = facts["per_horizon"]
    g, p, c = ph["gan_lstm"], ph["persistence"], ph["convlstm"]
    k = len(g["mse"])
    return {
        "projection_ssim>=0.90": facts["prior"]["projection_ssim"] >= 0.90,
        "beats_persistence_mse_all_h": all(g["mse"][i] < p["mse"][i] for i in range(k)),
        "beats_persistence_ssim_all_h": all(g["ssim"][i] > p["ssim"][i] for i in range(k)),
        "ssim>=convlstm_from_h5": all(g["ssim"][i] >= c["ssim"][i] for i in range(4, k)),
    }


def table(rows: list[tuple[str, int, dict]]) -> str:
    head = "| source | seed | proj. SSIM | model | " + " | ".join(f"MSE k={h}" for h in SHOWN) + " | " + \
        " | ".join(f"SSIM k={h}" for h in SHOWN) + " |"
    lines = [head, "|" + "---|" * (4 + 2 * len(SHOWN))]
    for source, seed, facts in rows:
        for i, m in enumerate(MODELS):
            ph = facts["per_horizon"][m]
            first = (source, str(seed), f"{facts['prior']['projection_ssim']:.3f}") if i == 0 else ("", "", "")
            lines.append("| " + " | ".join([*first, m, *(f"{ph['mse'][h - 1]:.3g}" for h in SHOWN if h <= len(ph['mse'])),
                                              *(f"{ph['ssim'][h - 1]:.3f}" for h in SHOWN if h <= len(ph['ssim']))]) + " |")
    lines += ["", "| source | seed | anchor decay | " + " | ".join(targets(rows[0][2])) + " |", "|" + "---|" * (3 + len(targets(rows[0][2])))]
    for source, seed, facts in rows:
        lines.append(f"| {source} | {seed} | {facts['anchor']['decay']:g} | " + " | ".join("yes" if v else "**no**" for v in targets(facts).values()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", default="60m")
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gif", type=Path, default=GIF)
    ap.add_argument("--summary", action="store_true", help="only tabulate the fits already finished under --out")
    args = ap.parse_args()
    if not args.summary:
        for name in args.sources.split(","):
            data = source_path(name, args.out / "data", args.gif)
            cfg = FitConfig(data=str(data), out=str(args.out / f"{name}-seed{args.seed}"), budget=parse_budget(args.budget),
                            seed=args.seed, threads=args.threads)
            run_fit(cfg)
    rows = []
    for report in sorted(args.out.glob("*-seed*/report/report.json")):
        source, _, seed = report.parent.parent.name.rpartition("-seed")
        rows.append((source, int(seed), json.loads(report.read_text())))
    if rows:
        text = table(rows)
        (args.out / "own_data.md").write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
