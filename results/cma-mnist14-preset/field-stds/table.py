"""The field-stds comparison table (markdown) from the collected run folders' files.

    python3 results/cma-mnist14-preset/field-stds/table.py
"""
import json
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
RUNS = [  # (label, seed, folder)
    ("preset before (sigma0 everywhere)", 0, ROOT),
    ("preset before (sigma0 everywhere)", 1, ROOT / "seed1"),
    ("mu x0.5, f_tilde x0.5", 0, HERE / "mu0.5-ftilde0.5-seed0"),
    ("mu x0.5, f_tilde x0.5", 1, HERE / "mu0.5-ftilde0.5-seed1"),
    ("mu x0.5, f_tilde x0.5", 2, HERE / "mu0.5-ftilde0.5-seed2"),
    ("mu x0.33, f_tilde x0.33, eta_tilde x0.67 (now the preset)", 0, HERE / "preset-seed0"),
    ("mu x0.33, f_tilde x0.33, eta_tilde x0.67 (now the preset)", 1, HERE / "preset-seed1"),
    ("mu x0.33, f_tilde x0.33, eta_tilde x0.67 (now the preset)", 2, HERE / "preset-seed2"),
]


def validation(folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in open(folder / "metrics.jsonl")]
    return {r["step"]: 100 * r["meta_val_accuracy"][0] for r in rows
            if r.get("kind") == "validation"}


print("| start steps | seed | validation at generation 50 / 100 (selected) | whole test file: "
      "step 10 / 15 / 25 / 50 / 75 | min over steps 15-75 | BLUR − SGD at step 15 (95 % CI) |")
print("|---|---|---|---|---|---|")
for label, seed, folder in RUNS:
    if not (folder / "eval_fulltest.json").exists():
        continue
    val = validation(folder)
    picked = json.loads((folder / "genome.json").read_text())["metadata"]
    ev = json.loads((folder / "eval_fulltest.json").read_text())
    by_step = {r["step"]: r for r in ev["rows"]}
    curve = " / ".join(f"{100 * by_step[s]['BLUR']['mean']:.2f}" for s in (10, 15, 25, 50, 75))
    low = min(100 * by_step[s]["BLUR"]["mean"] for s in (15, 25, 50, 75))
    d = by_step[15]["BLUR-sgd"]
    print(f"| {label} | {seed} | {val.get(50, float('nan')):.1f} / {val[100]:.1f} "
          f"({100 * picked['meta_val_accuracy']:.1f} at {picked['step']}) | {curve} | {low:.2f} | "
          f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] |")
