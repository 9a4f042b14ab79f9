"""Transforms: exact shapes and values on small arrays, class remapping, splits."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blur.tasks import transforms as tf


def test_center_crop_then_pool_is_the_papers_10x10():
    img = np.arange(28 * 28, dtype=np.float32).reshape(28, 28)
    crop = np.asarray(tf.center_crop(jnp.asarray(img), 20))
    np.testing.assert_array_equal(crop, img[4:24, 4:24])
    out = np.asarray(tf.resize(jnp.asarray(img), 10))
    assert out.shape == (10, 10)
    # Each output pixel is the mean of a 2x2 block of the crop: rows 4+2i, 5+2i, cols 4+2j, 5+2j.
    # For an arange image, that mean is img[4+2i, 4+2j] + (1 + 28) / 2.
    i, j = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    expected = (4 + 2 * i) * 28 + (4 + 2 * j) + 14.5
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0] == (116 + 117 + 144 + 145) / 4


def test_14x14_and_identity():
    img = jnp.arange(28 * 28, dtype=jnp.float32).reshape(1, 28, 28)
    out = np.asarray(tf.resize(img, 14))
    assert out.shape == (1, 14, 14)
    assert out[0, 0, 0] == (0 + 1 + 28 + 29) / 4
    assert out[0, 13, 13] == (26 * 28 + 26 + 26 * 28 + 27 + 27 * 28 + 26 + 27 * 28 + 27) / 4
    np.testing.assert_array_equal(np.asarray(tf.resize(img, 28)), np.asarray(img))
    np.testing.assert_array_equal(np.asarray(tf.resize(img, None)), np.asarray(img))


def test_resize_plan():
    assert tf.resize_plan(28, 10) == (20, 2)
    assert tf.resize_plan(28, 14) == (28, 2)
    assert tf.resize_plan(28, 28) == (28, 1)
    assert tf.resize_plan(28, 7) == (28, 4)
    assert tf.resize_plan(8, 4) == (8, 2)
    with pytest.raises(ValueError, match="resolution 30 is not valid for 28x28"):
        tf.resize_plan(28, 30)


def test_avg_pool_on_ints_and_bad_factor():
    x = jnp.asarray([[1, 3], [5, 7]], jnp.uint8)
    assert float(tf.avg_pool(x, 2)[0, 0]) == 4.0
    with pytest.raises(ValueError, match="divide the image size"):
        tf.avg_pool(jnp.zeros((5, 5)), 2)


def test_to_unit_standardize_flatten_permute():
    x = jnp.asarray([[0, 51], [204, 255]], jnp.uint8)
    u = tf.to_unit(x)
    assert u.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(u), [[0, 0.2], [0.8, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(tf.to_unit(jnp.asarray([16]), 16.0)), [1.0])
    s = tf.standardize(u, 0.5, 0.25)
    np.testing.assert_allclose(np.asarray(s), [[-2, -1.2], [1.2, 2]], rtol=1e-6)
    flat = tf.flatten_images(jnp.arange(12).reshape(1, 2, 2, 3))
    assert flat.shape == (1, 2, 6)
    perm = jnp.asarray([2, 0, 1])
    np.testing.assert_array_equal(
        np.asarray(tf.permute_pixels(jnp.asarray([[10, 11, 12]]), perm)), [[12, 10, 11]]
    )


def test_rotate():
    rotate = jax.jit(tf.rotate)  # one compilation per shape; the angle is traced
    img = jnp.arange(25, dtype=jnp.float32).reshape(5, 5)
    np.testing.assert_allclose(np.asarray(rotate(img, 0.0)), np.asarray(img), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(rotate(img, math.pi / 2)), np.rot90(np.asarray(img)), atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(rotate(img, math.pi)), np.rot90(np.asarray(img), 2), atol=1e-4
    )
    # 45 degrees: the centre stays, corners fall outside and are zero-filled; leading dims work.
    batch = jnp.ones((2, 1, 9, 9), jnp.float32)
    r = np.asarray(rotate(batch, math.pi / 4))
    assert r.shape == (2, 1, 9, 9)
    assert r[0, 0, 4, 4] == pytest.approx(1.0)
    assert r[1, 0, 0, 0] == 0.0 and r[1, 0, 8, 8] == 0.0


def test_parse_classes():
    assert tf.parse_classes(None) is None
    assert tf.parse_classes("0-4") == (0, 1, 2, 3, 4)
    assert tf.parse_classes("5-9") == (5, 6, 7, 8, 9)
    assert tf.parse_classes("0-2,7") == (0, 1, 2, 7)
    assert tf.parse_classes(3) == (0, 1, 2)
    assert tf.parse_classes([9, 3]) == (9, 3)
    with pytest.raises(ValueError, match="bad class spec"):
        tf.parse_classes("a-b")
    with pytest.raises(ValueError, match="duplicates"):
        tf.parse_classes([1, 1])
    with pytest.raises(ValueError, match="end is before start"):
        tf.parse_classes("5-2")


def test_select_classes_remaps_in_given_order():
    labels = np.asarray([0, 5, 7, 5, 9, 1, 7])
    idx, y = tf.select_classes(labels, (7, 5))
    np.testing.assert_array_equal(idx, [1, 2, 3, 6])
    np.testing.assert_array_equal(y, [1, 0, 1, 0])  # 7 -> 0, 5 -> 1
    assert y.dtype == np.int32
    idx, y = tf.select_classes(np.arange(20) % 10, tf.parse_classes("5-9"))
    np.testing.assert_array_equal(idx % 10 - 5, y)
    with pytest.raises(ValueError, match=r"classes \[3\] have no examples"):
        tf.select_classes(labels, (3, 5))


def test_class_index_table():
    labels = np.asarray([2, 0, 2, 1, 2, 0])
    table, counts = tf.class_index_table(labels, 3)
    np.testing.assert_array_equal(counts, [2, 1, 3])
    np.testing.assert_array_equal(table, [[1, 5, -1], [3, -1, -1], [0, 2, 4]])


def test_holdout_split_is_disjoint_and_deterministic():
    s, q = tf.holdout_split(60, 1 / 6, seed=0)
    assert len(q) == 10 and len(s) == 50
    assert set(s).isdisjoint(q) and set(s) | set(q) == set(range(60))
    s2, q2 = tf.holdout_split(60, 1 / 6, seed=0)
    np.testing.assert_array_equal(q, q2)
    with pytest.raises(ValueError, match="holdout_fraction"):
        tf.holdout_split(10, 1.5)
