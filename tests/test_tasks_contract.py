"""The TaskFamily contract, for every registered family: ``sample`` runs under ``jax.jit`` of
``jax.vmap`` over keys and returns float32 inputs [.., n_in] and int32 labels in
[0, num_classes), with the documented shapes (blur.tasks.base). (That a vmapped episode equals
the lone one with the same key is checked for the toy families in test_tasks_toy2d.py; here
one compilation per family keeps the test affordable.)

Image families run on the real data where it is imported and are skipped with the fetch
command otherwise; ``digits`` is bundled with scikit-learn, so its families always run.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blur.data import DataNotFoundError
from blur.tasks import TaskFamily, list_families
from blur.tasks import get_family as build

# Options that keep a family small or point it at data the test machine may have.
OPTIONS: dict[str, dict[str, Any]] = {
    "omniglot": {"subsets": ("background_small1",), "num_ways": 5},
}
T, B, Q, BQ = 3, 8, 2, 5  # support steps, support batch, query batches, query batch
NUM_KEYS = 4


def make(name: str) -> TaskFamily:
    try:
        return build(name, **OPTIONS.get(name, {}))
    except DataNotFoundError as e:
        pytest.skip(str(e))  # the message names the data root and the fetch command


def check_batch(x: jax.Array, y: jax.Array, lead: tuple[int, ...], fam: TaskFamily) -> None:
    assert x.shape == (*lead, fam.num_inputs), (x.shape, lead)
    assert y.shape == lead
    assert x.dtype == jnp.float32 and y.dtype == jnp.int32
    x, y = np.asarray(x), np.asarray(y)
    assert np.isfinite(x).all()
    assert y.min() >= 0 and y.max() < fam.num_classes


def sample_one(fam: TaskFamily, key: jax.Array) -> Any:
    return fam.sample(key, T, B, Q, BQ)


@jax.jit
def sample_many(fam: TaskFamily, keys: jax.Array) -> Any:
    """``vmap`` of ``sample`` over ``keys`` under ``jit``: one compilation per family. The
    family is an argument (a pytree), not a closure: closed-over image arrays would be
    compiled in as constants."""
    return jax.vmap(sample_one, in_axes=(None, 0))(fam, keys)


@pytest.mark.parametrize("name", list_families())
def test_family_contract(name):
    fam = make(name)
    assert isinstance(fam, TaskFamily)
    assert isinstance(fam.name, str) and fam.name
    assert fam.num_inputs >= 1 and fam.num_classes >= 2

    keys = jax.random.split(jax.random.key(1), NUM_KEYS)
    many = sample_many(fam, keys)
    check_batch(many.support.x, many.support.y, (NUM_KEYS, T, B), fam)
    check_batch(many.query.x, many.query.y, (NUM_KEYS, Q, BQ), fam)
    # Different keys give different episodes.
    assert not np.array_equal(np.asarray(many.support.x[0]), np.asarray(many.support.x[1]))
