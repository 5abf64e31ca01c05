"""Distributed training on CPU: ``torchrun --nproc_per_node=2`` (gloo) runs both stages through the real CLI.

One torchrun launch runs this file as its script (see ``__main__`` at the bottom): each rank
trains stage one and stage two, each as "2 steps, then resume to 4" and as "4 steps in one
go", and after every run dumps its weights (a wrapper around the trainers' ``fit``; the
trainers themselves are untouched). Rank 1 also records, with an audit hook, every file it
opens for writing, creates, renames or deletes under the runs directory (rank 0 too, to show
that the hook sees the writes). The test then checks:

* both ranks end every run with bit-identical parameters (DDP's gradient all-reduce);
* rank 1 wrote nothing: one run directory per run, one log, all written by rank 0;
* resume under DDP is exact: "2 steps, resume, 2 more" == "4 steps" on every rank, and the
  resumed run's log continues at step 3.

Stage one's BatchNorm running statistics are the exception to "bit-identical on both ranks":
SyncBatchNorm does not run on CPU, so each rank keeps statistics of its own shard, DDP copies
rank 0's to every rank at each forward, and checkpoints hold rank 0's (see docs/distributed.md).
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from forecast_helpers import simulated

pytestmark = pytest.mark.slow

SIZE = 16
GAN_FLAGS = ["--size", str(SIZE), "--nz", "8", "--latent-grid", "1", "--ngf", "4", "--ndf", "4", "--batch-size", "4", "--seed", "5"]
# A constant scheduled-sampling probability: the schedule follows the run's total budget, which a resume
# with a larger --max-steps changes; at 0.5 every closed-loop input still draws a per-rank coin.
ENCODER_FLAGS = ["--context", "3", "--horizon", "2", "--hidden", "8,8", "--batch-size", "2", "--seed", "5",
                 "--sampling-start", "0.5", "--sampling-end", "0.5"]
COMMON_FLAGS = ["--device", "cpu"]
# (run name, stage) in the order the driver runs them; run directories are numbered in this order too.
RUNS = [("gan_a", "gan"), ("gan_b", "gan"), ("enc_a", "gan_lstm"), ("enc_b", "gan_lstm")]


# ---------------------------------------------------------------- the test (runs in pytest)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """Launch torchrun once (2 CPU ranks, gloo) and return its working directory."""
    work = tmp_path_factory.mktemp("ddp")
    simulated(work / "data", sequences=6, frames=12)  # 4 train, 1 val, 1 test sequences of 16 px mergers
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master-port={_free_port()}",
           __file__, str(work)]
    proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return work


def _weights(work: Path, run: str, rank: int) -> dict[str, dict[str, torch.Tensor]]:
    return torch.load(work / "dump" / f"{run}_rank{rank}.pt", weights_only=True)


def _is_bn_statistic(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def _differing(a: dict, b: dict, *, skip_bn_statistics: str = "") -> list[str]:
    """Names of the tensors that are not bit-identical between two {model: state_dict} dumps.

    ``skip_bn_statistics``: the models (e.g. "GD", "D") whose BatchNorm running statistics are not compared.
    """
    assert a.keys() == b.keys()
    out = []
    for model in a:
        assert a[model].keys() == b[model].keys()
        skip = model in skip_bn_statistics.split(",") if skip_bn_statistics else False
        out += [f"{model}.{k}" for k, v in a[model].items()
                if not (skip and _is_bn_statistic(k)) and not torch.equal(v, b[model][k])]
    return out


@pytest.mark.parametrize("run,stage", RUNS)
def test_both_ranks_end_with_identical_weights(ddp_run, run, stage):
    for phase in (run, f"{run}_resumed") if run.endswith("_a") else (run,):
        rank0, rank1 = _weights(ddp_run, phase, 0), _weights(ddp_run, phase, 1)
        # Stage one trains BatchNorm on CPU without SyncBatchNorm: its running statistics are per rank.
        assert _differing(rank0, rank1, skip_bn_statistics="G,G_ema,D" if stage == "gan" else "") == [], phase
        if stage == "gan_lstm":  # stage two trains no BatchNorm (G is frozen): the whole state_dict agrees
            assert _differing(rank0, rank1) == []


@pytest.mark.parametrize("stage", ["gan", "enc"])
def test_resume_under_ddp_equals_one_uninterrupted_run(ddp_run, stage):
    for rank in (0, 1):
        resumed, straight = _weights(ddp_run, f"{stage}_a_resumed", rank), _weights(ddp_run, f"{stage}_b", rank)
        # D's running statistics are per rank and never read (D is not broadcast, see Dist.prepare); a resume
        # gives every rank rank 0's, so on rank 1 they differ from the uninterrupted run's. All else is exact.
        skip = "D" if stage == "gan" and rank > 0 else ""
        assert _differing(resumed, straight, skip_bn_statistics=skip) == [], f"rank {rank}"
    # The interrupted run was really cut: after 2 steps its weights differ from the 4-step ones.
    assert _differing(_weights(ddp_run, f"{stage}_a", 0), _weights(ddp_run, f"{stage}_b", 0)) != []


def test_only_rank_0_wrote_files(ddp_run):
    writes = {rank: json.loads((ddp_run / f"writes_rank{rank}.json").read_text()) for rank in (0, 1)}
    assert any("last.pt" in w for w in writes[0]) and any("log.csv" in w for w in writes[0])  # the hook sees writes
    assert writes[1] == [], f"rank 1 wrote under runs/: {writes[1][:5]}"
    runs = sorted(p.name for p in (ddp_run / "runs").iterdir())
    assert runs == ["000-gan", "001-gan", "002-gan_lstm", "003-gan_lstm"]
    for run in runs:
        files = sorted(p.name for p in (ddp_run / "runs" / run).iterdir())
        assert {"config.json", "log.csv", "last.pt"} <= set(files), run
        assert not [f for f in files if f.endswith(".tmp")], run


def test_resumed_logs_continue_where_the_checkpoint_stopped(ddp_run):
    for run in ("000-gan", "002-gan_lstm"):
        with (ddp_run / "runs" / run / "log.csv").open() as f:
            steps = [int(r["step"]) for r in csv.DictReader(f)]
        assert steps == [2, 4], run  # rows at the end of each budget (log_every=10), written once, none repeated


# ---------------------------------------------------------------- the driver (runs under torchrun)


def _record_writes(root: Path, log: list[str]):
    """An audit hook that appends every write-like file operation under ``root`` to ``log``."""
    root_s = str(root.resolve())
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def under_root(path) -> bool:
        if isinstance(path, int):
            return False
        try:
            return os.path.abspath(os.fsdecode(path)).startswith(root_s)
        except TypeError:
            return False

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & write_flags)
            if writing and under_root(path):
                log.append(f"open {path}")
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.truncate") and under_root(args[0]):
            log.append(f"{event} {args[0]}")
        elif event == "os.rename" and (under_root(args[0]) or under_root(args[1])):
            log.append(f"{event} {args[0]} -> {args[1]}")

    return hook


def _driver(work: Path) -> None:
    """What each torchrun rank runs: both stages via the CLI, dumping its weights after every run."""
    import torch.distributed as dist

    from ganlstm.cli import main
    from ganlstm.train import forecaster as forecaster_train
    from ganlstm.train import gan as gan_train

    rank = int(os.environ["RANK"])
    runs, dump = work / "runs", work / "dump"
    dump.mkdir(exist_ok=True)
    writes: list[str] = []
    sys.addaudithook(_record_writes(runs, writes))  # on rank 0 too: proves the hook sees the writes
    gan_train.PROXY_STEPS = 5  # the per-epoch projection score, cheaper
    current = {"name": ""}

    def dumping(real_fit):
        def fit(task, *args, **kwargs):
            state = real_fit(task, *args, **kwargs)
            weights = {k: {n: t.detach().clone() for n, t in getattr(m, "module", m).state_dict().items()} for k, m in task.models.items()}
            torch.save(weights, dump / f"{current['name']}_rank{rank}.pt")
            return state
        return fit

    gan_train.fit = dumping(gan_train.fit)
    forecaster_train.fit = dumping(forecaster_train.fit)

    def run(name: str, args: list[str]) -> None:
        current["name"] = name
        main(args + COMMON_FLAGS)
        dist.barrier()  # the next run may read the checkpoint rank 0 has just written

    gan = ["train-gan", "--data", "data", "--out", "runs"]
    run("gan_a", gan + GAN_FLAGS + ["--max-steps", "2"])
    run("gan_a_resumed", ["train-gan", "--resume", "runs/000-gan", "--out", "runs", "--max-steps", "4"])
    run("gan_b", gan + GAN_FLAGS + ["--max-steps", "4"])
    enc = ["train-encoder", "--gan", "runs/001-gan/last.pt", "--data", "data", "--out", "runs", "--reader-warmup", "0"]
    run("enc_a", enc + ENCODER_FLAGS + ["--max-steps", "2"])
    run("enc_a_resumed", ["train-encoder", "--resume", "runs/002-gan_lstm", "--out", "runs", "--max-steps", "4"])
    run("enc_b", enc + ENCODER_FLAGS + ["--max-steps", "4"])
    (work / f"writes_rank{rank}.json").write_text(json.dumps(writes))
    dist.destroy_process_group()


if __name__ == "__main__":
    _driver(Path(sys.argv[1]))
