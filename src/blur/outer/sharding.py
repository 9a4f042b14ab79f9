"""Shard a population's leading axis (runs, or CMA-ES candidates) over local devices.

Jitted population code (``outer.gradient.meta_step``, ``outer.evolution.score_population``,
``outer.objective.score_genomes``) needs no change: inputs placed with a ``NamedSharding`` over
a 1-D mesh make XLA partition the vmapped axis, and outputs come back sharded the same way.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "population"


def population_mesh(devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``devices`` local devices (None: all of them)."""
    available = jax.local_devices()
    n = len(available) if devices is None else devices
    if not 1 <= n <= len(available):
        raise ValueError(
            f"devices={devices} but this process sees {len(available)} device(s); pass a number "
            f"from 1 to {len(available)} (or none for all)"
        )
    return Mesh(np.asarray(available[:n]), (AXIS,))


def shard_leading_axis(tree: Any, devices: int | None = None, *, strict: bool = True) -> Any:
    """Place every array leaf of ``tree`` with its leading axis split over ``devices``.

    Args:
      tree: a pytree whose array leaves share a leading population axis.
      devices: how many local devices (None: all).
      strict: refuse a leading axis not divisible by the device count; with ``strict=False``
        such a leaf is replicated instead (e.g. a BIPOP small population).

    Raises:
      ValueError: (strict) a leading axis is not divisible by the number of devices; the
        message names the sizes and the fix.
    """
    mesh = population_mesh(devices)
    n = mesh.devices.size
    sharded = NamedSharding(mesh, PartitionSpec(AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(x: Any) -> Any:
        x = jax.numpy.asarray(x)
        if x.ndim == 0:
            return jax.device_put(x, replicated)
        if x.shape[0] % n:
            if not strict:
                return jax.device_put(x, replicated)
            raise ValueError(
                f"a population of {x.shape[0]} cannot be split over {n} devices; use a "
                f"population (runs, or CMA popsize) divisible by {n}, or --devices 1"
            )
        return jax.device_put(x, sharded)

    return jax.tree_util.tree_map(place, tree)
