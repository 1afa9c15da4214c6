#!/usr/bin/env python3
"""scipy side of bench/kernel_vs_scipy.sh: the demo README's recipe, timed, on MNIST-format data.

Reads the first --train-size training and --test-size test images of an MNIST IDX directory,
scales pixels by 1/255, builds K = exp(-bw * ||x - y||^2) with scipy.spatial.distance (exact
pairwise differences, as the README), solves K c = Y with scipy.linalg.solve(K, Y,
assume_a='pos') (overwrite_a=True, so that K is not copied; same LAPACK potrf/potrs), predicts
argmax(K_test c) and writes the timings, the test error and the predictions as JSON.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import scipy
import scipy.linalg
import scipy.spatial

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from kernel_reference import find, read_idx  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--train-size", type=int, required=True)
    ap.add_argument("--test-size", type=int, required=True)
    ap.add_argument("--bandwidth", type=float, default=0.02)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    t0 = time.time()
    x_tr = read_idx(find(args.data_dir, "train-images-idx3-ubyte"))[: args.train_size]
    y_tr = read_idx(find(args.data_dir, "train-labels-idx1-ubyte"))[: args.train_size].astype(int)
    x_tt = read_idx(find(args.data_dir, "t10k-images-idx3-ubyte"))[: args.test_size]
    l_tt = read_idx(find(args.data_dir, "t10k-labels-idx1-ubyte"))[: args.test_size].astype(int)
    x_tr = np.array(x_tr.reshape(len(x_tr), -1), dtype=float) / 255
    x_tt = np.array(x_tt.reshape(len(x_tt), -1), dtype=float) / 255
    onehot = np.eye(10)[y_tr]
    t1 = time.time()
    K = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x_tr, "sqeuclidean"))
    np.multiply(K, -args.bandwidth, out=K)
    np.exp(K, out=K)
    t2 = time.time()
    coeff = scipy.linalg.solve(K, onehot, assume_a="pos", overwrite_a=True)
    t3 = time.time()
    del K
    K_tt = np.exp(-args.bandwidth * scipy.spatial.distance.cdist(x_tt, x_tr, "sqeuclidean"))
    preds = np.argmax(K_tt @ coeff, axis=1)
    t4 = time.time()
    n = args.train_size
    result = {
        "n_train": n,
        "n_test": args.test_size,
        "load": t1 - t0,
        "kernel": t2 - t1,
        "solve": t3 - t2,
        "predict": t4 - t3,
        "total": t4 - t0,
        "solve_gflops": n**3 / 3 / (t3 - t2) / 1e9,
        "test_error_percent": 100.0 * float(np.mean(preds != l_tt)),
        "predictions": "".join(str(int(p)) for p in preds),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "default"),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("scipy n=%d: kernel %.1fs, solve %.1fs (%.0f GFLOP/s), err = %.2f%%"
          % (n, result["kernel"], result["solve"], result["solve_gflops"], result["test_error_percent"]))


if __name__ == "__main__":
    main()
