#!/usr/bin/env bash
# `rethink sweep --emit-slurm` against a real Slurm: start a single-node cluster, emit the
# job-array script of a small sweep, submit it, wait for the array, check that every point
# finished, then submit it again and check that every task skipped its finished point.
#
# Usage (as root, from the repository root, after `cargo build --release`):
#   bash tests/slurm/sweep_test.sh [path/to/rethink]
set -euo pipefail
cd "$(dirname "$0")/../.."
RETHINK=$(realpath "${1:-target/release/rethink}")
say() { echo "[slurm/sweep_test] $*"; }
fail() { echo "[slurm/sweep_test] FAILED: $*" >&2; exit 1; }

bash tests/slurm/start.sh
trap 'bash tests/slurm/stop.sh >/dev/null 2>&1 || true' EXIT

work=$(mktemp -d /tmp/rethink-slurm.XXXXXX)
cat > "$work/array.toml" <<'EOF'
[base]
data = "mnist"
data_dir = "data/mnist"    # relative to the directory the script was emitted from (its `cd`)
split_test_set = 500
val_size = 300
arch = "mlp"
mlp_bias = true
learning_rate = 0.03
weight_decay = 0.0
epochs = 40
stop_at_train_acc = 100.0

[grid]
label_corrupt_prob = [0.0, 0.5, 1.0]
EOF
out="$work/out"
"$RETHINK" sweep "$work/array.toml" --out "$out" --emit-slurm "$work/array.sbatch" \
    --array-max 2 --sbatch=--cpus-per-task=1 --sbatch=--time=00:10:00
say "emitted $work/array.sbatch:"
sed 's/^/    /' "$work/array.sbatch"

started=$(date +%s)
sbatch --wait "$work/array.sbatch" || fail "the array failed; task logs: $(ls "$out"/slurm/*.out)"
say "array finished in $(( $(date +%s) - started )) s"
for f in "$out"/slurm/*.out; do say "--- $f"; tail -n 2 "$f" | sed 's/^/    /'; done

listing=$("$RETHINK" sweep "$work/array.toml" --out "$out" --list)
echo "$listing"
[ "$(echo "$listing" | tail -n +2 | awk '$2 == "done"' | wc -l)" -eq 3 ] || fail "not every point is done"
[ "$(ls "$out"/slurm/*.out | wc -l)" -eq 3 ] || fail "expected one log per array task"
grep -q "Acc-tr: 100.00" "$out"/mnist_corrupt1_*/LOG.*.txt || fail "the random-label point did not fit"

# Resubmitting skips every finished point.
rm -f "$out"/slurm/*.out
sbatch --wait "$work/array.sbatch" || fail "the resubmitted array failed"
[ "$(grep -l 'is done' "$out"/slurm/*.out | wc -l)" -eq 3 ] || fail "a resubmitted task retrained its point"
say "resubmission: all 3 tasks skipped their finished point"
rm -rf "$work"
say "3 passed, 0 failed"
