"""Stage one on small real data: which prior converges in a CPU budget? (docs/benchmarks.md, "Stage one on your own frames")

Trains every variant for the same wall-clock budget (steps calibrated per variant by timing a
few steps, as ``ganlstm fit`` does), on user-style sources at 64 px (RGB where the source is
colour), over several seeds, and scores each on the held-out frames (the test split):
projection SSIM and MSE (100 Adam steps, 2 restarts, 32 frames), the projections' sharpness
ratio, and, with an encoder, the one-pass reading SSIM of G(E(x)).

Variants: ``dcgan`` (plain), ``dcgan+ada`` (adaptive augmentation), ``ae`` (encoder beside G with
the reconstruction term, weight 30), ``ae+ada`` (both; fit's default), and ``transfer`` (``--init`` from the
``ae+ada`` prior of ``--init-source``, seed 0, with FreezeD on D's first 2 blocks).

    python benchmarks/stage_one.py --source gif --out bench/stage_one --minutes 4 --seeds 0,1 --threads 1

Rows are appended to OUT/stage_one.jsonl; finished rows are skipped when run again.
``python benchmarks/stage_one.py --summary OUT`` prints the markdown table of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from own_data_sources import GIF, SOURCES, source_path  # noqa: E402

from ganlstm.config import FitConfig  # noqa: E402
from ganlstm.pipeline import VAL_SHARE, calibrate, gan_config, inspect_data, run_config  # noqa: E402
from ganlstm.report import prior_quality  # noqa: E402
from ganlstm.train.gan import train_gan  # noqa: E402
from ganlstm.train.gan_health import read_health  # noqa: E402

VARIANTS = {"dcgan": (0.0, 0.0), "dcgan+ada": (0.0, 0.6), "ae": (30.0, 0.0), "ae+ada": (30.0, 0.6), "transfer": (30.0, 0.6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=SOURCES, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--variants", default="dcgan,dcgan+ada,ae,ae+ada")
    ap.add_argument("--init-source", default="sim-colour", help="transfer: the source whose ae+ada seed-0 prior is fine-tuned")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gif", type=Path, default=GIF)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "stage_one.jsonl"
    done = {(r["source"], r["variant"], r["seed"]) for r in map(json.loads, rows_path.read_text().splitlines())} if rows_path.exists() else set()
    data = source_path(args.source, args.out / "data", args.gif)
    for variant in args.variants.split(","):
        for seed in map(int, args.seeds.split(",")):
            if (args.source, variant, seed) in done:
                continue
            recon, ada = VARIANTS[variant]
            fit = FitConfig(data=str(data), out="", budget=args.minutes, seed=seed, threads=args.threads, recon_weight=recon, ada_target=ada)
            plan = inspect_data(fit)
            cfg = gan_config(fit, plan)
            if variant == "transfer":
                init = args.out / "runs" / args.init_source / f"{args.init_source}-ae+ada-0"
                while not (init / "best.pt").exists() or not (args.out / "stage_one.jsonl").read_text().count(f'"{args.init_source}", "variant": "ae+ada", "seed": 0'):
                    time.sleep(20)  # the other process is still training the prior to start from
                cfg = replace(cfg, init=str(init / "best.pt"), freeze_d=2)
            per_step = calibrate("gan", cfg, fit, fit.gan_batch_size)[1]
            steps = max(10, int(args.minutes * 60 * (1 - VAL_SHARE) / per_step))
            run = replace(run_config(fit, args.out / "runs" / args.source, steps, fit.gan_batch_size), progress=False)
            t0 = time.perf_counter()
            run_dir = train_gan(cfg, run)
            seconds = time.perf_counter() - t0
            named = run_dir.parent / f"{args.source}-{variant}-{seed}"
            run_dir.rename(named)
            q = prior_quality(named / "best.pt")
            row = {"source": args.source, "variant": variant, "seed": seed, "steps": steps, "seconds": round(seconds, 1),
                   **{k: round(v, 4) for k, v in q.items()}, "diagnoses": len(read_health(named))}
            print(json.dumps(row), flush=True)
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")


def summary(rows_path: Path) -> str:
    """Markdown: one row per (source, variant), each seed's value shown, and the mean."""
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    keys = ("projection_ssim", "projection_sharpness", "encoder_ssim", "steps", "diagnoses")
    lines = ["| source | variant | " + " | ".join(keys) + " |", "|" + "---|" * (2 + len(keys))]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["variant"]), []).append(r)
    for (source, variant), rs in sorted(groups.items()):
        cells = []
        for k in keys:
            vals = [r[k] for r in sorted(rs, key=lambda r: r["seed"]) if k in r]
            cells.append("-" if not vals else " / ".join(str(v) if isinstance(v, int) else f"{v:.3g}" for v in vals) + (f" (mean {sum(vals) / len(vals):.3g})" if len(vals) > 1 and k != "steps" else ""))
        lines.append(f"| {source} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summary"]:
        print(summary(Path(sys.argv[2]) / "stage_one.jsonl"))
    else:
        main()
