"""Image task families on synthetic arrays: remapping, no support/query leakage, variants."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from blur.tasks import ImageClassification, NWayEpisodes, sample_episode, sample_episodes

SIDE = 4


def encoded_images(labels: np.ndarray) -> np.ndarray:
    """[N, 4, 4] uint8 images whose first pixels spell out the example index and label."""
    n = labels.shape[0]
    images = np.zeros((n, SIDE, SIDE), np.uint8)
    idx = np.arange(n)
    images[:, 0, 0] = idx // 256
    images[:, 0, 1] = idx % 256
    images[:, 0, 2] = labels
    images[:, 3, 3] = 255
    return images


def decode(x: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Example indices and original labels from flattened inputs in [0, 1], shape [..., 16]."""
    v = np.rint(np.asarray(x).reshape(-1, SIDE * SIDE) * 255).astype(np.int64)
    return v[:, 0] * 256 + v[:, 1], v[:, 2]


LABELS = np.arange(600) % 10
IMAGES = encoded_images(LABELS)


def test_image_classification_class_subset_and_holdout():
    fam = ImageClassification.from_arrays(
        IMAGES, LABELS, classes="5-9", holdout_fraction=0.25, name="synthetic:5-9"
    )
    assert (fam.num_inputs, fam.num_classes) == (16, 5)
    assert fam.support_images.shape[0] + fam.query_images.shape[0] == 300
    ep = sample_episode(fam, jax.random.key(0), 6, 64, 3, 32)
    assert ep.support.x.shape == (6, 64, 16) and ep.query.x.shape == (3, 32, 16)
    s_idx, s_orig = decode(ep.support.x)
    q_idx, q_orig = decode(ep.query.x)
    # Labels are the original classes 5..9 remapped to 0..4.
    np.testing.assert_array_equal(np.asarray(ep.support.y).ravel(), s_orig - 5)
    np.testing.assert_array_equal(np.asarray(ep.query.y).ravel(), q_orig - 5)
    # Support and query come from disjoint pools, which partition the selected examples.
    assert set(s_idx).isdisjoint(q_idx)
    pool_s, _ = decode(fam.support_images.reshape(-1, 16) / 255.0)
    pool_q, _ = decode(fam.query_images.reshape(-1, 16) / 255.0)
    assert set(pool_s).isdisjoint(pool_q)
    assert set(pool_s) | set(pool_q) == set(np.nonzero(LABELS >= 5)[0])
    assert set(s_idx) <= set(pool_s) and set(q_idx) <= set(pool_q)


def test_permutation_is_one_per_task():
    fam = ImageClassification.from_arrays(IMAGES, LABELS, permute=True)
    eps = sample_episodes(fam, jax.random.split(jax.random.key(1), 8), 2, 32, 1, 32)
    columns = []
    for e in range(8):
        x = np.concatenate(
            [
                np.asarray(eps.support.x[e]).reshape(-1, 16),
                np.asarray(eps.query.x[e]).reshape(-1, 16),
            ]
        )
        # Pixel (3, 3) is 255 in every image: one column, the same for support and query.
        bright = np.nonzero(np.all(x == 1.0, axis=0))[0]
        assert bright.size == 1
        columns.append(int(bright[0]))
    assert len(set(columns)) > 1  # a fresh permutation per episode
    # Same key, same examples: a permutation only moves pixels, so sorted rows agree.
    plain = ImageClassification.from_arrays(IMAGES, LABELS)
    x_plain = np.asarray(
        sample_episodes(plain, jax.random.split(jax.random.key(1), 8), 2, 32, 1, 32).support.x
    )
    x_perm = np.asarray(eps.support.x)
    np.testing.assert_array_equal(np.sort(x_plain, axis=-1), np.sort(x_perm, axis=-1))


def test_shuffle_labels_is_a_consistent_bijection():
    fam = ImageClassification.from_arrays(IMAGES, LABELS, shuffle_labels=True)
    ep = sample_episode(fam, jax.random.key(2), 4, 64, 2, 64)
    pairs = set()
    for batch in (ep.support, ep.query):
        _, orig = decode(batch.x)
        pairs |= set(zip(orig.tolist(), np.asarray(batch.y).ravel().tolist(), strict=True))
    origs = [o for o, _ in pairs]
    news = [n for _, n in pairs]
    assert len(set(origs)) == len(origs) == len(set(news))  # a function and injective
    assert any(o != n for o, n in pairs)


