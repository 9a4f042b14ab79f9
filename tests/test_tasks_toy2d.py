"""2-D toy families: shapes, dtypes, label balance, label conventions, determinism, jit/vmap."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blur.tasks import (
    TOY2D_KINDS,
    TOY2D_META_TRAIN,
    TOY2D_META_VAL,
    Mixture,
    Toy2D,
    get_family,
    sample_episodes,
    toy2d,
    toy2d_group,
)

NAMES = [k for k in TOY2D_KINDS if k != "blobs"] + ["blob5", "blob3"]
T, B, Q, BQ, K = 4, 256, 2, 128, 16

# Expected fraction of label 1 for the families without random parameters (area fractions).
EXPECTED_POSITIVE = {
    "xor": 0.5,
    "nxor": 0.5,
    "and": 0.25,
    "or": 0.75,
    "qand": 0.25,
    "small_centered_circle": math.pi * 0.25 / 4,
    "centered_circle": 0.5,
    "two_moons": 0.5,
    "two_moons_rotated": 0.5,
    "checkerboard": 0.5,
    "cross": 0.5,
    "triangle": 0.5,
}


def _sample_all(families: dict, keys: jax.Array) -> dict:
    """Episodes of every family for every key, and each episode's labels recomputed from x.

    One jitted program for all families: compiling once is much faster than once per family.
    """
    out = {}
    for name, fam in families.items():
        eps = jax.vmap(lambda k, fam=fam: fam.sample(k, T, B, Q, BQ))(keys)
        relabelled = None
        if fam.kind != "blobs":
            relabelled = tuple(
                jax.vmap(fam.label)(keys, batch.x.reshape(K, -1, 2))
                for batch in (eps.support, eps.query)
            )
        out[name] = (eps, relabelled)
    return out


@pytest.fixture(scope="module")
def sampled():
    families = {name: toy2d(name) for name in NAMES}
    keys = jax.random.split(jax.random.key(0), K)
    fn = jax.jit(_sample_all)  # the families are a pytree argument
    return families, keys, fn, fn(families, keys)


@pytest.fixture(params=NAMES)
def family_and_episodes(request: pytest.FixtureRequest, sampled):
    families, keys, _, out = sampled
    eps, relabelled = out[request.param]
    return families[request.param], eps, relabelled


def test_shapes_and_dtypes(family_and_episodes):
    fam, eps, _ = family_and_episodes
    assert fam.num_inputs == 2
    assert eps.support.x.shape == (K, T, B, 2) and eps.support.x.dtype == jnp.float32
    assert eps.support.y.shape == (K, T, B) and eps.support.y.dtype == jnp.int32
    assert eps.query.x.shape == (K, Q, BQ, 2) and eps.query.x.dtype == jnp.float32
    assert eps.query.y.shape == (K, Q, BQ) and eps.query.y.dtype == jnp.int32
    x = np.asarray(eps.support.x)
    assert x.min() >= -1.0 and x.max() <= 1.0
    y = np.concatenate([np.asarray(eps.support.y).ravel(), np.asarray(eps.query.y).ravel()])
    assert y.min() >= 0 and y.max() < fam.num_classes


def test_label_balance(family_and_episodes):
    """Every task of every family has each class in 12 %..88 % of its support examples."""
    fam, eps, _ = family_and_episodes
    y = np.asarray(eps.support.y).reshape(K, -1)
    for c in range(fam.num_classes):
        frac = (y == c).mean(axis=1)  # per task
        assert frac.min() >= 0.12 and frac.max() <= 0.88, (fam.name, c, frac)
    if fam.name in EXPECTED_POSITIVE:
        assert abs((y == 1).mean() - EXPECTED_POSITIVE[fam.name]) < 0.03, fam.name
    if fam.kind == "blobs":
        fractions = [(y == c).mean() for c in range(fam.num_classes)]
        np.testing.assert_allclose(fractions, 1 / fam.num_classes, atol=0.03)


def test_support_and_query_share_the_task(family_and_episodes):
    """Support and query labels both follow the task drawn from the episode key."""
    fam, eps, relabelled = family_and_episodes
    if relabelled is None:
        pytest.skip("blob labels are sampled, not a function of x")
    for batch, labels in zip((eps.support, eps.query), relabelled, strict=True):
        np.testing.assert_array_equal(np.asarray(labels), np.asarray(batch.y).reshape(K, -1))


def test_determinism_and_task_randomness(sampled):
    families, keys, fn, out = sampled
    again = fn(families, keys)  # same compiled program, same keys
    for name in NAMES:
        np.testing.assert_array_equal(
            np.asarray(again[name][0].support.x), np.asarray(out[name][0].support.x)
        )
        np.testing.assert_array_equal(
            np.asarray(again[name][0].query.y), np.asarray(out[name][0].query.y)
        )
        x = np.asarray(out[name][0].support.x)
        assert not np.array_equal(x[0], x[1])  # different keys, different points


CONVENTIONS = {
    "xor": ([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]], [0, 1, 0, 1]),
    "nxor": ([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]], [1, 0, 1, 0]),
    "and": ([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]], [1, 0, 0, 0]),
    "or": ([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]], [1, 1, 0, 1]),
    "qand": ([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]], [0, 1, 0, 0]),
    "small_centered_circle": ([[0.0, 0.0], [0.45, 0.0], [0.55, 0.0], [0.0, -0.6]], [1, 1, 0, 0]),
    "centered_circle": ([[0.0, 0.0], [0.75, 0.0], [0.85, 0.0], [0.0, -0.6]], [1, 1, 0, 1]),
    "cross": ([[0.0, 0.9], [0.9, 0.0], [0.9, 0.9], [0.5, -0.5]], [1, 1, 0, 0]),
    "triangle": ([[0.0, 0.0], [0.0, 0.95], [0.9, 0.9], [-0.9, -0.9]], [1, 1, 0, 1]),
    # On the upper moon's arc (label 0) and on the lower moon's arc (label 1).
    "two_moons": ([[-1 / 3, 0.5], [-1.0, -1 / 6], [1 / 3, -0.5], [1.0, 1 / 6]], [0, 0, 1, 1]),
    "concentric_circles": ([[0.1, 0.0], [0.5, 0.0], [0.8, 0.0], [0.9, 0.9]], [0, 1, 0, 1]),
    "checkerboard": ([[-0.9, -0.9], [-0.4, -0.9], [0.1, 0.1], [0.6, 0.1]], [0, 1, 0, 1]),
}


def test_label_conventions_and_per_task_parameters():
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(-1, 1, 21), jnp.linspace(-1, 1, 21)), -1)
    grid = grid.reshape(-1, 2)

    @jax.jit
    def labels(key):
        fixed = {n: toy2d(n).label(key, jnp.asarray(p)) for n, (p, _) in CONVENTIONS.items()}
        circles = [toy2d("circle").label(k, grid) for k in jax.random.split(key)]
        return fixed, circles

    fixed, circles = labels(jax.random.key(3))
    for name, (_, expected) in CONVENTIONS.items():
        np.testing.assert_array_equal(np.asarray(fixed[name]), expected, err_msg=name)
    # circle has a random centre and radius per task.
    assert not np.array_equal(np.asarray(circles[0]), np.asarray(circles[1]))


def test_eager_jit_and_vmap_agree():
    fam = toy2d("xor")
    keys = jax.random.split(jax.random.key(7), 3)
    eager = fam.sample(keys[2], 2, 8)
    closed = jax.jit(lambda k: fam.sample(k, 2, 8))(keys[2])
    batched = sample_episodes(fam, keys, 2, 8)
    for ep in (closed, jax.tree.map(lambda a: a[2], batched)):
        np.testing.assert_array_equal(np.asarray(eager.support.x), np.asarray(ep.support.x))
        np.testing.assert_array_equal(np.asarray(eager.query.y), np.asarray(ep.query.y))
    assert eager.query.x.shape == (1, 8, 2)  # query_batch_size defaults to batch_size


def test_bad_options():
    with pytest.raises(ValueError, match="unknown toy2d kind 'nope'.*valid kinds"):
        Toy2D(kind="nope")
    with pytest.raises(ValueError, match="num_blobs >= 2"):
        toy2d("blobs", num_blobs=1)
    with pytest.raises(TypeError, match="static"):
        jax.jit(lambda k, t: toy2d("xor").sample(k, t, 4))(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="num_steps >= 1"):
        toy2d("xor").sample(jax.random.key(0), 0, 4)


def test_paper_groups():
    assert TOY2D_META_TRAIN == ("xor", "and", "two_moons")
    train, val = toy2d_group(TOY2D_META_TRAIN), toy2d_group(TOY2D_META_VAL)
    assert isinstance(train, Mixture) and train.num_classes == 2
    assert val.num_classes == 5  # blob5
    assert [f.name for f in val.families] == list(TOY2D_META_VAL)
    assert get_family("toy2d_val").name == val.name
    assert get_family("pieslice").name == "pie"  # the paper's names are aliases
    assert get_family("blob5x1").num_classes == 5
