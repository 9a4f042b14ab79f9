"""Genome files: JSON with a schema version, written atomically, loaded strictly (no pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from blur.genome import Genome, GenomeFormatError, genome_from_dict, genome_to_dict
from blur.io.atomic import write_text_atomic


def save_genome(genome: Genome, path: str | os.PathLike[str], **metadata: object) -> None:
    """Write ``genome`` as JSON (schema ``blur.genome`` v1) with optional metadata."""
    data = genome_to_dict(genome)
    if metadata:
        data["metadata"] = metadata
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def load_genome(path: str | os.PathLike[str]) -> Genome:
    """Read and validate a genome file.

    Raises:
      GenomeFormatError: the file is missing, not JSON, or fails validation (shapes, dtypes,
        finiteness); the message names the file and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise GenomeFormatError(f"{path}: no such genome file") from None
    except UnicodeDecodeError:
        raise GenomeFormatError(f"{path}: not a UTF-8 JSON genome file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenomeFormatError(
            f"{path}: corrupt genome file, invalid JSON at line {e.lineno} column {e.colno} "
            f"({e.msg}); re-export it with `blur` or restore it from the run's checkpoint"
        ) from None
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "metadata"}
    return genome_from_dict(data, source=str(path))
