"""A mixture of task families: each episode comes from one member, drawn at random."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from blur._pytree import pytree_dataclass, static_field
from blur.tasks.base import Episode, TaskFamily, check_episode_args


@pytree_dataclass
class Mixture:
    """Draws a member family per episode (``lax.switch``), then samples that member.

    All members must have the same ``num_inputs``; ``num_classes`` is the largest member's, so
    a member with fewer classes simply never emits the higher labels.

    Under ``vmap`` over keys the member index is batched, so ``lax.switch`` evaluates every
    member and selects: a meta-batch costs the sum of the members' sampling costs.

    Attributes:
      families: The member families (pytree children, so their arrays are leaves).
      weights: Normalised sampling probabilities (static), uniform when None is passed.
      name: ``mixture(<member names>)`` unless given.
      num_inputs: Shared input width (filled in).
      num_classes: Max of the members' class counts (filled in).
    """

    families: tuple[Any, ...]
    weights: tuple[float, ...] | None = static_field(default=None)
    name: str = static_field(default="")
    num_inputs: int = static_field(default=0)
    num_classes: int = static_field(default=0)

    def __post_init__(self) -> None:
        families = tuple(self.families)
        object.__setattr__(self, "families", families)
        if self.num_inputs:  # rebuilt by jax.tree_util (unflatten): already validated
            return
        if not families:
            raise ValueError("Mixture needs at least one family.")
        for f in families:
            if not isinstance(f, TaskFamily):
                raise ValueError(
                    f"Mixture member {f!r} is not a task family (needs name, num_inputs, "
                    "num_classes and sample)."
                )
        widths = {f.name: f.num_inputs for f in families}
        if len(set(widths.values())) != 1:
            raise ValueError(
                f"Mixture members must share num_inputs, got {widths}; resize the image "
                "families to one resolution (or mix only toy families)."
            )
        weights = self.weights
        if weights is None:
            weights = (1.0,) * len(families)
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(families):
            raise ValueError(f"Mixture got {len(weights)} weights for {len(families)} families.")
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"Mixture weights must be finite, >= 0 and not all 0, got {weights}.")
        total = sum(weights)
        object.__setattr__(self, "weights", tuple(w / total for w in weights))
        object.__setattr__(self, "num_inputs", families[0].num_inputs)
        object.__setattr__(self, "num_classes", max(f.num_classes for f in families))
        if not self.name:
            object.__setattr__(self, "name", f"mixture({','.join(f.name for f in families)})")

    def sample_with_member(
        self,
        key: jax.Array,
        num_steps: int,
        batch_size: int,
        num_query_batches: int = 1,
        query_batch_size: int | None = None,
    ) -> tuple[jax.Array, Episode]:
        """Like :meth:`sample`, but also return the index of the member that was drawn.

        Returns:
          ``(member, episode)``: a scalar int32 index into ``families`` and the episode.
        """
        T, B, Q, Bq = check_episode_args(num_steps, batch_size, num_query_batches, query_batch_size)
        k_member, k_episode = jax.random.split(key)
        if len(self.families) == 1:
            return jnp.int32(0), self.families[0].sample(k_episode, T, B, Q, Bq)
        probs = jnp.asarray(self.weights, jnp.float32)
        member = jax.random.choice(k_member, len(self.families), p=probs).astype(jnp.int32)
        branches = [(lambda k, f=f: f.sample(k, T, B, Q, Bq)) for f in self.families]
        return member, jax.lax.switch(member, branches, k_episode)

    def sample(
        self,
        key: jax.Array,
        num_steps: int,
        batch_size: int,
        num_query_batches: int = 1,
        query_batch_size: int | None = None,
    ) -> Episode:
        """Draw a member, then one task and episode from it (shapes as in ``TaskFamily``)."""
        return self.sample_with_member(
            key, num_steps, batch_size, num_query_batches, query_batch_size
        )[1]


def mixture(families: Sequence[Any], weights: Sequence[float] | None = None) -> Mixture:
    """Functional alias of ``Mixture(tuple(families), weights)``."""
    return Mixture(tuple(families), None if weights is None else tuple(weights))
