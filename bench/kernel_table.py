#!/usr/bin/env python3
"""Prints the side-by-side table of bench/kernel_vs_scipy.sh from its JSON files.

Usage: kernel_table.py OUT_DIR N [N ...]; OUT_DIR holds scipy-N.json (bench/kernel_scipy.py)
and f64-N/result.json, f32-N/result.json (`rethink kernel --out`).
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    out, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
    head = ("| n | scipy kernel | scipy solve | scipy GFLOP/s | scipy total | rethink f64 kernel | f64 factor "
            "| f64 GFLOP/s | f64 total | rethink f32-refined kernel | f32 factor | f32 GFLOP/s | refinement "
            "| f32-refined total | test error scipy / f64 / f32-refined | predictions ≠ scipy |")
    print(head)
    print("|" + "|".join(["---"] * (head.count("|") - 1)) + "|")
    footnote = False
    for n in sizes:
        s = load(os.path.join(out, f"scipy-{n}.json"))
        runs = {p: load(os.path.join(out, f"{p}-{n}", "result.json")) for p in ("f64", "f32")}
        preds = {}
        for p in runs:
            path = os.path.join(out, f"{p}-{n}", "predictions.txt")
            # One class index per line; scipy's JSON holds the (single-digit, MNIST) classes as one string.
            preds[p] = [int(line) for line in open(path).read().split()] if os.path.exists(path) else None
        diff = []
        for p in ("f64", "f32"):
            if preds[p] is None:
                diff.append("?")
            else:
                diff.append(str(sum(a != int(b) for a, b in zip(preds[p], s["predictions"]))))
        f64, f32 = runs["f64"], runs["f32"]
        steps = len(f32["refinement"])
        mark = "" if s.get("openblas_coretype", "default") == "default" else " ¹"
        footnote = footnote or bool(mark)
        print(
            f"| {n:,} | {s['kernel']:.1f} s | {s['solve']:.1f} s{mark} | {s['solve_gflops']:.0f}{mark} | {s['total']:.1f} s "
            f"| {f64['times']['kernel']:.1f} s | {f64['times']['factor']:.1f} s | {f64['factor_gflops']:.0f} "
            f"| {f64['times']['total']:.1f} s "
            f"| {f32['times']['kernel']:.1f} s | {f32['times']['factor']:.1f} s | {f32['factor_gflops']:.0f} "
            f"| {f32['times']['refine']:.1f} s ({steps} products) | {f32['times']['total']:.1f} s "
            f"| {s['test_error_percent']:.2f}% / {f64['test_error_percent']:.2f}% / {f32['test_error_percent']:.2f}% "
            f"| {diff[0]} / {diff[1]} |"
        )
    if footnote:
        print()
        print("¹ OpenBLAS with OPENBLAS_CORETYPE=Haswell (AVX2): its default AVX-512 dpotrf segfaults at this size here.")


if __name__ == "__main__":
    main()
