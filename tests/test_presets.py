"""Every preset's task families build, fit its network, and sample one episode."""

from __future__ import annotations

import jax
import pytest

from blur.experiments.config import (
    PRESETS,
    build_family,
    build_train_family,
    get_preset,
    parse_family,
)
from blur.outer.objective import check_compatible

DATASETS = {
    "toy2d": (),
    "mnist10": ("mnist", "fashion_mnist"),
    "cma-mnist14": ("mnist",),
    "omniglot": ("omniglot",),
}


def test_every_preset_is_listed_here():
    assert set(PRESETS) == set(DATASETS)


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_preset_families_build_and_fit_the_network(name, require_dataset):
    for dataset in DATASETS[name]:
        require_dataset(dataset)
    config = get_preset(name)
    train = build_train_family(config.tasks)
    spec = config.network.spec_for(train)
    check_compatible(spec, train)
    assert spec.layer_sizes[1:-1] == config.network.hidden
    assert spec.num_states == config.network.num_states
    episode = train.sample(jax.random.PRNGKey(0), 2, 4, 1, 3)
    assert episode.support.x.shape == (2, 4, train.num_inputs)
    assert int(episode.support.y.max()) < train.num_classes
    for text in config.tasks.validate:
        family = build_family(text)
        check_compatible(config.network.spec_for(family), family)
        assert family.name != train.name


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset 'nope'; choose one of"):
        get_preset("nope")


def test_omniglot_preset_splits_alphabets_without_shared_characters(require_dataset):
    require_dataset("omniglot")
    from blur.tasks import load_omniglot

    def data(text: str):  # noqa: ANN202
        _, options = parse_family(text)
        options.pop("num_ways")
        return load_omniglot(**options)

    config = get_preset("omniglot")
    (train_text,), (val_text,) = config.tasks.train, config.tasks.validate
    train, val = data(train_text), data(val_text)
    assert len(train.char_names) > 100 and len(val.char_names) > 100
    assert not set(train.char_names) & set(val.char_names)
