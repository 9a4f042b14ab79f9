"""``metrics.jsonl``: one JSON object per logged step, appended; truncated on resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from blur.io.atomic import write_text_atomic


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def append_metrics(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record (non-finite floats are written as null)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(_clean(record), allow_nan=False) + "\n")


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete records; a torn last line (from a kill mid-write) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text("utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_metrics(
    path: str | os.PathLike[str], max_step: int, *, max_step_by_kind: dict[str, int] | None = None
) -> None:
    """Keep only records with ``step <= max_step`` (used when resuming from a checkpoint).

    ``max_step_by_kind`` sets another bound for the records of some ``kind``.
    """
    bounds = max_step_by_kind or {}
    kept = [r for r in read_metrics(path)
            if r.get("step", -1) <= bounds.get(r.get("kind"), max_step)]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
