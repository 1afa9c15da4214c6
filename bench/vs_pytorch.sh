#!/usr/bin/env bash
# Side-by-side benchmark: rethink (burn flex) vs PyTorch CPU, same train step and eval pass
# (WRN-28-1 and MLP-512, batch 128, threads = cores), one table with ratios.
# Usage: bench/vs_pytorch.sh [STEPS [ROUNDS]]   (not part of CI; creates bench/.venv on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-11}"
rounds="${2:-5}"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with torch from PyPI (large download, once)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 numpy
fi
cores=$(nproc)
cargo bench --bench train_step --no-run -q 2>/dev/null || cargo bench --bench train_step --no-run
bin=$(cargo bench -q --bench train_step --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
# The two sides take turns, round after round, so that a slow spell of this shared machine
# hits both; each side's time is the median of its per-round medians.
log=$(mktemp)
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  "$bin" --steps "$steps" --csv 2>/dev/null | grep -E '^(WRN|MLP)' | sed 's/^/rethink,/' >>"$log"
  "$venv/bin/python" bench/torch_step.py --steps "$steps" --threads "$cores" | sed 's/^/torch,/' >>"$log"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { grep "^$1,$2," "$log" | cut -d, -f"$3" | median; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'), $rounds alternating rounds of $steps timed steps (medians), batch 128"
echo
echo "| model | pass | rethink ms | PyTorch ms | ratio (rethink/PyTorch) | per-round ratios | rethink img/s | PyTorch img/s | rethink GFLOP/s | PyTorch GFLOP/s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in WRN-28-1 MLP-512; do
  for pass in train eval; do
    if [ "$pass" = train ]; then f=3; mf=330; else f=4; mf=110; fi
    [ "$name" = "MLP-512" ] && { [ "$pass" = train ] && mf=9.5 || mf=3.2; }
    a=$(col rethink "$name" "$f"); b=$(col torch "$name" "$f")
    # The spread of the per-round ratios, rounds paired in order.
    spread=$(paste -d, <(grep "^rethink,$name," "$log" | cut -d, -f"$f") <(grep "^torch,$name," "$log" | cut -d, -f"$f") \
      | awk -F, 'NR == 1 || $1 / $2 < lo { lo = $1 / $2 } NR == 1 || $1 / $2 > hi { hi = $1 / $2 } END { printf "%.2f–%.2f", lo, hi }')
    awk -v n="$name" -v p="$pass" -v a="$a" -v b="$b" -v mf="$mf" -v sp="$spread" 'BEGIN {
      printf "| %s | %s | %.1f | %.1f | %.2f | %s | %.0f | %.0f | %.0f | %.0f |\n",
        n, p, a, b, a / b, sp, 128000 / a, 128000 / b, mf * 128 / a, mf * 128 / b }'
  done
done
rm -f "$log"
