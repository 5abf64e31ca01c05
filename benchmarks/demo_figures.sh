#!/usr/bin/env bash
# Regenerate docs/demo/* from the shipped checkpoints (checkpoints/gan_lstm.pt and convlstm.pt, 64 px):
#
#   bash benchmarks/demo_figures.sh        # about 15 minutes on one loaded CPU core, most of it phases_demo.py
#
# - comparison.gif, metrics.csv/.json/.png and table.txt: `ganlstm demo` (8 held-out mergers, seed 3), as README shows them;
# - spread.png: `ganlstm predict --samples 16` on one of those mergers (20 observed, 30 predicted, with --truth);
# - gini_m20.png: benchmarks/gini_m20_plot.py;  phases.png: benchmarks/phases_demo.py (prints its ARI table);
# - rendered_snapshot.png (no model; needs pynbody): benchmarks/render_demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a G <<< "${GANLSTM:-.venv/bin/ganlstm}"
read -r -a PY <<< "${PYTHON:-.venv/bin/python}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

{ echo '$ ganlstm demo --out docs/demo   # 8 held-out mergers, simulator seed 3; shipped checkpoints of checkpoints/MODEL_CARD.md'
  "${G[@]}" demo --out docs/demo --overwrite --device cpu | grep -v '^wrote '; } > "$TMP/table.txt"
mv "$TMP/table.txt" docs/demo/table.txt
rm -f docs/demo/.ganlstm-output  # the demo's "outputs, not data" marker: docs/demo is not a collection anyone reads
cat docs/demo/table.txt

"${G[@]}" simulate --out "$TMP/sim" --sequences 1 --frames 50 --size 64 --seed 3 > /dev/null
mkdir -p "$TMP/obs" "$TMP/truth"
for f in "$TMP"/sim/seq_0000/frame_*.png; do
  n=$((10#$(basename "$f" .png | sed 's/frame_//')))
  if [ "$n" -lt 20 ]; then cp "$f" "$TMP/obs/"; else cp "$f" "$TMP/truth/"; fi
done
"${G[@]}" predict --frames "$TMP/obs" --steps 30 --samples 16 --seed 0 --truth "$TMP/truth" --out "$TMP/pred" --device cpu > /dev/null
cp "$TMP/pred/spread.png" docs/demo/spread.png

"${PY[@]}" benchmarks/gini_m20_plot.py
"${PY[@]}" benchmarks/phases_demo.py
if "${PY[@]}" -c "import pynbody" 2> /dev/null; then "${PY[@]}" benchmarks/render_demo.py; fi
ls -la docs/demo
