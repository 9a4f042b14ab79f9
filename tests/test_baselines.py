"""blur.baselines.init_mlp: the two weight distributions and their errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from blur.baselines import init_mlp


def test_he_uniform_is_the_default_and_bounded():
    params = init_mlp(jax.random.key(0), (400, 300, 10))
    for (w, b), n_in in zip(params, (400, 300), strict=True):
        limit = np.sqrt(6.0 / n_in)
        assert np.abs(np.asarray(w)).max() <= limit
        assert np.var(np.asarray(w)) == pytest.approx(2.0 / n_in, rel=0.05)  # U(±l): l^2 / 3
        assert not np.asarray(b).any()


def test_he_lecun_normal_matches_baselines_md():
    """He (var 2 / n_in) hidden, LeCun (var 1 / n_in) output, truncated at 2 std."""
    params = init_mlp(jax.random.key(1), (400, 300, 200, 10), init="he_lecun_normal")
    expected = (2.0 / 400, 2.0 / 300, 1.0 / 200)
    for (w, b), var in zip(params, expected, strict=True):
        w = np.asarray(w)
        assert np.var(w) == pytest.approx(var, rel=0.05)
        assert np.abs(w).max() <= 2.0 * np.sqrt(var) / 0.87962566  # the truncation point
        assert not np.asarray(b).any()
    uniform = init_mlp(jax.random.key(1), (400, 300, 200, 10))
    assert not np.allclose(np.asarray(uniform[-1][0]), np.asarray(params[-1][0]))


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="unknown MLP init 'xavier'; choose one of"):
        init_mlp(jax.random.key(0), (4, 3), init="xavier")  # type: ignore[arg-type]
