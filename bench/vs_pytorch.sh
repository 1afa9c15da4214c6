#!/usr/bin/env bash
# Side-by-side benchmark: rethink (burn flex) vs PyTorch CPU, same train step and eval pass
# (WRN-28-1 and MLP-512, batch 128, threads = cores), one table with ratios.
# Usage: bench/vs_pytorch.sh [STEPS]   (not part of CI; creates bench/.venv on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-15}"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with torch from PyPI (large download, once)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 numpy
fi
cores=$(nproc)
cargo bench --bench train_step --no-run -q 2>/dev/null || cargo bench --bench train_step --no-run
ours=$(cargo bench -q --bench train_step -- --steps "$steps" --csv 2>/dev/null | grep -E '^(WRN|MLP)')
theirs=$("$venv/bin/python" bench/torch_step.py --steps "$steps" --threads "$cores")
gflop_wrn=$(( 330 * 128 ))   # MFLOP per WRN-28-1 train step at batch 128 (reference.md §4)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'), $steps timed steps, batch 128"
echo
echo "| model | pass | rethink ms | PyTorch ms | ratio (rethink/PyTorch) | rethink img/s | PyTorch img/s | rethink GFLOP/s | PyTorch GFLOP/s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
while IFS=, read -r name train eval; do
  theirs_line=$(grep "^$name," <<<"$theirs")
  t_train=$(cut -d, -f2 <<<"$theirs_line"); t_eval=$(cut -d, -f3 <<<"$theirs_line")
  for pass in train eval; do
    if [ "$pass" = train ]; then a=$train; b=$t_train; mf=330; else a=$eval; b=$t_eval; mf=110; fi
    [ "$name" = "MLP-512" ] && { [ "$pass" = train ] && mf=9.5 || mf=3.2; }
    awk -v n="$name" -v p="$pass" -v a="$a" -v b="$b" -v mf="$mf" 'BEGIN {
      printf "| %s | %s | %.1f | %.1f | %.2f | %.0f | %.0f | %.0f | %.0f |\n",
        n, p, a, b, a / b, 128000 / a, 128000 / b, mf * 128 / a, mf * 128 / b }'
  done
done <<<"$ours"
