"""``blur.BlurClassifier``: scikit-learn's estimator checks, bad inputs, and the sklearn tools."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import SkipTestWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import check_estimator

import blur
from blur import BlurClassifier
from blur.experiments.config import PAPER_NETWORK

# Small, fast settings: the shipped mnist-k4 rule (per-layer, 3 synapse layers) on (64, 32).
FAST = {"hidden": (64, 32), "steps": 30, "batch_size": 64}

# Checks expected to fail, with the reason. check_classifiers_train asks for > 83% training
# accuracy on 2-feature, 3-blob data: the mnist-k4 rule (meta-trained on 100-784 pixel inputs)
# does not learn 2-D inputs. Measured (make_blobs(300, random_state=0), standardised, 2-D):
# 30.0% with hidden (64, 32) and 30 steps, 70.7% with its own (256, 128), 7.3% with (64, 32)
# and 100 steps. Every other check passes.
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_classifiers_train": "mnist-k4 does not learn 2-feature blobs (30% after 30 steps)",
}


def test_import_blur_stays_light():
    """``import blur`` does not import scikit-learn; ``blur.BlurClassifier`` does, lazily."""
    code = ("import sys, blur; assert 'sklearn' not in sys.modules, 'eager';"
            "blur.BlurClassifier; assert 'sklearn' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# Checks scikit-learn itself skips in this environment, with its reason; the test below fails
# if another check is skipped, so none goes unlisted.
SKIPPED_CHECKS: dict[str, str] = {
    "check_array_api_input": "SCIPY_ARRAY_API is not set (array-API inputs are not supported)",
    "check_classifier_data_not_an_array": "pandas is not installed (not a blur dependency)",
}


@pytest.mark.slow  # 43 s; CI runs it in its slow step (.ci/run)
def test_passes_sklearn_check_estimator():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkipTestWarning)
        check_estimator(BlurClassifier(**FAST), expected_failed_checks=EXPECTED_FAILED_CHECKS)
    skipped = set()
    for w in caught:
        if issubclass(w.category, SkipTestWarning):
            m = re.search(r"Skipping check (\w+)", str(w.message))
            if m:
                skipped.add(m.group(1))
    unlisted = skipped - set(SKIPPED_CHECKS) - set(EXPECTED_FAILED_CHECKS)
    assert not unlisted, f"checks skipped without a listed reason: {sorted(unlisted)}"


def _blobs(n: int = 300, classes: int = 3, features: int = 5):
    return make_blobs(n_samples=n, centers=classes, n_features=features, random_state=0)


@pytest.mark.parametrize("labels", ["int", "str"])
def test_learns_any_width_and_any_labels(labels):
    X, y = _blobs(classes=4, features=7)
    if labels == "str":
        y = np.array(["ant", "bee", "cat", "dog"])[y]
    clf = BlurClassifier(**FAST).fit(X, y)
    assert clf.n_features_in_ == 7 and list(clf.classes_) == sorted(set(y))
    assert set(clf.predict(X)) <= set(y)
    p = clf.predict_proba(X)
    assert p.shape == (300, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.score(X, y) > 0.9
    assert np.array_equal(clf.predict(X), clf.classes_[np.argmax(p, axis=1)])


def test_more_classes_than_the_genome_was_trained_with():
    X, y = _blobs(n=600, classes=12, features=6)
    clf = BlurClassifier(**FAST).fit(X, y)
    assert clf.predict_proba(X).shape == (600, 12)
    assert clf.score(X, y) > 1 / 12 * 3  # far above chance


def test_a_fit_is_reproducible_and_the_seed_matters():
    X, y = _blobs()
    a = BlurClassifier(**FAST, seed=1).fit(X, y).predict_proba(X)
    b = BlurClassifier(**FAST, seed=1).fit(X, y).predict_proba(X)
    c = BlurClassifier(**FAST, seed=2).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_partial_fit_continues_training_and_checks_labels():
    X, y = _blobs()
    clf = BlurClassifier(**{**FAST, "steps": 5})
    clf.partial_fit(X[:150], y[:150], classes=[0, 1, 2])
    first = clf.predict_proba(X)
    clf.partial_fit(X[150:], y[150:])
    assert clf.n_steps_ == 10 and not np.allclose(first, clf.predict_proba(X))
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        clf.partial_fit(X[:5], np.array([0, 1, 7, 2, 0]))
    with pytest.raises(ValueError, match=r"labels \[2\] that are not in classes_"):
        BlurClassifier(**FAST).partial_fit(X[:5], np.array([0, 1, 2, 0, 1]), classes=[0, 1])


def _never_trains(monkeypatch):
    import blur.estimator as est

    def fail(*args, **kwargs):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(est, "_train", fail)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [2.0, 1.0]]), [0, 1, 0], "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [2.0, 1.0]]), [0, 1, 0], "infinity"),
        (np.ones((4, 2)), [3, 3, 3, 3], "at least 2 classes"),
        (np.arange(4.0), [0, 1, 0, 1], "Expected 2D array"),
        (np.ones((4, 2)), [0.5, 1.5, 0.2, 0.1], "Unknown label type"),
    ],
    ids=["nan", "inf", "one-class", "1d", "continuous-y"],
)
def test_bad_input_is_a_clear_error_before_any_training(monkeypatch, X, y, match):
    _never_trains(monkeypatch)
    with pytest.raises(ValueError, match=match):
        BlurClassifier(**FAST).fit(X, y)


def test_feature_count_must_match_between_fit_and_predict():
    X, y = _blobs(features=5)
    clf = BlurClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but BlurClassifier is expecting 5"):
        clf.predict(X[:, :4])


def test_a_per_layer_genome_fixes_the_depth(monkeypatch):
    _never_trains(monkeypatch)
    X, y = _blobs()
    with pytest.raises(ValueError, match="fixes the depth: give 2 hidden widths"):
        BlurClassifier(hidden=(64,)).fit(X, y)


def test_genome_argument_forms(tmp_path):
    X, y = _blobs()
    loaded = blur.genomes.load("mnist-k4")
    by_obj = BlurClassifier(loaded.genome, network=loaded.network, **FAST).fit(X, y)
    by_name = BlurClassifier("mnist-k4", **FAST).fit(X, y)
    np.testing.assert_array_equal(by_obj.predict_proba(X), by_name.predict_proba(X))
    shared = BlurClassifier(blur.delta_genome(2), hidden=(16,), steps=5).fit(X, y)
    assert shared.network_ == dataclasses.replace(PAPER_NETWORK, hidden=(16,))
    with pytest.raises(ValueError, match="neither a shipped genome"):
        BlurClassifier("no-such-genome").fit(X, y)


def test_works_in_pipeline_grid_search_and_cross_val_score():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    pipe = make_pipeline(MinMaxScaler(), BlurClassifier(**FAST, standardize=False))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.5
    search = GridSearchCV(BlurClassifier(**FAST), {"steps": [5, 30]}, cv=2).fit(X, y)
    assert search.best_params_["steps"] in (5, 30)
    assert search.best_estimator_.n_steps_ == search.best_params_["steps"]
    assert search.score(X, y) > 0.5
