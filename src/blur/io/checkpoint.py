"""Checkpoints: a pytree's leaves in ``.npz`` plus a JSON sidecar, written atomically.

Loading is against a template pytree of the same structure (like equinox's
``tree_deserialise_leaves``): the leaf count, shapes and dtypes must match and every float must
be finite, otherwise a ``CheckpointError`` names the file and the problem. Nothing is unpickled
(``allow_pickle=False``).

The metadata is also stored inside the ``.npz`` (entry ``meta_json``), and that copy is the one
loaded: arrays and metadata are then replaced by one atomic write, so a kill between the two
file writes cannot pair new arrays with an old step. The sidecar is a readable copy.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from blur.io.atomic import write_bytes_atomic, write_text_atomic

CHECKPOINT_VERSION = 1
_META = "meta_json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, non-finite or does not match the run."""


def save_checkpoint(path: str | os.PathLike[str], tree: Any, meta: dict[str, Any]) -> None:
    """Write ``tree``'s leaves and ``meta`` to ``path`` (.npz), and ``meta`` to ``path.json``.

    One atomic write replaces arrays and metadata together, so a crash leaves either the
    previous complete checkpoint or the new one; the sidecar (a copy) follows.
    """
    path = Path(path)
    leaves = jax.tree_util.tree_leaves(tree)
    sidecar = {"version": CHECKPOINT_VERSION, "num_leaves": len(leaves), **meta}
    text = json.dumps(sidecar, indent=1, allow_nan=False)  # fails before anything is written
    arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays[_META] = np.frombuffer(text.encode("utf-8"), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
    write_text_atomic(str(path) + ".json", text)


def _check_meta(meta: Any, where: str) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{where}: not a blur checkpoint of version {CHECKPOINT_VERSION}")
    return meta


def _read_npz(path: Path) -> tuple[list[np.ndarray], dict[str, Any] | None]:
    """The leaves and the embedded metadata (None if absent) of a checkpoint file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            n = sum(name.startswith("leaf_") for name in data.files)
            arrays = [data[f"leaf_{i:05d}"] for i in range(n)]
            meta = None
            if _META in data.files:
                meta = json.loads(data[_META].tobytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint ({e})") from None
    return arrays, None if meta is None else _check_meta(meta, str(path))


def load_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's metadata: the copy inside the ``.npz``, else the JSON sidecar."""
    if Path(path).exists():
        meta = _read_npz(Path(path))[1]
        if meta is not None:
            return meta
    side = Path(str(path) + ".json")
    try:
        meta = json.loads(side.read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{side}: checkpoint sidecar not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{side}: corrupt checkpoint sidecar ({e})") from None
    return _check_meta(meta, str(side))


def load_checkpoint(path: str | os.PathLike[str], like: Any) -> tuple[Any, dict[str, Any]]:
    """Load leaves into the structure of ``like``; return (tree, meta).

    Raises:
      CheckpointError: missing or corrupt files, wrong leaf count, shape or dtype, or
        non-finite floats.
    """
    path = Path(path)
    leaves_like, treedef = jax.tree_util.tree_flatten(like)
    arrays, meta = _read_npz(path)
    if meta is None:  # written before the metadata was embedded
        meta = load_meta(path)
    if len(arrays) != len(leaves_like) or meta.get("num_leaves") != len(arrays):
        raise CheckpointError(
            f"{path}: holds {len(arrays)} arrays but this run needs {len(leaves_like)}; "
            "was it written by a run with another configuration?"
        )
    out = []
    for i, (a, ref) in enumerate(zip(arrays, leaves_like, strict=True)):
        ref = np.asarray(ref)
        if a.shape != ref.shape or a.dtype != ref.dtype:
            raise CheckpointError(
                f"{path}: array {i} has shape {a.shape} {a.dtype}, expected {ref.shape} "
                f"{ref.dtype}; the checkpoint does not match this run's configuration"
            )
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise CheckpointError(f"{path}: array {i} holds non-finite values; refusing it")
        out.append(a)
    return jax.tree_util.tree_unflatten(treedef, out), meta
