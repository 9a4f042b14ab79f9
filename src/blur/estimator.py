"""``BlurClassifier``: a learned BLUR rule as a scikit-learn classifier.

A fresh BLUR network (widths: the data's features, the genome's hidden widths, the number of
classes) is trained by the genome's own update rule (paper §3, eqs. 5-8): ``steps`` inner
steps, each on a minibatch of ``batch_size`` examples drawn with replacement by an explicit
PRNG key. The whole loop is one jitted ``lax.scan`` of the BLUR step (:func:`blur.step`).
Predictions are the network's forward pass (output state 0, :func:`blur.predict`);
probabilities are its softmax.

>>> from sklearn.datasets import load_digits
>>> from blur import BlurClassifier
>>> X, y = load_digits(return_X_y=True)
>>> clf = BlurClassifier("mnist-k4", steps=50).fit(X[:1500], y[:1500])    # doctest: +SKIP
>>> clf.score(X[1500:], y[1500:])                                         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from blur.genome import Genome
from blur.inner import cf_step
from blur.inner import predict as blur_predict
from blur.network import (
    ChannelFirstState,
    NetworkConfig,
    NetworkSpec,
    NetworkState,
    from_channel_first,
    init_state,
    to_channel_first,
)
from blur.tasks.base import Batch

DEFAULT_GENOME = "mnist-k4"
PREDICT_CHUNK = 1024


def _bucket(n: int) -> int:
    """Rows x is padded to (a power of two, at least 256), so that data sets of similar size
    share one compiled training loop."""
    return max(256, 1 << (n - 1).bit_length())


@partial(jax.jit, static_argnames=("spec", "steps", "batch_size"))
def _train(
    genome: Genome, spec: NetworkSpec, state: NetworkState, x: jax.Array, y: jax.Array,
    n: jax.Array, key: jax.Array, start: jax.Array, *, steps: int, batch_size: int,
) -> NetworkState:
    """``steps`` BLUR steps (eqs. 5-8) on minibatches drawn with ``key`` from the first ``n``
    rows of x [N_pad, n_0], y [N_pad] (the rest is padding); ``start`` is the number of steps
    the state has taken (for ``spec.hebbian_decay``).

    Returns the trained state (synapses w_fwd[l] [n_l + 1, n_{l+1}, K], ...).
    """
    idx = jax.random.randint(key, (steps, batch_size), 0, n)  # [T, B], with replacement

    def body(
        s: ChannelFirstState, xs: tuple[jax.Array, jax.Array]
    ) -> tuple[ChannelFirstState, None]:
        t, rows = xs
        s, _ = cf_step(genome, spec, s, Batch(x=x[rows], y=y[rows]), t)
        return s, None

    # the scan runs on the rules' channel-first layout, as blur.unroll's does (one conversion)
    t = start + jnp.arange(steps, dtype=jnp.int32)
    final, _ = jax.lax.scan(body, to_channel_first(spec, state), (t, idx))
    return from_channel_first(spec, final, state)


@partial(jax.jit, static_argnames=("spec",))
def _logits(genome: Genome, spec: NetworkSpec, state: NetworkState, x: jax.Array) -> jax.Array:
    """Logits [B, n_L] of x [B, n_0] (:func:`blur.predict`)."""
    return blur_predict(genome, spec, state, x)


def resolve_genome(
    genome: str | Path | Genome, network: NetworkConfig | None
) -> tuple[Genome, NetworkConfig]:
    """(genome, network) from a shipped name, a genome.json path or a ``Genome``.

    A ``network`` argument overrides the file's; a bare ``Genome`` without one gets the
    default network for its K and depth (:data:`blur.experiments.config.PAPER_NETWORK`).
    """
    from blur import genomes
    from blur.io.genome_file import load_genome_file

    if isinstance(genome, Genome):
        if network is not None:
            return genome, network
        from blur.experiments.config import PAPER_NETWORK

        per_layer = genome.num_layers is not None
        hidden = (20,) * ((genome.num_layers or 2) - 1)
        return genome, dataclasses.replace(
            PAPER_NETWORK, hidden=hidden, num_states=genome.num_states,
            per_layer_genome=per_layer)
    if isinstance(genome, str) and genome in genomes.available():
        loaded = genomes.load(genome)
    elif isinstance(genome, str | Path):
        if not Path(genome).exists():
            raise ValueError(
                f"genome={str(genome)!r} is neither a shipped genome "
                f"({', '.join(genomes.available())}) nor an existing genome.json file")
        loaded = load_genome_file(genome)
    else:
        raise TypeError(f"genome must be a shipped name, a path or a blur.Genome; got "
                        f"{type(genome).__name__}")
    net = network or loaded.network
    if net is None:
        raise ValueError(f"{genome}: the file records no network (a v1 genome file); pass "
                         "network=blur.network.NetworkConfig(...)")
    return loaded.genome, net


class BlurClassifier(ClassifierMixin, BaseEstimator):
    """A classifier trained by a learned BLUR update rule instead of gradient descent.

    Parameters:
      genome: a shipped genome name (``blur.genomes.available()``), a genome.json path, or a
        :class:`blur.Genome` (then ``network`` or a default network is used).
      network: the network the genome drives (default: the one recorded with the genome).
      hidden: hidden widths (default: the genome's meta-trained widths). A per-layer genome
        fixes the depth: it needs exactly ``num_layers - 1`` widths.
      steps: inner BLUR steps per ``fit`` (and per ``partial_fit`` call).
      batch_size: examples per step, drawn with replacement.
      seed: PRNG seed of the synapse init and of the minibatches.
      standardize: subtract each feature's mean and divide by its std (from the first fit).

    Attributes (after fitting):
      classes_: the labels [n_classes], sorted.
      n_features_in_: input width.
      mean_, scale_: the standardisation [n_features] (zeros / ones if off).
      network_: the resolved :class:`blur.network.NetworkConfig`.
      state_: the trained :class:`blur.network.NetworkState`.
      n_steps_: inner steps taken so far.

    Note: a network with ``neuron_norm`` on the forward pass normalises over the batch, so
    its predictions depend on the batch; ``predict`` then runs on all of X at once.
    """

    def __init__(
        self,
        genome: str | Path | Genome = DEFAULT_GENOME,
        network: NetworkConfig | None = None,
        hidden: tuple[int, ...] | None = None,
        steps: int = 50,
        batch_size: int = 128,
        seed: int = 0,
        standardize: bool = True,
    ) -> None:
        self.genome = genome
        self.network = network
        self.hidden = hidden
        self.steps = steps
        self.batch_size = batch_size
        self.seed = seed
        self.standardize = standardize

    # ------------------------------------------------------------------ set-up and checks

    def _check_params(self) -> tuple[Genome, NetworkConfig]:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        genome, network = resolve_genome(self.genome, self.network)
        if self.hidden is not None:
            hidden = tuple(int(h) for h in self.hidden)
            if any(h < 1 for h in hidden):
                raise ValueError(f"hidden={self.hidden!r}: widths must be positive")
            if genome.num_layers is not None and len(hidden) + 1 != genome.num_layers:
                raise ValueError(
                    f"hidden={self.hidden!r} has {len(hidden)} hidden layers, but this genome "
                    f"is per-layer with {genome.num_layers} synapse layers, which fixes the "
                    f"depth: give {genome.num_layers - 1} hidden widths (its own are "
                    f"{network.hidden})")
            network = dataclasses.replace(network, hidden=hidden)
        from blur.io.genome_file import check_network_fits

        check_network_fits(genome, network, "BlurClassifier")
        return genome, network

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """y as class indices; labels not in ``classes_`` are an error."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != y
        if np.any(unseen):
            raise ValueError(
                f"y has labels {np.unique(y[unseen]).tolist()} that are not in classes_ "
                f"{self.classes_.tolist()}; give every label to the first partial_fit call "
                "with classes=...")
        return idx.astype(np.int32)

    def _start(self, X: np.ndarray, classes: np.ndarray) -> None:
        """Fresh network for X's width and these classes; standardisation from X."""
        genome, network = self._check_params()
        if len(classes) < 2:
            raise ValueError(
                f"BlurClassifier needs at least 2 classes in y, got {len(classes)} class "
                f"({classes.tolist()})")
        self.classes_ = classes
        self.network_ = network
        self.genome_ = jax.tree.map(np.asarray, genome)
        if self.standardize:
            self.mean_ = X.mean(axis=0).astype(np.float32)
            std = X.std(axis=0).astype(np.float32)
            self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
        else:
            self.mean_ = np.zeros(X.shape[1], np.float32)
            self.scale_ = np.ones(X.shape[1], np.float32)
        spec = self._spec()
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), 0)
        self.state_ = init_state(key, self.genome_, spec, int(self.batch_size))
        self.n_steps_ = 0
        self.n_calls_ = 0

    def _spec(self) -> NetworkSpec:
        return self.network_.spec(self.n_features_in_, len(self.classes_))

    def _fit_steps(self, X: np.ndarray, y_idx: np.ndarray) -> None:
        self.n_calls_ += 1
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), self.n_calls_)
        n = X.shape[0]
        x = np.zeros((_bucket(n), X.shape[1]), np.float32)
        x[:n] = (X - self.mean_) / self.scale_
        y = np.zeros(x.shape[0], np.int32)
        y[:n] = y_idx
        state = _train(self.genome_, self._spec(), self.state_, jnp.asarray(x), jnp.asarray(y),
                       jnp.int32(n), key, jnp.int32(self.n_steps_), steps=int(self.steps),
                       batch_size=int(self.batch_size))
        self.state_ = jax.tree.map(np.asarray, state)
        self.n_steps_ += int(self.steps)

    # ------------------------------------------------------------------ the estimator API

    def fit(self, X: Any, y: Any) -> BlurClassifier:
        """Train a fresh network for ``steps`` BLUR steps on X [n_samples, n_features], y."""
        X, y = validate_data(self, X, y, reset=True, dtype=np.float32)
        check_classification_targets(y)
        classes = np.unique(y)
        self._start(X, classes)
        self._fit_steps(X, self._labels(y))
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> BlurClassifier:
        """``steps`` more BLUR steps on minibatches of (X, y); the first call starts a fresh
        network for ``classes`` (default: the labels in this y), later calls continue it."""
        first = not hasattr(self, "classes_")
        X, y = validate_data(self, X, y, reset=first, dtype=np.float32)
        check_classification_targets(y)
        if first:
            all_classes = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            self._start(X, all_classes)
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)),
                                                         self.classes_):
            raise ValueError(f"classes={np.asarray(classes).tolist()} differ from the first "
                             f"partial_fit call's {self.classes_.tolist()}")
        self._fit_steps(X, self._labels(y))
        return self

    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "state_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        x = (X - self.mean_) / self.scale_
        spec = self._spec()
        if spec.neuron_norm in ("forward", "both"):  # batch statistics: all rows at once
            return np.asarray(_logits(self.genome_, spec, self.state_, jnp.asarray(x)))
        out = []
        for start in range(0, x.shape[0], PREDICT_CHUNK):  # fixed shapes: one compile
            chunk = x[start:start + PREDICT_CHUNK]
            pad = np.zeros((PREDICT_CHUNK - chunk.shape[0], x.shape[1]), np.float32)
            logits = _logits(self.genome_, spec, self.state_,
                             jnp.asarray(np.concatenate([chunk, pad])))
            out.append(np.asarray(logits)[: chunk.shape[0]])
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the network's output state 0: [n_samples, n_classes] (float64)."""
        logits = self._logits(X).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The label with the largest output: [n_samples]."""
        logits = self._logits(X)  # checks fitted and X first
        return self.classes_[np.argmax(logits, axis=1)]