def test_rotation_and_resolution():
    images = np.zeros((40, 8, 8), np.uint8)
    images[:, 1, 3:5] = 255  # a bar near the top
    fam = ImageClassification.from_arrays(images, np.arange(40) % 2, rotate=180.0, resolution=4)
    assert fam.num_inputs == 16
    eps = sample_episodes(fam, jax.random.split(jax.random.key(3), 8), 1, 4, 1, 4)
    x = np.asarray(eps.support.x)
    assert x.shape == (8, 1, 4, 16) and x.min() >= 0 and x.max() <= 1
    # One angle per task: all images of an episode are identical; episodes differ.
    assert np.allclose(x[:, :, :1], x)
    assert len({x[e, 0, 0].round(4).tobytes() for e in range(8)}) > 1
    plain = ImageClassification.from_arrays(images, np.arange(40) % 2, resolution=4)
    xp = np.asarray(sample_episode(plain, jax.random.key(3), 1, 4).support.x)
    np.testing.assert_allclose(xp[0, 0].reshape(4, 4)[0], [0, 0.25, 0.25, 0])


def test_standardize_uses_support_pool_stats():
    fam = ImageClassification.from_arrays(IMAGES, LABELS, standardize=True)
    pool = np.asarray(fam.support_images, np.float64) / 255
    assert fam.mean == pytest.approx(pool.mean()) and fam.std == pytest.approx(pool.std())
    ep = sample_episode(fam, jax.random.key(4), 4, 128)
    assert abs(float(np.asarray(ep.support.x).mean())) < 0.2


def test_nway_episodes_remap_and_never_leak():
    labels = np.repeat(np.arange(12), 10)  # 12 classes x 10 examples
    images = encoded_images(labels)
    fam = NWayEpisodes.from_arrays(images, labels, 5, support_fraction=0.6, name="syn5way")
    assert (fam.num_classes, fam.num_pool_classes, fam.num_inputs) == (5, 12, 16)
    keys = jax.random.split(jax.random.key(5), 6)
    eps = sample_episodes(fam, keys, 8, 32, 2, 32)
    chosen_sets = set()
    for e in range(6):
        s_idx, s_orig = decode(eps.support.x[e])
        q_idx, q_orig = decode(eps.query.x[e])
        s_y, q_y = np.asarray(eps.support.y[e]).ravel(), np.asarray(eps.query.y[e]).ravel()
        assert set(s_y) | set(q_y) <= set(range(5))
        # New label -> original class is one bijection shared by support and query.
        mapping = {}
        for new, orig in zip(np.r_[s_y, q_y], np.r_[s_orig, q_orig], strict=True):
            assert mapping.setdefault(int(new), int(orig)) == int(orig)
        assert len(set(mapping.values())) == len(mapping)
        chosen_sets.add(frozenset(mapping.values()))
        # No example in both support and query; per class at most 6 support / 4 query examples.
        assert set(s_idx).isdisjoint(q_idx)
        for c in set(s_orig):
            assert len(set(s_idx[s_orig == c])) <= 6
        for c in set(q_orig):
            assert len(set(q_idx[q_orig == c])) <= 4
    assert len(chosen_sets) > 1  # classes are drawn per episode


def test_nway_errors():
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="num_ways=5 must be between 2 and the number of pool"):
        NWayEpisodes.from_arrays(encoded_images(labels), labels, 5)
    labels = np.asarray([0, 0, 1])
    with pytest.raises(ValueError, match="at least 2 examples"):
        NWayEpisodes.from_arrays(encoded_images(labels), labels, 2)
    with pytest.raises(ValueError, match="support_fraction"):
        NWayEpisodes.from_arrays(IMAGES, LABELS, 2, support_fraction=1.0)
    with pytest.raises(ValueError, match=r"resolution 9 is not valid for 4x4"):
        ImageClassification.from_arrays(IMAGES, LABELS, resolution=9)
    with pytest.raises(ValueError, match="rotate"):
        ImageClassification.from_arrays(IMAGES, LABELS, rotate=400.0)
