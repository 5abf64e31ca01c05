#!/usr/bin/env bash
# Check the CUDA paths end to end on a GPU machine, in one go (~5 min on one H100):
#
#   bash benchmarks/gpu_check.sh [OUTDIR]        # default OUTDIR: runs/gpu_check
#
# 1. the environment (GPU, driver, torch);
# 2. tests/test_cuda.py (autocast prediction, torch.compile'd steps, no host sync, AMP training steps);
# 3. the CLI on the GPU: simulate -> train-gan -> train-encoder -> resume -> predict -> evaluate, under
#    bf16 and fp16 autocast, plus train-gan and train-encoder under `torchrun` (nccl, one rank), and
#    --deterministic: two runs of each trainer must end with bit-identical weights;
# 4. the whole test suite on a machine where CUDA is present (device "auto" picks the GPU there).
#
# Each step's log goes to OUTDIR/<step>.log; OUTDIR/summary.txt lists each step's exit status and seconds.
# The package is used from this checkout (PYTHONPATH), so nothing needs installing beyond torch and the
# dependencies in setup.cfg. Set GANLSTM_PY to pick the Python (default: python3).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-runs/gpu_check}
PY=${GANLSTM_PY:-python3}
DEV=${DEVICE:-cuda}        # DEVICE=cpu runs the CLI steps on the CPU (a dry run of this script)
STEPS=${STEPS:-env test_cuda cli ddp deterministic test_suite}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
WORK=$(mktemp -d)
: > "$OUTDIR/summary.txt"

step() {  # step NAME TIMEOUT CMD...: run CMD, log its output, record its status and time
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s%N)
  timeout "$limit" bash -c '"$@"' _ "$@" > "$OUTDIR/$name.log" 2>&1   # bash -c: the steps are functions
  rc=$?
  printf '%-12s rc=%-3s %6d ms\n' "$name" "$rc" $((($(date +%s%N) - t0) / 1000000)) | tee -a "$OUTDIR/summary.txt"
}

g() { "$PY" -m ganlstm "$@"; }

env_report() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
print("bf16 supported", torch.cuda.is_bf16_supported())
EOF
}

cli() {  # the user's path on a GPU, small and fast: every command, both half precisions, resume
  set -e
  local d=$WORK/data r=$WORK/runs
  g simulate --out "$d" --sequences 12 --frames 24 --size 32 --seed 1
  for amp in bf16 fp16; do
    g train-gan --data "$d" --size 32 --nz 64 --latent-grid 4 --ngf 16 --ndf 16 --batch-size 16 --max-steps 30 \
      --device $DEV --amp "$amp" --out "$r/$amp" --save-every 10
    g train-gan --out "$r/$amp" --resume last --max-steps 40 --device $DEV
    gan=$(ls -d "$r/$amp"/*-gan | tail -n 1)
    g train-encoder --gan "$gan/best.pt" --data "$d" --context 6 --horizon 6 --hidden 16,16 --batch-size 4 \
      --reader-warmup 10 --ema 0.99 --max-steps 30 --save-every 10 --device $DEV --amp "$amp" --out "$r/$amp"
    enc=$(ls -d "$r/$amp"/*-gan_lstm | tail -n 1)
    g train-encoder --out "$r/$amp" --resume last --max-steps 40 --device $DEV
    g train-baseline --model convlstm --data "$d" --context 6 --horizon 6 --hidden 8,8 --batch-size 4 \
      --max-steps 20 --device $DEV --amp "$amp" --out "$r/$amp"
    base=$(ls -d "$r/$amp"/*-convlstm | tail -n 1)
    g predict --frames "$d/seq_0000" --steps 12 --checkpoint "$enc/best.pt" --device $DEV --amp "$amp" --out "$r/$amp/pred"
    g evaluate --checkpoint "$enc/best.pt" --checkpoint "$base/best.pt" --data "$d" --split all --context 6 --horizon 12 \
      --device $DEV --amp "$amp" --out "$r/$amp/eval"
    grep -h "" "$enc/log.csv" | tail -n 2
  done
  g predict --frames "$d/seq_0001" --steps 30 --device $DEV --out "$r/shipped_pred"   # the shipped checkpoint
  g demo --out "$r/demo" --device $DEV
}

deterministic() {  # --deterministic on the GPU: two identical runs of each trainer give bit-identical weights
  set -e
  local d=$WORK/data r=$WORK/det
  [ -d "$d" ] || g simulate --out "$d" --sequences 12 --frames 24 --size 32 --seed 1
  for i in 1 2; do
    g train-gan --data "$d" --size 32 --nz 64 --ngf 16 --ndf 16 --batch-size 16 --max-steps 20 --deterministic \
      --device $DEV --out "$r/$i"
    g train-encoder --gan "$r/$i/000-gan/last.pt" --data "$d" --context 6 --horizon 6 --hidden 16,16 --batch-size 4 \
      --reader-warmup 5 --max-steps 20 --deterministic --device $DEV --out "$r/$i"
  done
  "$PY" - "$r" <<'EOF'
import sys, torch
r = sys.argv[1]
for run in ("000-gan", "001-gan_lstm"):
    a, b = (torch.load(f"{r}/{i}/{run}/last.pt", weights_only=True)["models"] for i in (1, 2))
    same = all(torch.equal(a[m][k], b[m][k]) for m in a for k in a[m])
    print(run, "bit-identical" if same else "DIFFERENT")
    assert same, f"{run}: two --deterministic runs differ"
EOF
}

ddp() {  # torchrun on one GPU rank: the nccl process group, DDP wrapping, rank-0 writes, resume
  set -e
  local d=$WORK/data r=$WORK/ddp
  [ -d "$d" ] || g simulate --out "$d" --sequences 12 --frames 24 --size 32 --seed 1
  "$PY" -m torch.distributed.run --nproc_per_node=1 -m ganlstm train-gan --data "$d" --size 32 --nz 64 --ngf 16 --ndf 16 \
    --batch-size 16 --max-steps 20 --device $DEV --amp bf16 --out "$r"
  gan=$(ls -d "$r"/*-gan | tail -n 1)
  "$PY" -m torch.distributed.run --nproc_per_node=1 -m ganlstm train-encoder --gan "$gan/best.pt" --data "$d" --context 6 \
    --horizon 6 --hidden 16,16 --batch-size 4 --max-steps 20 --save-every 10 --device $DEV --amp bf16 --out "$r"
  "$PY" -m torch.distributed.run --nproc_per_node=1 -m ganlstm train-encoder --out "$r" --resume last --max-steps 30 --device $DEV
}

export -f g env_report cli ddp deterministic
export PY DEV WORK
for s in $STEPS; do
  case $s in
    env) step env 60 env_report ;;
    test_cuda) step test_cuda 400 "$PY" -m pytest tests/test_cuda.py -q -rs -p no:cacheprovider ;;
    cli) step cli 400 cli ;;
    ddp) step ddp 300 ddp ;;
    deterministic) step deterministic 300 deterministic ;;
    test_suite) step test_suite "${SUITE_TIMEOUT:-600}" "$PY" -m pytest -q -rs -p no:cacheprovider ;;
    *) echo "unknown step $s" >&2; exit 2 ;;
  esac
done
rm -rf "$WORK"
