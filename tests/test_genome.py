"""Genome construction, flattening, and the strict JSON dict format."""

from __future__ import annotations

import copy
import json
import math
import typing
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_tree_allclose, tree_allclose

import blur
from blur.genome import (
    MATRIX_FIELDS,
    RULE_FIELDS,
    SCALAR_FIELDS,
    STATE_FIELDS,
    calibration_delta_genome,
    expected_shapes,
    genome_is_finite,
    genome_subspace,
    num_parameters,
)

ALL_FIELDS = (*MATRIX_FIELDS, *STATE_FIELDS, *SCALAR_FIELDS)


def _inits(K: int, L: int | None) -> dict[str, blur.Genome]:
    key = jax.random.key(0)
    return {
        "random": blur.random_genome(key, K, L),
        "near_backprop": blur.near_backprop_genome(K, L),
        "delta": blur.delta_genome(K, L),
        "init_random": blur.init_genome("random", key, K, L),
    }


# -------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("L", [None, 3])
def test_shapes(K: int, L: int | None) -> None:
    lead = () if L is None else (L,)
    for name, g in _inits(K, L).items():
        assert g.num_states == K, name
        assert g.num_layers == L, name
        for f in MATRIX_FIELDS:
            assert getattr(g, f).shape == (*lead, K, K), (name, f)
        for f in STATE_FIELDS:
            assert getattr(g, f).shape == (*lead, K), (name, f)
        for f in SCALAR_FIELDS:
            assert getattr(g, f).shape == lead, (name, f)
        assert {f: getattr(g, f).shape for f in ALL_FIELDS} == expected_shapes(K, L)
        assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(g)), name
        assert num_parameters(g) == math.prod(lead) * (4 * K * K + 4 * K + 7)


def test_genome_field_list_is_complete() -> None:
    import dataclasses

    assert {f.name for f in dataclasses.fields(blur.Genome)} == set(ALL_FIELDS)


def test_per_layer_layer_and_stack() -> None:
    key = jax.random.key(3)
    per = blur.random_genome(key, 2, 3)
    # independent transforms per layer
    assert not np.allclose(per.nu[0], per.nu[1])
    layers = [per.layer(i) for i in range(3)]
    assert layers[1].num_layers is None
    np.testing.assert_array_equal(layers[2].mu, per.mu[2])
    assert_tree_allclose(blur.stack_layers(layers), per, rtol=0, atol=0)
    shared = blur.random_genome(key, 2)
    assert shared.layer(5) is shared


