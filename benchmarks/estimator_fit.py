"""Wall time of ``BlurClassifier.fit`` on 10,000 MNIST training images for 50 steps.

Run: ``PYTHONPATH=src python benchmarks/estimator_fit.py [--genome mnist-k4] [--repeats 3]``.
Prints the first fit (including jit compilation) and the following fits of fresh estimators
(compiled loop reused), plus the test accuracy of the last one on the 10,000 test images.
Timings on a shared machine vary with its load: report them with that caveat.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--genome", default="mnist-k4")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from blur import BlurClassifier
    from blur.data import load_dataset

    data = load_dataset("mnist")
    x, y = data.split("train")
    xt, yt = data.split("test")
    x = np.asarray(x[: args.samples], np.float32).reshape(args.samples, -1) / 255.0
    y = y[: args.samples]
    xt = np.asarray(xt, np.float32).reshape(len(xt), -1) / 255.0
    print(f"{os.cpu_count()} CPU cores; X {x.shape}, {args.steps} steps, genome {args.genome}")
    for i in range(args.repeats):
        clf = BlurClassifier(args.genome, steps=args.steps, seed=i)
        t = time.perf_counter()
        clf.fit(x, y)
        took = time.perf_counter() - t
        label = "first fit (with compilation)" if i == 0 else "fit (compiled)"
        print(f"{label}: {took:.2f} s", flush=True)
    t = time.perf_counter()
    acc = clf.score(xt, yt)
    print(f"score on {len(xt)} test images: {acc:.4f} ({time.perf_counter() - t:.2f} s)")


if __name__ == "__main__":
    main()
