"""Shard a population across devices: the leading axis of a stacked pytree.

A population is any pytree whose leaves share a leading axis P: the R gradient runs of
:class:`blur.outer.gradient.GradientState` (genomes, Adam state, skip counters: [R, ...]) or
the CMA-ES population [P, D] of :func:`blur.outer.evolution.score_population`. The jitted
``meta_step`` and ``score_population`` take such inputs unchanged: XLA partitions their
``vmap`` along the sharded axis (GSPMD propagation), so each device computes P / N members and
the outputs come back sharded the same way. Only the inputs' placement changes.

Usage (one host, N local devices; ``devices=None`` means all of them)::

    from blur.outer import sharding
    state = sharding.shard_population(gradient.init(genomes, opt), devices=4)
    state, metrics = gradient.meta_step(state, key, spec=..., family=..., cfg=..., optimizer=...)
    # state.genomes.nu.sharding is NamedSharding(mesh, PartitionSpec('population'))

    X, P = sharding.pad_population(es.ask().astype(np.float32), sharding.device_count(4))
    aux = score_population(sharding.shard_population(X, devices=4), key, ...)
    fitness = fitness_from_aux(aux, "accuracy")[:P]   # drop the padding

A population that does not divide by the device count raises ``ValueError`` in
:func:`shard_population`; :func:`pad_population` repeats the last member to the next multiple
(pad members are scored and discarded; for gradient runs prefer ``num_runs`` divisible by N).

On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before JAX starts) gives
N host devices, which is how the tests check that sharded and unsharded results agree.

Multi-host (several machines, or several processes on one), in the library: each process
calls :func:`initialize_distributed` (``jax.distributed.initialize``) before any other JAX
call; ``jax.devices()`` then lists every process's devices, the mesh spans all of them, and
:func:`shard_population` builds each global array from the host copy that every process holds
(same seed, same ask()), giving each process only its own shards. ``tests/test_sharding.py``
runs two CPU processes on one machine this way, with::

    BLUR_COORDINATOR=127.0.0.1:12355 BLUR_NUM_PROCESSES=2 BLUR_PROCESS_ID=0|1

(on a cluster with SLURM or another environment ``jax.distributed.initialize()`` detects, call
it without arguments). Results are global arrays; ``numpy.asarray`` on one needs every shard on
this process, so gather with :func:`gather` first, and let process 0 alone write files
(:func:`is_primary`).

The CLI is the same on one process and on many: ``blur`` calls :func:`initialize_distributed`
first, so with the three variables set on every process, ``blur meta-train`` / ``blur evolve``
split the population over every process's devices. The run loop gathers each step's results
(:func:`multi_process`: the trainers keep their state on the host between steps, so
validation, selection and checkpoints see whole arrays), and only process 0 writes the run
folder and prints; the others compute their shards and the same validation. Resuming needs
the run folder on a filesystem every process sees.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "population"
"""Name of the mesh axis the population is split over."""

Tree = TypeVar("Tree")


def device_count(devices: int | None = None) -> int:
    """The number of devices to use: ``devices``, or all (``jax.device_count()``) if None.

    Raises ``ValueError`` naming the available count if ``devices`` is not in 1..available.
    """
    available = jax.device_count()
    if devices is None:
        return available
    if not isinstance(devices, int) or not 1 <= devices <= available:
        raise ValueError(
            f"devices={devices!r}: this process sees {available} device(s) "
            f"({jax.default_backend()}); choose 1..{available}, or None for all. On CPU, "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N gives N host devices."
        )
    return devices


def population_mesh(devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis ``'population'`` over the first ``devices`` devices (all if None)."""
    n = device_count(devices)
    return Mesh(np.asarray(jax.devices()[:n]), (AXIS,))


def population_sharding(devices: int | None = None) -> NamedSharding:
    """Leading axis split over the population mesh, every other axis whole."""
    return NamedSharding(population_mesh(devices), PartitionSpec(AXIS))


