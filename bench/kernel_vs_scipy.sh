#!/usr/bin/env bash
# `rethink kernel` against scipy on the same points, side by side, for n = 5k, 10k, 20k:
# time of each phase and GFLOP/s of the factorization (n³/3 flops), test error, and how many
# test predictions differ from scipy's.
#
# scipy runs the demo README's recipe (pdist, exp, scipy.linalg.solve(K, Y, assume_a='pos'),
# bench/kernel_scipy.py); rethink runs once with --precision f64 (an f64 tiled Cholesky, as
# LAPACK) and once with the default f32-refined. The points: MNIST-like digits made from the
# real MNIST test digits (examples/mnist_like.rs: 60,000 distortions of the first 8,000, the
# last 2,000 real digits as the test set), because the repository ships only the test split (data/mnist).
#
# Usage: bench/kernel_vs_scipy.sh            (SIZES="5000 10000" bench/... for fewer)
# Needs: python3 (a venv with numpy and scipy is made in bench/.venv if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

MNIST=${MNIST:-data/mnist}
DATA=${DATA:-bench/data/mnist60k}
SIZES=${SIZES:-"5000 10000 20000"}
TEST=${TEST:-2000}
OUT=${OUT:-bench/out}
PY=${PY:-bench/.venv/bin/python}

if [ ! -x "$PY" ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet numpy scipy
fi
cargo build --release --quiet --bin rethink --example mnist_like
if [ ! -f "$DATA/train-images-idx3-ubyte" ]; then
    target/release/examples/mnist_like --from "$MNIST" --out "$DATA"
fi
mkdir -p "$OUT"

for n in $SIZES; do
    # OpenBLAS's multithreaded AVX-512 dpotrf segfaults on this 2-core machine from n ≈ 16,000 on
    # (OpenBLAS issues #2562, #1413 describe the same class of crash); its AVX2 ("Haswell")
    # kernels do not. Retry with those, and say so in the table.
    if ! "$PY" bench/kernel_scipy.py --data-dir "$DATA" --train-size "$n" --test-size "$TEST" --out "$OUT/scipy-$n.json"; then
        echo "scipy n=$n crashed with OpenBLAS's default kernels; again with OPENBLAS_CORETYPE=Haswell"
        OPENBLAS_CORETYPE=Haswell "$PY" bench/kernel_scipy.py --data-dir "$DATA" --train-size "$n" --test-size "$TEST" --out "$OUT/scipy-$n.json"
    fi
    for p in f64 f32; do
        precision=$([ "$p" = f64 ] && echo f64 || echo f32-refined)
        target/release/rethink kernel --data mnist --data-dir "$DATA" --train-size "$n" --test-size "$TEST" \
            --precision "$precision" --no-progress --out "$OUT/$p-$n" | grep -E "^(factor|err)" | sed "s/^/rethink $precision n=$n: /"
    done
done

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/kernel_table.py "$OUT" $SIZES
