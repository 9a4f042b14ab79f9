"""The two rules toy2d meta-training ends in: selected genomes' step-10 scores next to the
genome values that tell them apart (the hidden layer's forward-normalisation shift of state 1,
its forward mixing ``nu``, the output layer's normalisation scale of state 0).

    PYTHONPATH=src .venv/bin/python results/toy2d-shift/two_rules.py runs/A runs/B ...

Each run folder's printed report is read from ``RUN.txt`` or ``RUN.log`` beside it (the
pooled and the ``cross`` rows at step 10).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from blur.io.genome_file import load_genome


def step10(report: str, task: str) -> str:
    m = re.search(rf"^{task}\s+10\s+(\S+)", report, re.M)
    return m.group(1) if m else "?"


def main(run_dirs: list[str]) -> None:
    print("| run | all @10 | cross @10 | fwd_norm_shift[0, 1] | nu[0] | fwd_norm_scale[1, 0] |")
    print("|---|---|---|---|---|---|")
    for d in run_dirs:
        g = load_genome(f"{d}/genome.json")
        stem = d.rstrip("/")
        reports = [Path(stem + ext) for ext in (".txt", ".log") if Path(stem + ext).exists()]
        report = reports[0].read_text() if reports else ""
        nu = np.array2string(np.asarray(g.nu)[0].ravel(), precision=2, suppress_small=True)
        print(f"| {d} | {step10(report, 'all')} | {step10(report, 'cross')} | "
              f"{float(g.fwd_norm_shift[0, 1]):+.2f} | {nu} | {float(g.fwd_norm_scale[1, 0]):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
