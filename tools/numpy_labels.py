#!/usr/bin/env python3
"""Generate tests/fixtures/numpy_labels.json: reference label corruptions from numpy.

The Rust crate re-implements the demo's label corruption
(``rethink::data::corrupt::corrupt_labels``) on top of a re-implementation of
numpy's legacy ``RandomState`` stream. This script records what numpy itself
produces so that ``tests/numpy_labels.rs`` can check the Rust code bit for bit.

How to run (from the repository root; only numpy is needed):

    python3 -m venv /tmp/npvenv
    /tmp/npvenv/bin/pip install numpy
    /tmp/npvenv/bin/python tools/numpy_labels.py

Each case corrupts deterministic original labels

    labels = (np.arange(n) * 7 + 3) % num_classes      (as np.uint8)

exactly as the demo does, with seed 12345:

    rng = np.random.RandomState(12345)
    mask = rng.rand(n) <= p
    rnd_labels = rng.choice(num_classes, mask.sum())
    labels[mask] = rnd_labels

and stores the SHA-256 of the corrupted labels (uint8 bytes), the SHA-256 of
the mask (uint8 bytes, 0/1), the mask count and the first 20 corrupted labels.
"""

import hashlib
import json
import os
import sys

import numpy as np

SEED = 12345
FIRST = 20


def original_labels(n: int, num_classes: int) -> np.ndarray:
    """Deterministic original labels: (7 * i + 3) mod num_classes."""
    return ((np.arange(n, dtype=np.int64) * 7 + 3) % num_classes).astype(np.uint8)


def corrupt(n: int, num_classes: int, p: float) -> dict:
    """Run the demo's corruption and summarise the result."""
    labels = original_labels(n, num_classes)
    rng = np.random.RandomState(SEED)
    mask = rng.rand(len(labels)) <= p
    rnd_labels = rng.choice(num_classes, mask.sum())
    labels = np.array(labels)
    labels[mask] = rnd_labels
    assert labels.dtype == np.uint8
    return {
        "n": n,
        "num_classes": num_classes,
        "p": p,
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "mask_sha256": hashlib.sha256(mask.astype(np.uint8).tobytes()).hexdigest(),
        "mask_count": int(mask.sum()),
        "first_labels": [int(x) for x in labels[:FIRST]],
    }


def main() -> None:
    cases = []
    for n in (50000, 10000):
        for p in (0.0, 0.1, 0.5, 1.0):
            cases.append(corrupt(n, 10, p))
    cases.append(corrupt(50000, 100, 0.5))

    out = {
        "generator": "tools/numpy_labels.py",
        "numpy_version": np.__version__,
        "seed": SEED,
        "original_labels": "(7 * i + 3) % num_classes, as uint8",
        "cases": cases,
    }
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "fixtures", "numpy_labels.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # One line per case keeps the file short and diff-friendly.
    header = json.dumps({k: v for k, v in out.items() if k != "cases"}, indent=2)
    body = ",\n".join("    " + json.dumps(c) for c in cases)
    text = header[:-2] + ',\n  "cases": [\n' + body + "\n  ]\n}\n"
    json.loads(text)  # sanity check: still valid JSON
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {len(cases)} cases to {path} (numpy {np.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