def replicated_sharding(devices: int | None = None) -> NamedSharding:
    """A whole copy on every device of the population mesh."""
    return NamedSharding(population_mesh(devices), PartitionSpec())


def _leading(tree: Any) -> int:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("the population pytree has no array leaves")
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"every leaf of a population needs the same leading (population) axis; got "
            f"leading sizes {sorted(map(str, sizes))}"
        )
    return int(sizes.pop())


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    """A global array with ``sharding`` from a value every process holds whole."""
    if jax.process_count() == 1 or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_population(tree: Tree, devices: int | None = None) -> Tree:
    """Place every leaf of ``tree`` with its leading axis P split over ``devices`` devices.

    Args:
      tree: a pytree whose leaves all have the same leading axis P (a population).
      devices: how many devices (None: all).

    Returns:
      the same tree of global ``jax.Array``s with ``NamedSharding(mesh, P('population'))``.

    Raises:
      ValueError: if P does not divide by the device count (the message gives the fixes).
    """
    n = device_count(devices)
    P = _leading(tree)
    if P % n:
        raise ValueError(
            f"a population of {P} does not split evenly over {n} devices: use a population "
            f"divisible by {n} (e.g. {-(-P // n) * n}), choose devices that divide {P}, or "
            "pad it with blur.outer.sharding.pad_population and drop the padded results"
        )
    sharding = population_sharding(n)
    return jax.tree_util.tree_map(lambda x: _place(x, sharding), tree)


def replicate(tree: Tree, devices: int | None = None) -> Tree:
    """Place every leaf of ``tree`` whole on each device of the population mesh (e.g. a key,
    or a task family's data, when passed next to a sharded population)."""
    sharding = replicated_sharding(devices)
    return jax.tree_util.tree_map(lambda x: _place(x, sharding), tree)


def pad_population(tree: Tree, multiple: int) -> tuple[Tree, int]:
    """Pad the leading axis to a multiple of ``multiple`` by repeating the last member.

    Returns:
      (padded tree, the original P); keep ``[:P]`` of every per-member result.
    """
    if multiple < 1:
        raise ValueError(f"multiple={multiple} must be >= 1")
    P = _leading(tree)
    extra = -P % multiple
    if not extra:
        return tree, P

    def pad(x: Any) -> Any:
        x = np.asarray(x)
        return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, tree), P


def gather(tree: Tree) -> Tree:
    """Every leaf as a whole NumPy array on this process (all shards, from every process)."""

    def whole(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(whole, tree)


def initialize_distributed() -> bool:
    """Join a multi-process run if ``BLUR_COORDINATOR`` is set; returns whether it did.

    Reads ``BLUR_COORDINATOR`` (host:port of process 0), ``BLUR_NUM_PROCESSES`` and
    ``BLUR_PROCESS_ID`` and calls ``jax.distributed.initialize`` with them (on CPU with the
    gloo collectives). Must run before any other JAX call in the process. Without
    ``BLUR_COORDINATOR`` it does nothing, so single-process runs are unchanged.
    """
    address = os.environ.get("BLUR_COORDINATOR")
    if not address:
        return False
    try:
        num = int(os.environ["BLUR_NUM_PROCESSES"])
        pid = int(os.environ["BLUR_PROCESS_ID"])
    except (KeyError, ValueError):
        raise ValueError(
            "BLUR_COORDINATOR is set, so BLUR_NUM_PROCESSES and BLUR_PROCESS_ID must be set "
            "to integers too (the number of processes, and this one's index from 0)"
        ) from None
    # CPU devices of different processes talk through gloo (no effect on accelerators).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=address, num_processes=num, process_id=pid)
    return True


def multi_process() -> bool:
    """Whether this run spans several processes (``jax.distributed``)."""
    return jax.process_count() > 1


def is_primary() -> bool:
    """Whether this process writes files and prints: process 0, or the only one."""
    return jax.process_index() == 0
