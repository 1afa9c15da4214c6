#!/usr/bin/env bash
# rethink on a GPU against PyTorch + cuDNN on the same NVIDIA GPU: a WRN-28-1 (and MLP-512)
# train step, batch 128, CIFAR-shaped synthetic data; then the CPU-vs-GPU equality check.
#
# Runs on the GPU machine with no network and no Rust toolchain. Build elsewhere and carry:
#   cargo build --release --features wgpu,fusion-autotune   # (or vulkan,…) on the build machine;
#   fusion-autotune: burn's kernel fusion and autotuning, what a real GPU should run
#   carry: target/release/rethink, bench/, data/mnist/, and libvulkan.so.1 if the GPU machine
#   lacks a Vulkan loader (NVIDIA's driver ships the ICD, /usr/share/vulkan/icd.d/nvidia_icd.json)
# Usage: [RETHINK=path] [DEVICE=wgpu|vulkan] [STEPS=50] [PYTHON=python3] [VULKAN_LIB_DIR=dir] \
#        bench/vs_pytorch_gpu.sh
# Needs: nvidia-smi, python3 with torch (CUDA build). Prints a markdown table; exits non-zero if
# the GPU's numbers differ from the CPU's.
set -euo pipefail
cd "$(dirname "$0")/.."
rethink="${RETHINK:-target/release/rethink}"
device="${DEVICE:-wgpu}"
steps="${STEPS:-50}"
python="${PYTHON:-python3}"
[ -n "${VULKAN_LIB_DIR:-}" ] && export LD_LIBRARY_PATH="$VULKAN_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
die() { echo "vs_pytorch_gpu.sh: $*" >&2; exit 1; }
[ -x "$rethink" ] || die "no rethink binary at $rethink (set RETHINK=...)"
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this benchmark needs an NVIDIA GPU"
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
  || die "$python has no torch with CUDA"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
echo "rethink devices:"; "$rethink" devices | sed 's/^/  /'
echo "torch $("$python" -c 'import torch; print(torch.__version__, "cuDNN", torch.backends.cudnn.version())')"

# rethink: two epochs of STEPS steps on synthetic CIFAR-shaped data; the second epoch's seconds
# (kernels compiled, autotuned and cached by then) over its steps. The epoch also evaluates 128
# test images, which the per-step time includes (under 1% of an epoch).
rethink_ms() { # arch extra-flags...
  local arch=$1; shift
  "$rethink" train --device "$device" --data synthetic --synthetic-train $((steps * 128)) --synthetic-test 128 \
    --batch-size 128 --arch "$arch" --no-eval-full-trainset --epochs 2 --no-progress --out "$tmp/$arch" "$@" >/dev/null
  awk -F, -v steps="$steps" 'NR == 3 { printf "%.2f", $7 * 1000 / steps }' "$tmp/$arch"/*/metrics.csv
}
wrn=$(rethink_ms wide-resnet --wrn-depth 28 --wrn-widen-factor 1)
mlp=$(rethink_ms mlp --mlp-spec 512)
read -r torch_wrn torch_mlp < <("$python" bench/torch_step.py --device cuda --steps "$steps" \
  | awk -F, '/^WRN/ { w = $2 } /^MLP/ { m = $2 } END { print w, m }')
echo
echo "| model | rethink ($device) ms/step | PyTorch ms/step | rethink img/s | PyTorch img/s | ratio (rethink/PyTorch) |"
echo "|---|---:|---:|---:|---:|---:|"
for row in "WRN-28-1 $wrn $torch_wrn" "MLP-512 $mlp $torch_mlp"; do
  set -- $row
  awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "| %s | %.2f | %.2f | %.0f | %.0f | %.2f |\n", n, a, b, 128000 / a, 128000 / b, a / b }'
done

# Equality: the same runs on --device cpu and on the GPU, every epoch's loss (1e-5 relative)
# and accuracy (0.5 points), as tests/gpu.rs checks on lavapipe.
echo
compare() { # name flags...
  local name=$1; shift
  for d in cpu "$device"; do
    "$rethink" train --device "$d" --no-progress --out "$tmp/eq-$name-${d%%:*}" "$@" >/dev/null
  done
  "$python" - "$name" "$tmp/eq-$name-cpu"/*/metrics.csv "$tmp/eq-$name-${device%%:*}"/*/metrics.csv <<'PY'
import csv, sys
name, a, b = sys.argv[1:]
rows = lambda p: list(csv.DictReader(open(p)))
ok = True
for ra, rb in zip(rows(a), rows(b), strict=True):
    for k in ("train_loss", "val_loss"):
        x, y = float(ra[k]), float(rb[k])
        ok &= abs(x - y) <= 1e-5 * max(abs(x), 1e-3)
    for k in ("train_acc", "val_acc"):
        ok &= abs(float(ra[k]) - float(rb[k])) <= 0.5
    print(f"{name} epoch {ra['epoch']}: cpu loss {ra['train_loss']} acc {ra['train_acc']} | gpu loss {rb['train_loss']} acc {rb['train_acc']}")
print(f"{name}: {'equal' if ok else 'DIFFERENT'}")
sys.exit(0 if ok else 1)
PY
}
compare MLP --data mnist --data-dir data/mnist --split-test-set 1000 --train-size 2000 --val-size 500 \
  --arch mlp --mlp-spec 512 --label-corrupt-prob 0.5 --epochs 3
compare WRN --data synthetic --synthetic-train 512 --synthetic-test 128 --arch wide-resnet --wrn-depth 16 \
  --wrn-widen-factor 1 --epochs 2
