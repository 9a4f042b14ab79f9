"""Mixture families and the registry."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from blur.tasks import (
    ImageClassification,
    Mixture,
    TaskFamily,
    get_family,
    list_families,
    sample_episodes,
    toy2d,
)


def test_mixture_draws_one_member_per_episode():
    mix = Mixture((toy2d("and"), toy2d("or")), weights=(3.0, 1.0))
    assert mix.weights == (0.75, 0.25) and mix.num_classes == 2 and mix.num_inputs == 2
    assert isinstance(mix, TaskFamily)
    blobs = Mixture((toy2d("xor"), toy2d("blob5")), weights=(0.0, 1.0))
    assert blobs.num_classes == 5
    keys = jax.random.split(jax.random.key(0), 200)

    @jax.jit
    def run(keys):
        members, eps = jax.vmap(lambda k: mix.sample_with_member(k, 2, 64))(keys)
        return members, eps, mix.sample(keys[0], 2, 64), blobs.sample(keys[0], 1, 256)

    members, eps, first, blob_ep = run(keys)
    members = np.asarray(members)
    assert 0.6 < (members == 0).mean() < 0.9
    positive = np.asarray(eps.support.y).reshape(200, -1).mean(axis=1)
    # "and" is 25 % positive, "or" 75 %: the labels tell which member made each episode.
    np.testing.assert_array_equal(positive > 0.5, members == 1)
    # sample() is sample_with_member()[1].
    np.testing.assert_array_equal(np.asarray(first.support.y), np.asarray(eps.support.y[0]))
    # num_classes is the members' max; a zero weight is never drawn.
    assert set(np.unique(np.asarray(blob_ep.support.y))) == set(range(5))


def test_mixture_errors():
    images = np.zeros((20, 4, 4), np.uint8)
    img = ImageClassification.from_arrays(images, np.arange(20) % 2)
    with pytest.raises(ValueError, match="must share num_inputs.*'xor': 2.*'images': 16"):
        Mixture((toy2d("xor"), img))
    with pytest.raises(ValueError, match="at least one family"):
        Mixture(())
    with pytest.raises(ValueError, match="2 weights for 1 families"):
        Mixture((toy2d("xor"),), (1.0, 2.0))
    with pytest.raises(ValueError, match="weights must be"):
        Mixture((toy2d("xor"),), (-1.0,))
    with pytest.raises(ValueError, match="not a task family"):
        Mixture((object(),))


def test_mixture_of_image_families_under_jit():
    images = np.arange(40 * 16, dtype=np.uint8).reshape(40, 4, 4)
    labels = np.arange(40) % 4
    a = ImageClassification.from_arrays(images, labels, name="all")
    b = ImageClassification.from_arrays(images, labels, classes="2-3", name="2-3")
    mix = Mixture((a, b))
    assert mix.num_classes == 4 and mix.num_inputs == 16
    eps = sample_episodes(mix, jax.random.split(jax.random.key(2), 4), 2, 8)
    assert eps.support.x.shape == (4, 2, 8, 16)


def test_registry():
    names = list_families()
    for name in (
        "xor",
        "nxor",
        "and",
        "or",
        "qand",
        "circle",
        "two_moons",
        "blob5",
        "pie",
        "mnist",
        "fashion_mnist",
        "omniglot",
        "toy2d_train",
        "toy2d_val",
    ):
        assert name in names
    with pytest.raises(ValueError, match="unknown task family 'nope'; valid names: .*xor"):
        get_family("nope")
    with pytest.raises(ValueError, match="bad options"):
        get_family("xor", wrong_option=1)
    with pytest.raises(ValueError, match="classes twice"):
        get_family("mnist:0-4", classes="0-4")
    assert get_family("blobs", num_blobs=3).num_classes == 3
    assert get_family("Two-Moons").name == "two_moons"
