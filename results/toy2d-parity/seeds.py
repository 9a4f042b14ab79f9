import json
import sys

import numpy as np

runs = sys.argv[1:]
rows = []
for r in runs:
    e = json.load(open(f"runs/{r}/eval.json"))
    b = np.mean([x["blur"] for x in e["results"]], 0)
    s = np.mean([x["sgd"]["curve"] for x in e["results"]], 0)
    rows.append((r, b, s))
    print(f"| {r} | " + " / ".join(f"{100*b[t]:.1f}" for t in (10, 25, 50)) + " | " + " / ".join(f"{100*s[t]:.1f}" for t in (10, 25, 50)) + " | " + " / ".join(f"{100*(b[t]-s[t]):+.1f}" for t in (10,25,50)) + " |")
B = np.array([r[1] for r in rows]); S = np.array([r[2] for r in rows])
for name, A in (("BLUR", B), ("SGD", S), ("BLUR-SGD", B - S)):
    print(f"| {name} mean (min..max) over seeds | " + " / ".join(f"{100*A[:, t].mean():.1f} ({100*A[:, t].min():.1f}..{100*A[:, t].max():.1f})" for t in (10, 25, 50)) + " |")
print("step-10 spread (max-min):", f"{100*(B[:,10].max()-B[:,10].min()):.1f}")
