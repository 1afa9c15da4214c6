#!/usr/bin/env python3
"""scipy reference of `rethink kernel` on the real MNIST test digits (the README's recipe).

The shared data hold only MNIST's 10,000 test digits (t10k-*), so this takes the first
--train of them as training points and the last --test as test points, scales pixels by
1/255, one-hot encodes the labels, builds the Gaussian kernel exp(-bw * ||x - y||^2) with
scipy.spatial.distance (exact pairwise differences, as the demo's README), solves
K c = Y with scipy.linalg.solve(K, Y, assume_a='pos') and predicts argmax(K_test c).

It writes a small JSON fixture (the test error and the 2,000 predicted digits as one string)
that tests/kernel.rs compares with what `rethink kernel` computes for real.

Usage: bench/.venv/bin/python tools/kernel_reference.py \
         --mnist-dir data/mnist --out tests/fixtures/kernel_mnist_8k.json
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import scipy
import scipy.linalg
import scipy.spatial


def read_idx(path):
    """Reads an IDX file (raw or gzipped) into a numpy uint8 array of its header's shape."""
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(dir_, name):
    for cand in (name, name + ".gz"):
        p = os.path.join(dir_, cand)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{os.path.join(dir_, name)}(.gz): file not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist-dir", default="data/mnist")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--bandwidth", type=float, default=0.02)
    ap.add_argument("--out", default="tests/fixtures/kernel_mnist_8k.json")
    args = ap.parse_args()

    images = read_idx(find(args.mnist_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(args.mnist_dir, "t10k-labels-idx1-ubyte")).astype(int)
    n = images.shape[0]
    if args.train + args.test > n:
        raise SystemExit(f"--train {args.train} + --test {args.test} exceeds the {n} test digits")
    data = np.array(images.reshape(n, -1), dtype=float) / 255
    onehot = np.eye(10)[labels]

    x_tr, y_tr = data[: args.train], onehot[: args.train]
    x_tt, l_tt = data[n - args.test:], labels[n - args.test:]

    t0 = time.time()
    pdist_tr = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x_tr, "sqeuclidean"))
    cdist_tt = scipy.spatial.distance.cdist(x_tt, x_tr, "sqeuclidean")
    t1 = time.time()
    coeff = scipy.linalg.solve(np.exp(-args.bandwidth * pdist_tr), y_tr, assume_a="pos")
    t2 = time.time()
    preds = np.argmax(np.dot(np.exp(-args.bandwidth * cdist_tt), coeff), axis=1)
    mistakes = int(np.sum(preds != l_tt))
    err = 100.0 * mistakes / args.test
    print("err = %.2f%%  (distances %.1fs, solve %.1fs)" % (err, t1 - t0, t2 - t1))

    fixture = {
        "source": "tools/kernel_reference.py (scipy.linalg.solve(K, Y, assume_a='pos'))",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "data": "MNIST t10k: first n_train digits train, last n_test digits test, pixels / 255",
        "n_train": args.train,
        "n_test": args.test,
        "bandwidth": args.bandwidth,
        "test_mistakes": mistakes,
        "test_error_percent": err,
        "predictions": "".join(str(int(p)) for p in preds),
    }
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
