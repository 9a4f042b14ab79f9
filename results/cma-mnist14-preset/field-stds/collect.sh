#!/usr/bin/env bash
# Copy a finished `blur evolve` run folder's records into results/ (usage: collect.sh RUN_DIR DEST)
set -euo pipefail
run=$1; dest=$2
mkdir -p "$dest"
cp "$run"/{config.json,metrics.jsonl,genome.json,eval.md,eval.json} "$dest"/
if [[ -f "$run/eval_fulltest.json" ]]; then
  cp "$run/eval_fulltest.json" "$dest"/
  grep -A8 '^task' "$run/eval_fulltest.log" > "$dest/eval_fulltest.txt"
fi
python3 - "$run/metrics.jsonl" > "$dest/validation.txt" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("generation  validation of the CMA mean (%)")
for r in rows:
    if r.get("kind") == "validation":
        print(f"{r['step']:>10}  {100 * r['meta_val_accuracy'][0]:.1f}")
PY
