"""The validation carve-out: ``val`` is a fixed, seeded sixth of the training file, ``train`` the
rest, ``train_full`` both; Omniglot carves out characters. Disjoint, deterministic, recorded in
the family names."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from blur.data import (
    VAL_SEED,
    ImageData,
    OmniglotData,
    load_dataset,
    load_omniglot,
    val_carve_out,
    val_size,
)
from blur.data.omniglot import is_val_character
from blur.data.store import write_npz_atomic
from blur.experiments.config import build_family
from blur.tasks import get_family, sample_episode


def index_images(n: int, offset: int = 0) -> np.ndarray:
    """[n, 4, 4] uint8 images whose first two pixels spell out ``offset + index``."""
    images = np.zeros((n, 4, 4), np.uint8)
    idx = np.arange(n) + offset
    images[:, 0, 0], images[:, 0, 1] = idx // 256, idx % 256
    return images


def image_ids(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images[..., 0, 0].astype(np.int64) * 256 + images[..., 0, 1]


def pixel_ids(x: np.ndarray) -> np.ndarray:
    """Ids from flattened [0, 1] inputs of a 4x4 family."""
    v = np.rint(np.asarray(x).reshape(-1, 16) * 255).astype(np.int64)
    return v[:, 0] * 256 + v[:, 1]


@pytest.mark.parametrize("n", [20, 1437, 60000, 112800])
def test_val_carve_out_is_a_fixed_disjoint_sixth(n):
    train, val = val_carve_out(n)
    assert val.size == val_size(n) == n // 6
    assert train.size + val.size == n
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    # The documented rule, recomputed here: the first N // 6 of a seeded permutation.
    expected = np.sort(np.random.default_rng(VAL_SEED).permutation(n)[: n // 6])
    np.testing.assert_array_equal(val, expected)
    val_carve_out.cache_clear()
    np.testing.assert_array_equal(val_carve_out(n)[1], val)  # same in a fresh computation
    assert not train.flags.writeable


def test_image_data_splits():
    n = 600
    data = ImageData(
        "toy",
        {"train": index_images(n), "test": index_images(50, offset=n)},
        {"train": np.arange(n, dtype=np.int32) % 10, "test": np.zeros(50, np.int32)},
        10,
    )
    assert data.splits == ("train", "val", "test", "train_full")
    ids = {s: image_ids(data.split(s)[0]) for s in data.splits}
    assert ids["val"].size == 100 and ids["train"].size == 500
    assert np.intersect1d(ids["train"], ids["val"]).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([ids["train"], ids["val"]])), np.arange(n))
    np.testing.assert_array_equal(ids["train_full"], np.arange(n))
    np.testing.assert_array_equal(ids["test"], np.arange(n, n + 50))
    # Labels travel with their images.
    np.testing.assert_array_equal(data.split("val")[1], ids["val"] % 10)
    assert data.split_label("val") == f"val:100,seed={VAL_SEED}"
    assert data.split_label("train") == f"train-val:100,seed={VAL_SEED}"
    assert data.split_label("test") == "test" and data.split_label("train_full") == "train_full"
    with pytest.raises(ValueError, match="toy has no split 'valid'; valid splits: train, val"):
        data.split("valid")


@pytest.fixture
def indexed_mnist(tmp_data_dir: Path) -> np.ndarray:
    """An 'mnist' cache of 600 training images (4x4) that encode their own index."""
    n = 600
    write_npz_atomic(
        tmp_data_dir / "mnist" / "mnist.npz",
        {
            "train_images": index_images(n),
            "train_labels": (np.arange(n) % 10).astype(np.uint8),
            "test_images": index_images(60, offset=n),
            "test_labels": (np.arange(60) % 10).astype(np.uint8),
        },
    )
    return np.arange(n)


def family_ids(fam) -> np.ndarray:  # noqa: ANN001
    """Every image id an ImageClassification family can draw (support and query pools)."""
    return np.sort(np.concatenate([image_ids(fam.support_images), image_ids(fam.query_images)]))


def test_families_on_train_and_val_never_share_an_image(indexed_mnist):
    train_idx, val_idx = val_carve_out(indexed_mnist.size)
    val = build_family("mnist?split=val")  # the config path: build_family -> get_family
    train = get_family("mnist")  # the default split is train (minus val)
    full = get_family("mnist", split="train_full")
    np.testing.assert_array_equal(family_ids(val), val_idx)
    np.testing.assert_array_equal(family_ids(train), train_idx)
    np.testing.assert_array_equal(family_ids(full), indexed_mnist)
    assert val.name == "mnist[val:100,seed=0]" and train.name == "mnist[train-val:100,seed=0]"
    assert get_family("mnist:0-4", split="val", resolution=2).name == (
        "mnist:0-4@2x2[val:100,seed=0]"
    )
    # N-way episodes use the same splits.
    nway = get_family("mnist_nway", split="val", num_ways=3)
    assert "val:100,seed=0" in nway.name
    assert np.isin(image_ids(nway.images), val_idx).all()


def test_query_split_scores_the_whole_test_split_once(indexed_mnist):
    """``query_split=test``: support from the whole training split (minus val), the query
    from the whole test file without replacement, so a query of its size is every test image
    once (the "full test set" protocol of issue 10's targets)."""
    train_idx, _ = val_carve_out(indexed_mnist.size)
    fam = build_family("mnist?split=train&query_split=test")
    np.testing.assert_array_equal(image_ids(fam.support_images), train_idx)
    np.testing.assert_array_equal(image_ids(fam.query_images), np.arange(600, 660))
    assert fam.name == "mnist[train-val:100,seed=0|query=test]"
    ep = sample_episode(fam, jax.random.key(3), 2, 8, 3, 20)  # 60 queries = the test file
    q = pixel_ids(ep.query.x)
    np.testing.assert_array_equal(np.sort(q), np.arange(600, 660))  # each exactly once
    np.testing.assert_array_equal(np.asarray(ep.query.y).ravel(), (q - 600) % 10)
    assert np.isin(pixel_ids(ep.support.x), train_idx).all()
    # Another task draws another order of the same images.
    q2 = pixel_ids(sample_episode(fam, jax.random.key(4), 2, 8, 3, 20).query.x)
    assert not np.array_equal(q, q2) and np.array_equal(np.sort(q2), np.sort(q))
    # Classes select on both pools.
    sub = get_family("mnist:0-4", query_split="test")
    assert set(np.asarray(sub.query_labels).tolist()) == set(range(5))
    assert image_ids(sub.query_images).size == 30
    with pytest.raises(ValueError, match="query_split='test' equals split"):
        get_family("mnist", split="test", query_split="test")


def test_digits_val_split_is_always_available():
    data = load_dataset("digits")
    train, val = data.split("train"), data.split("val")
    assert (train[0].shape[0], val[0].shape[0]) == (1437 - 239, 239)
    full = data.split("train_full")[0]
    _, val_idx = val_carve_out(1437)
    np.testing.assert_array_equal(val[0], full[val_idx])
    fam = build_family("digits?split=val")
    assert fam.name == "digits[val:239,seed=0]"
    assert fam.support_images.shape[0] + fam.query_images.shape[0] == 239


def test_mnist_real_split_sizes(require_dataset):
    require_dataset("mnist")
    data = load_dataset("mnist")
    images, labels = data.split("val")
    assert images.shape == (10000, 28, 28) and data.split("train")[0].shape == (50000, 28, 28)
    _, val_idx = val_carve_out(60000)
    np.testing.assert_array_equal(images, data.images["train"][val_idx])
    np.testing.assert_array_equal(labels, data.labels["train"][val_idx])
    # A random sixth: every digit is there, in about its usual share.
    share = np.bincount(labels, minlength=10) / labels.size
    full_share = np.bincount(data.labels["train"], minlength=10) / 60000
    np.testing.assert_allclose(share, full_share, atol=0.01)


# ------------------------------------------------------------------------------- Omniglot


def synthetic_omniglot(alphabets: dict[str, int], drawings: int = 2) -> OmniglotData:
    names = [f"{a}/character{c:02d}" for a, n in alphabets.items() for c in range(1, n + 1)]
    labels = np.repeat(np.arange(len(names)), drawings).astype(np.int32)
    return OmniglotData(
        images=np.zeros((labels.size, 4, 4), np.uint8),
        labels=labels,
        char_names=tuple(names),
        drawing_names=np.asarray([f"{i}.png" for i in range(labels.size)]),
    )


def test_omniglot_character_split_is_stable_and_disjoint():
    data = synthetic_omniglot({"Greek": 24, "Korean": 40, "Latin": 26})
    train, val = data.select_split("train"), data.select_split("val")
    assert data.select_split("all") is data
    assert set(train.char_names).isdisjoint(val.char_names)
    assert set(train.char_names) | set(val.char_names) == set(data.char_names)
    assert train.images.shape[0] + val.images.shape[0] == data.images.shape[0]
    assert 0.05 < val.num_classes / data.num_classes < 0.35  # about a sixth
    assert val.labels.max() == val.num_classes - 1  # relabelled 0..C'-1
    # A character's side depends on its name only, not on the rest of the selection.
    korean_val = data.select_alphabets(["Korean"]).select_split("val")
    assert set(korean_val.char_names) == {c for c in val.char_names if c.startswith("Korean/")}
    assert all(is_val_character(c) for c in val.char_names)
    with pytest.raises(ValueError, match="unknown Omniglot split 'test'; valid splits: all"):
        data.select_split("test")


def test_omniglot_real_val_split(require_dataset):
    root = require_dataset("omniglot")
    small = ("background_small1", "background_small2")
    every = load_omniglot(small, root=root)
    val = load_omniglot(small, root=root, split="val")
    train = load_omniglot(small, root=root, split="train")
    assert set(train.char_names).isdisjoint(val.char_names)
    assert train.num_classes + val.num_classes == every.num_classes == 242
    assert val.num_classes == 43  # the hash rule's count for these 242 characters
    fam = get_family("omniglot", subsets=small, split="val")
    assert fam.num_pool_classes == 43 and fam.name.endswith("[val:chars/6,seed=0]")