def test_named_init_values() -> None:
    """The paper's matrices (§3.1 eq. 4, §4.5), embedded top-left in K x K."""
    nb = blur.near_backprop_genome(4, eta_tilde=0.25)
    np.testing.assert_array_equal(nb.nu[:2, :2], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(nb.mu, np.diag([1, 1, 0, 0]))
    np.testing.assert_array_equal(nb.nu_tilde, np.diag([1, 1, 0, 0]))
    np.testing.assert_array_equal(nb.mu_tilde[:2, :2], [[0, 1], [1, 0]])
    assert float(np.abs(nb.nu).sum()) == 2.0 and float(np.abs(nb.mu_tilde).sum()) == 2.0
    assert float(nb.eta_tilde) == 0.25
    bp = blur.backprop_genome(0.3)
    np.testing.assert_array_equal(bp.nu, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(bp.mu, np.eye(2))
    np.testing.assert_array_equal(bp.nu_tilde, [[1, 1], [0, 0]])  # pre factor: state 0
    np.testing.assert_array_equal(bp.mu_tilde, [[0, 1], [0, 1]])  # post factor: state 1
    assert (float(bp.f), float(bp.eta), float(bp.f_tilde)) == (1.0, 1.0, 1.0)
    assert float(bp.eta_tilde) == pytest.approx(0.3)
    assert float(bp.oja) == 0.0
    d = blur.delta_genome(3, eta_tilde=2.0)
    np.testing.assert_array_equal(d.mu_tilde[:, :2], [[-1, 1]] * 3)
    np.testing.assert_array_equal(d.mu[1], [-1, 1, 0])
    np.testing.assert_array_equal(d.nu_tilde[0], [1, 1, 1])
    assert float(d.eta_tilde) == 2.0
    r = blur.random_genome(jax.random.key(0), 2)
    assert (float(r.f), float(r.eta), float(r.f_tilde)) == (1.0, 1.0, 1.0)
    assert float(r.eta_tilde) == pytest.approx(-1e-3)
    assert float(r.init_scale) == pytest.approx(0.1)


def test_init_genome_names() -> None:
    key = jax.random.key(7)
    assert_tree_allclose(blur.init_genome("random", key, 3), blur.random_genome(key, 3), 0, 0)
    assert_tree_allclose(blur.init_genome("delta", key, 3, 2), blur.delta_genome(3, 2), 0, 0)
    assert_tree_allclose(
        blur.init_genome("near_backprop", key, 2, eta_tilde=0.5),
        blur.near_backprop_genome(2, eta_tilde=0.5), 0, 0,
    )
    with pytest.raises(ValueError, match="unknown genome init 'backprop'"):
        blur.init_genome("backprop", key, 2)
    with pytest.raises(ValueError, match="num_states"):
        blur.random_genome(key, 0)
    with pytest.raises(ValueError, match="num_states"):
        blur.delta_genome(1)


def test_delta_genome_error_feedback_reads_state_1_in_the_last_layer() -> None:
    d = blur.delta_genome(4, 3, feedback="softmax_error", eta_tilde=(200.0, 100.0, 50.0),
                          init_scale=2.5)
    # lower layers: post factor and backward mixing = state 1 - state 0
    for layer in (0, 1):
        np.testing.assert_array_equal(d.mu_tilde[layer, :, :2], [[-1, 1]] * 4)
        np.testing.assert_array_equal(d.mu[layer, 1], [-1, 1, 0, 0])
    # last layer: output state 1 already holds the error
    np.testing.assert_array_equal(d.mu_tilde[2, :, :2], [[0, 1]] * 4)
    np.testing.assert_array_equal(d.mu[2, 1], [0, 1, 0, 0])
    np.testing.assert_array_equal(d.eta_tilde, [200.0, 100.0, 50.0])
    np.testing.assert_array_equal(d.init_scale, [2.5] * 3)
    # label feedback keeps one structure for every layer
    lab = blur.delta_genome(4, 3, feedback="label")
    np.testing.assert_array_equal(lab.mu_tilde[2], lab.mu_tilde[0])
    assert blur.genome.FEEDBACKS == typing.get_args(blur.network.Feedback)


def test_delta_genome_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="needs a per-layer genome"):
        blur.delta_genome(2, feedback="error")
    with pytest.raises(ValueError, match="unknown feedback 'labels'"):
        blur.delta_genome(2, 2, feedback="labels")
    with pytest.raises(ValueError, match=r"eta_tilde has shape \(2,\).*num_layers=3"):
        blur.delta_genome(2, 3, eta_tilde=(1.0, 2.0))
    with pytest.raises(ValueError, match="needs a per-layer genome|per-layer value"):
        blur.near_backprop_genome(2, eta_tilde=(1.0, 2.0))


def test_random_genome_uses_key() -> None:
    a = blur.random_genome(jax.random.key(1), 3)
    b = blur.random_genome(jax.random.key(1), 3)
    c = blur.random_genome(jax.random.key(2), 3)
    assert tree_allclose(a, b, rtol=0, atol=0)
    for f in MATRIX_FIELDS:
        assert not np.allclose(getattr(a, f), getattr(c, f)), f
    # the four matrices are independent draws
    assert not np.allclose(a.nu, a.mu) and not np.allclose(a.nu_tilde, a.mu_tilde)
    std = float(jnp.std(blur.random_genome(jax.random.key(3), 16, transform_std=2.0).nu))
    assert std == pytest.approx(2.0, rel=0.15)


def test_genome_is_finite() -> None:
    g = blur.random_genome(jax.random.key(0), 2)
    assert bool(genome_is_finite(g))
    assert not bool(genome_is_finite(g.replace(alpha=jnp.float32(jnp.nan))))


# ------------------------------------------------------------------------------- ravel


@pytest.mark.parametrize("L", [None, 2])
def test_ravel_round_trip(L: int | None) -> None:
    g = blur.random_genome(jax.random.key(0), 3, L).replace(f=jnp.full(() if L is None else (L,),
                                                                       0.5, jnp.float32))
    flat, unravel = blur.ravel_genome(g)
    assert flat.ndim == 1 and flat.dtype == jnp.float32
    assert flat.size == num_parameters(g)
    assert_tree_allclose(unravel(flat), g, rtol=0, atol=0)
    # unravel is the inverse in the other direction too, and moves every value
    moved = unravel(flat + 1.0)
    for f in ALL_FIELDS:
        np.testing.assert_array_equal(getattr(moved, f), getattr(g, f) + 1.0)
    np.testing.assert_array_equal(blur.ravel_genome(moved)[0], flat + 1.0)
    # it works under jit and vmap (the ES use)
    pop = jax.vmap(unravel)(jnp.stack([flat, flat * 2.0]))
    np.testing.assert_allclose(pop.nu[1], 2.0 * g.nu)


# ------------------------------------------------------------------------------ JSON dict


@pytest.mark.parametrize("L", [None, 3])
def test_dict_round_trip_through_json_is_exact(L: int | None) -> None:
    g = blur.random_genome(jax.random.key(4), 3, L)
    g = g.replace(eta_tilde=g.eta_tilde * 0 + np.float32(1 / 3), alpha=g.alpha * 0 + 1e-30)
    d = blur.genome_to_dict(g)
    assert d["schema"] == "blur.genome" and d["schema_version"] == 2
    assert d["num_states"] == 3 and d["num_layers"] == L
    text = json.dumps(d)
    back = blur.genome_from_dict(json.loads(text))
    for f in ALL_FIELDS:
        a, b = np.asarray(getattr(g, f)), np.asarray(getattr(back, f))
        assert b.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_array_equal(a, b, err_msg=f)  # bit-exact
    assert json.dumps(blur.genome_to_dict(back)) == text


def _good_dict() -> dict[str, Any]:
    return blur.genome_to_dict(blur.random_genome(jax.random.key(0), 2))


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        target = d
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value

    return edit


def _delete(*path: str) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        target = d
        for p in path[:-1]:
            target = target[p]
        del target[path[-1]]

    return edit


BAD_DICTS: dict[str, tuple[Callable[[dict], None], str]] = {
    "wrong_schema": (_set(("schema",), "blur.network"), "schema"),
    "no_schema": (_delete("schema"), "schema"),
    "wrong_version": (_set(("schema_version",), 3), "schema_version"),
    "version_string": (_set(("schema_version",), "1"), "schema_version"),
    "bad_num_states": (_set(("num_states",), 0), "num_states"),
    "bool_num_states": (_set(("num_states",), True), "num_states"),
    "bad_num_layers": (_set(("num_layers",), 0), "num_layers"),
    "fields_not_object": (_set(("fields",), [1, 2]), "fields"),
    "missing_field": (_delete("fields", "mu_tilde"), "mu_tilde"),
    "unknown_field": (_set(("fields", "temperature"), 1.0), "temperature"),
    "wrong_shape_matrix": (_set(("fields", "nu"), [[1.0, 0.0]]), "nu"),
    "wrong_shape_scalar": (_set(("fields", "f"), [1.0]), "'f'"),
    "ragged": (_set(("fields", "mu"), [[1.0, 0.0], [1.0]]), "mu"),
    "nan": (_set(("fields", "eta"), float("nan")), "eta"),
    "inf": (_set(("fields", "alpha"), float("inf")), "alpha"),
    "neg_inf_in_matrix": (_set(("fields", "nu_tilde"), [[1.0, -float("inf")], [0.0, 0.0]]),
                          "nu_tilde"),
    "float32_overflow": (_set(("fields", "oja"), 1e39), "oja"),
    "non_numeric_string": (_set(("fields", "f_tilde"), "one"), "f_tilde"),
    "string_in_matrix": (_set(("fields", "mu"), [[1.0, "x"], [0.0, 1.0]]), "mu"),
    "numeric_string": (_set(("fields", "eta"), "1.0"), "eta"),
    "numeric_string_in_list": (_set(("fields", "fwd_norm_scale"), ["1", 1.0]), "fwd_norm_scale"),
    "boolean": (_set(("fields", "f"), True), "'f'"),
    "null": (_set(("fields", "init_scale"), None), "init_scale"),
    "object": (_set(("fields", "eta"), {"value": 1.0}), "eta"),
    "K_mismatch": (_set(("num_states",), 3), "K=3"),
    "L_mismatch": (_set(("num_layers",), 2), "L=2"),
}


@pytest.mark.parametrize("case", sorted(BAD_DICTS))
def test_genome_from_dict_rejects(case: str) -> None:
    edit, field = BAD_DICTS[case]
    d = copy.deepcopy(_good_dict())
    edit(d)
    with pytest.raises(blur.GenomeFormatError, match=field) as info:
        blur.genome_from_dict(d, source="my.json")
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("my.json: ")
    # the same dict written to JSON text (Python writes NaN / Infinity tokens) and read back
    # is rejected the same way
    with pytest.raises(blur.GenomeFormatError, match=field):
        blur.genome_from_dict(json.loads(json.dumps(d)))


def test_genome_from_dict_rejects_non_dict() -> None:
    for bad in ([], "genome", None, 3):
        with pytest.raises(blur.GenomeFormatError, match="JSON object"):
            blur.genome_from_dict(bad)


def test_nan_token_json_text() -> None:
    """Python's json writes and reads the non-standard NaN / Infinity tokens."""
    d = json.loads(json.dumps(_good_dict()))
    d["fields"]["eta"] = float("nan")
    text = json.dumps(d)
    assert '"eta": NaN' in text
    with pytest.raises(blur.GenomeFormatError, match="'eta'.*non-finite"):
        blur.genome_from_dict(json.loads(text))
    d["fields"]["eta"] = float("-inf")
    assert '"eta": -Infinity' in json.dumps(d)
    with pytest.raises(blur.GenomeFormatError, match="'eta'"):
        blur.genome_from_dict(json.loads(json.dumps(d)))


def test_truncated_or_corrupted_json_text() -> None:
    text = json.dumps(_good_dict())
    # a truncated file is not JSON at all: the json module raises (JSONDecodeError is a
    # ValueError); callers reading files get that before genome_from_dict is reached
    with pytest.raises(json.JSONDecodeError):
        json.loads(text[: len(text) // 2])
    # corruption that still parses is caught by genome_from_dict
    corrupted = text.replace('"nu_tilde"', '"nu_tlide"')
    with pytest.raises(blur.GenomeFormatError, match="nu_tilde"):
        blur.genome_from_dict(json.loads(corrupted))
    corrupted = text.replace('"schema": "blur.genome"', '"schema": "blur.genomf"')
    with pytest.raises(blur.GenomeFormatError, match="schema"):
        blur.genome_from_dict(json.loads(corrupted))


def test_genome_from_dict_accepts_ints_and_arrays() -> None:
    """Integers are JSON numbers too; in-memory numpy arrays of numbers are accepted."""
    d = _good_dict()
    d["fields"]["f"] = 1
    d["fields"]["nu"] = np.asarray(d["fields"]["nu"], np.float32)
    g = blur.genome_from_dict(d)
    assert float(g.f) == 1.0 and g.f.dtype == jnp.float32


def test_ravel_genome_inverse_is_shared_per_shape():
    # score_population takes the inverse as a static jit argument: a new object per call
    # would recompile it on every evolve() in a process.
    g1 = blur.random_genome(jax.random.PRNGKey(0), 3)
    g2 = blur.random_genome(jax.random.PRNGKey(1), 3)
    flat1, unravel1 = blur.ravel_genome(g1)
    _, unravel2 = blur.ravel_genome(g2)
    assert unravel1 is unravel2
    assert blur.ravel_genome(blur.random_genome(jax.random.PRNGKey(0), 2))[1] is not unravel1
    back = unravel1(flat1)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(g1), strict=True):
        assert (a == b).all()


# ------------------------------------------------------------------- searched subspace


def test_subspace_writes_only_the_searched_fields() -> None:

    g = blur.random_genome(jax.random.key(1), 2).replace(alpha=jnp.float32(0.7))
    flat, sub = genome_subspace(g, RULE_FIELDS + STATE_FIELDS)
    assert flat.shape == (sub.dim,) == (4 * 4 + 4 + 4 * 2,)
    assert_tree_allclose(sub(flat), g, rtol=0, atol=0)
    moved = sub(flat + 1.0)
    for f in ALL_FIELDS:
        expected = getattr(g, f) + (1.0 if f in RULE_FIELDS + STATE_FIELDS else 0.0)
        np.testing.assert_array_equal(getattr(moved, f), expected, err_msg=f)
    # unsearched fields (init_scale, alpha, oja) keep the base genome's values
    assert float(moved.alpha) == np.float32(0.7) and float(moved.init_scale) == float(g.init_scale)
    np.testing.assert_array_equal(sub.ravel(moved), flat + 1.0)
    pop = jax.vmap(sub)(jnp.stack([flat, flat * 2.0]))  # the ES use
    np.testing.assert_allclose(pop.nu[1], 2.0 * g.nu)


def test_subspace_shared_fields_take_one_value_for_every_layer() -> None:

    g = calibration_delta_genome(2, 2)
    flat, sub = genome_subspace(g, RULE_FIELDS + STATE_FIELDS, shared_fields=RULE_FIELDS)
    # calibration.md: 20 rule values shared, normalisation per layer (4 x L x K)
    assert sub.dim == 20 + 4 * 2 * 2
    assert_tree_allclose(sub(flat), g, rtol=0, atol=0)
    moved = sub(flat + jnp.arange(sub.dim, dtype=jnp.float32))
    for f in RULE_FIELDS:
        values = np.asarray(getattr(moved, f))
        np.testing.assert_array_equal(values[0], values[1], err_msg=f)
        assert not np.array_equal(values[0], np.asarray(getattr(g, f))[0]), f
    for f in STATE_FIELDS:
        values = np.asarray(getattr(moved, f)) - np.asarray(getattr(g, f))
        assert len(np.unique(values)) == values.size, f  # every layer and state its own value
    np.testing.assert_array_equal(sub.ravel(moved), flat + jnp.arange(sub.dim))


def test_subspace_is_hashable_and_equal_for_equal_settings() -> None:

    a = genome_subspace(calibration_delta_genome(2), RULE_FIELDS)[1]
    b = genome_subspace(calibration_delta_genome(2), list(reversed(RULE_FIELDS)))[1]
    assert a == b and hash(a) == hash(b)  # one jit compile per setting
    c = genome_subspace(calibration_delta_genome(2, init_scale=0.5), RULE_FIELDS)[1]
    assert c != a  # another fixed value is another function
    d = genome_subspace(calibration_delta_genome(2, eta_tilde=0.5), RULE_FIELDS)[1]
    assert d == a  # searched values are not part of it


def test_subspace_of_all_fields_matches_ravel_genome() -> None:

    g = blur.random_genome(jax.random.key(3), 3, 2)
    flat, sub = genome_subspace(g)
    np.testing.assert_array_equal(flat, blur.ravel_genome(g)[0])
    assert_tree_allclose(sub(flat * 3.0), blur.ravel_genome(g)[1](flat * 3.0), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("fields", "shared", "L", "match"),
    [
        (("nu", "bogus"), (), None, "unknown genome fields \\['bogus'\\]"),
        ((), (), None, "at least one searched field"),
        (("nu", "nu"), (), None, "repeats"),
        (("nu",), ("mu",), 2, "not searched"),
        (("nu",), ("nu",), None, "per-layer genome"),
        (("eta_tilde",), ("eta_tilde",), 2, "differs between layers"),
    ],
)
def test_subspace_bad_settings_name_the_problem(fields, shared, L, match) -> None:

    g = calibration_delta_genome(2, L, eta_tilde=(0.3, 0.5) if L else 0.3)
    with pytest.raises(ValueError, match=match):
        genome_subspace(g, fields, shared)


def test_subspace_rejects_a_wrong_length_vector() -> None:

    _, sub = genome_subspace(calibration_delta_genome(2), RULE_FIELDS)
    with pytest.raises(ValueError, match="expects 20 searched values"):
        sub(jnp.zeros(21))


def test_calibration_delta_genome_is_the_prototypes_start() -> None:
    """calibration.md, CMA-ES section, in blur's convention (K = 2, embedded for K > 2)."""
    g = blur.init_genome("calibration_delta", jax.random.key(0), 2)
    np.testing.assert_array_equal(g.nu, [[1, 0], [0, 0]])
    np.testing.assert_array_equal(g.mu, [[0, 0], [-1, 1]])
    np.testing.assert_array_equal(g.nu_tilde, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(g.mu_tilde, [[-1, 1], [1, 0]])
    for name, value in (("f", 1.0), ("eta", 1.0), ("f_tilde", 1.0), ("eta_tilde", 0.3),
                        ("oja", 0.0), ("init_scale", 1.0)):
        assert float(getattr(g, name)) == np.float32(value), name
    np.testing.assert_array_equal(g.fwd_norm_scale, [1, 1])
    np.testing.assert_array_equal(g.bwd_norm_shift, [0, 0])
    per_layer = calibration_delta_genome(4, 2)
    assert per_layer.nu.shape == (2, 4, 4)
    np.testing.assert_array_equal(per_layer.mu[1, :2, :2], [[0, 0], [-1, 1]])
    assert not np.any(per_layer.mu[:, 2:, :]) and not np.any(per_layer.mu[:, :, 2:])
    with pytest.raises(ValueError, match="num_states >= 2"):
        calibration_delta_genome(1)


@pytest.mark.parametrize("L", [None, 2])
def test_subspace_field_names_say_which_field_each_searched_value_writes(L) -> None:

    g = calibration_delta_genome(2, L)
    shared = RULE_FIELDS if L is not None else ()
    _, sub = genome_subspace(g, RULE_FIELDS + STATE_FIELDS, shared_fields=shared)
    names = sub.field_names()
    assert len(names) == sub.dim
    for f in RULE_FIELDS + STATE_FIELDS:
        # moving exactly the values named f changes field f and nothing else
        step = jnp.asarray([1.0 if n == f else 0.0 for n in names], jnp.float32)
        moved = sub(sub.ravel(g) + step)
        for other in ALL_FIELDS:
            changed = not np.array_equal(getattr(moved, other), getattr(g, other))
            assert changed == (other == f), (f, other)
