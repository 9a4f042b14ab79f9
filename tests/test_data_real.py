"""Real data (MNIST, Fashion-MNIST, Omniglot subsets); skipped with the fetch command if absent."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from blur.data import (
    OMNIGLOT_SMALL_VAL_ALPHABETS,
    IDXSource,
    fetch,
    get_source,
    load_dataset,
    load_omniglot,
)
from blur.data.idx_source import find_idx_file
from blur.tasks import NWayEpisodes, get_family, load_split, sample_episode, sample_episodes

pytestmark = pytest.mark.realdata
SMALL = ("background_small1", "background_small2")


def test_mnist_full(require_dataset):
    require_dataset("mnist")
    data = load_dataset("mnist")
    assert data.images["train"].shape == (60000, 28, 28)
    assert data.images["test"].shape == (10000, 28, 28)
    np.testing.assert_array_equal(data.labels["train"][:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(
        np.bincount(data.labels["train"]),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    )
    x, y = load_split("mnist", "train_full")
    assert x.shape == (60000, 784) and x.dtype == np.float32 and y.dtype == np.int32
    assert x.mean() == pytest.approx(0.1307, abs=5e-5)
    assert x.std() == pytest.approx(0.3081, abs=5e-5)


def test_mnist_resolutions(require_dataset):
    require_dataset("mnist")
    x10, _ = load_split("mnist", "test", resolution=10)
    x14, _ = load_split("mnist", "test", resolution=14)
    x28, y = load_split("mnist", "test", resolution=28)
    assert x10.shape == (10000, 100) and x14.shape == (10000, 196) and x28.shape == (10000, 784)
    img = x28[:5].reshape(5, 28, 28)
    np.testing.assert_allclose(
        x10[:5],
        img[:, 4:24, 4:24].reshape(5, 10, 2, 10, 2).mean(axis=(2, 4)).reshape(5, 100),
        rtol=1e-6,
    )
    assert x14.mean() == pytest.approx(x28.mean(), rel=1e-5)  # pooling keeps the mean
    xs, ys = load_split("mnist", "test", classes="5-9", standardize=True)
    assert set(np.unique(ys)) == set(range(5)) and xs.shape[0] == (y >= 5).sum()


def test_fashion_mnist_full(require_dataset):
    require_dataset("fashion_mnist")
    x, y = load_split("fashion_mnist", "train_full")
    assert x.shape == (60000, 784)
    assert x.mean() == pytest.approx(0.2860, abs=5e-5)
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    xt, _ = load_split("fashion", "test", resolution=14)
    assert xt.shape == (10000, 196)


def test_paper_mnist_meta_train_family(require_dataset):
    require_dataset("mnist")
    fam = get_family("mnist_meta_train")
    assert (fam.num_inputs, fam.num_classes) == (100, 10)
    eps = sample_episodes(fam, jax.random.split(jax.random.key(0), 3), 10, 128, 2, 128)
    assert eps.support.x.shape == (3, 10, 128, 100) and eps.query.y.shape == (3, 2, 128)


def test_mnist_download_over_file_url(require_dataset, tmp_data_dir: Path):
    """The download path with the real MD5s, serving the imported files over file://."""
    real = require_dataset("mnist") / "mnist"
    spec = get_source("mnist")
    assert isinstance(spec, IDXSource)
    if not all(find_idx_file(real, f) for f in spec.all_files()):
        pytest.skip(f"the raw MNIST IDX files are not in {real} (only the cache)")
    fetch("mnist", mirror=real.as_uri(), log=lambda m: None)
    assert (tmp_data_dir / "mnist" / "mnist.npz").is_file()
    x, _ = load_split("mnist", "test")
    assert x.shape == (10000, 784)


def test_omniglot_alphabet_split_10way(require_dataset):
    require_dataset("omniglot")
    val = load_omniglot(SMALL, alphabets=OMNIGLOT_SMALL_VAL_ALPHABETS)
    train = load_omniglot(SMALL, exclude_alphabets=OMNIGLOT_SMALL_VAL_ALPHABETS)
    # Greek and Latin are in both zips: they are merged (not doubled) and on one side only.
    assert {"Greek", "Latin"} <= set(train.alphabets)
    assert not {"Greek", "Latin"} & set(val.alphabets)
    assert set(train.char_names).isdisjoint(val.char_names)
    assert train.num_classes + val.num_classes == 242
    assert train.images.shape == (train.num_classes * 20, 28, 28)
    assert val.images.shape == (val.num_classes * 20, 28, 28)
    # Strokes are bright on a dark background after inversion.
    assert 0.05 < train.images.mean() / 255 < 0.3
    for data in (train, val):
        fam = NWayEpisodes.from_arrays(data.images, data.labels, 10)
        ep = sample_episode(fam, jax.random.key(0), 5, 64, 2, 50)
        assert ep.support.x.shape == (5, 64, 784) and ep.query.x.shape == (2, 50, 784)
        assert set(np.unique(np.asarray(ep.support.y))) <= set(range(10))
    fam = get_family(
        "omniglot", subsets=SMALL, exclude_alphabets=OMNIGLOT_SMALL_VAL_ALPHABETS, resolution=14
    )
    assert (fam.num_classes, fam.num_pool_classes, fam.num_inputs) == (10, train.num_classes, 196)
