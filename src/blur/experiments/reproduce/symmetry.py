"""``symmetry`` (paper §3.5, Fig. 2, App. A): is a BLUR rule gradient descent?

If one step is Δw = -γ ∂L/∂w for some loss L, the Jacobian J = ∂Δw/∂w = -γ ∂²L/∂w² is
symmetric (paper eq. 10). We compute J with ``jax.jacfwd`` of one BLUR step on one xor batch,
as a function of the flattened forward synapses, and measure ‖J - Jᵀ‖_F / ‖J‖_F.

* ``backprop``: the exact backprop genome (``backprop_genome`` + ``backprop_spec``). A step is
  SGD on the batch-mean cross-entropy, so J = -lr·Hessian: symmetric to float error.
* ``feedback-alignment``: a hand-built non-symmetric rule. The same genome with untied
  (random, fixed) backward synapses: the first layer's update no longer depends on the second
  layer's forward weights, while the second layer's update depends on the first's, so J has a
  zero block opposite a non-zero one.
* ``delta``: the initial genome of the ``toy2d`` preset, on that preset's network.
* ``learned``: a meta-learned K=2 genome (``--genome FILE``; by default the CMA-ES genome of
  ``results/cma-mnist14-100gen`` when the repository holds it), on its own network settings
  with one hidden layer.

App. A asks whether the rule is *generalised* GD, Δw = -γ ĝ⁻¹ ∂L/∂w for a constant
Riemannian metric ĝ (symmetric positive-definite). Then ĝ·J is symmetric: Ẑ = ĝQ̂ - (ĝQ̂)ᵀ = 0
(eq. 13) with Q̂ = J, a linear condition on ĝ. With hidden size 5 we take 100 random Q̂ (the
Jacobian at 100 random synapse inits, each on its own xor batch), and compute

1. the null space of the condition for Q̂_0 over symmetric ĝ (SVD, singular values below
   ``1e-8`` relative to the largest);
2. how many of those basis vectors satisfy eq. 13 for all 100 Q̂ (the paper's count; it
   depends on the basis), and the dimension of the joint null space (basis-free);
3. whether any ĝ in the joint null space is positive-definite (the largest smallest
   eigenvalue over combinations with coefficients in [-1, 1], by a cutting-plane method).

A rule is generalised GD only if a positive-definite ĝ exists. The analysis runs in float64
(``jax.enable_x64``) so that float error (~1e-16) is far below any real asymmetry; the
float32 asymmetry is reported beside it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.reproduce.common import (
    Outcome,
    finish,
    markdown_table,
    reproduce_preset,
    save_figure,
)
from blur.genome import Genome, backprop_genome
from blur.inner import step
from blur.network import NetworkSpec, NetworkState, backprop_spec, init_state, tie_backward
from blur.tasks import get_family
from blur.tasks.base import Batch

NULL_TOL = 1e-8
"""Singular values below this times the largest count as zero (the paper's 1e-8)."""

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_LEARNED = REPO_ROOT / "results" / "cma-mnist14-100gen" / "genome.json"


@dataclasses.dataclass(frozen=True)
class SymmetryScale:
    """Sizes of the analysis.

    Attributes:
      hidden: hidden width of the Jacobian analysis (the paper's Fig. 2: 20).
      batch_size: xor examples in the step's batch.
      metric_hidden: hidden width of the App. A test (the paper: 5).
      num_q: random Q̂ matrices of the App. A test (the paper: 100).
    """

    hidden: int = 20
    batch_size: int = 128
    metric_hidden: int = 5
    num_q: int = 100


SCALES = {
    "tiny": SymmetryScale(hidden=3, batch_size=16, metric_hidden=3, num_q=4),
    "small": SymmetryScale(),
    "paper": SymmetryScale(),  # the paper's sizes already fit a CPU
}


@dataclasses.dataclass(frozen=True)
class Case:
    """A rule to analyse: a genome and the network spec it runs on (xor: 2 inputs, 2 classes)."""

    name: str
    genome: Genome
    spec_for: Callable[[int], NetworkSpec]  # hidden width -> spec
    description: str


# ------------------------------------------------------------------ the Jacobian of one step


def _floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def forward_params(spec: NetworkSpec, state: NetworkState) -> jax.Array:
    """The free forward synapses, flattened: layer by layer, row-major over [n_in + bias, n_out]
    (and channels, unless ``single_state_synapses``, where channel 0 stands for all)."""
    parts = [w[..., 0] if spec.single_state_synapses else w for w in state.w_fwd]
    return jnp.concatenate([p.ravel() for p in parts])


def with_forward_params(spec: NetworkSpec, state: NetworkState, v: jax.Array) -> NetworkState:
    """``state`` with forward synapses from the flat vector ``v`` (inverse of
    :func:`forward_params`); tied backward synapses follow them, untied ones are kept."""
    ws, i = [], 0
    for w in state.w_fwd:
        shape = w.shape[:2] if spec.single_state_synapses else w.shape
        n = int(np.prod(shape))
        part = v[i:i + n].reshape(shape)
        i += n
        ws.append(jnp.broadcast_to(part[..., None], w.shape) if spec.single_state_synapses
                  else part)
    w_bwd = (tuple(tie_backward(spec, w) for w in ws) if spec.symmetric_synapses
             else state.w_bwd)
    return state.replace(w_fwd=tuple(ws), w_bwd=w_bwd)  # type: ignore[attr-defined]


def step_jacobian(
    genome: Genome, spec: NetworkSpec, state: NetworkState, batch: Batch
) -> jax.Array:
    """J [n, n], J[k, m] = ∂Δw_k/∂w_m for one BLUR step (paper eq. 10), with ``jax.jacfwd``.

    Δw is the change of the flattened forward synapses (:func:`forward_params`, n of them) after
    one :func:`blur.inner.step` on ``batch`` (x [B, n_0], y [B]). Computed in the dtype of
    ``state``'s synapses.
    """

    def delta(v: jax.Array) -> jax.Array:
        new, _ = step(genome, spec, with_forward_params(spec, state, v), batch)
        return forward_params(spec, new) - v

    return jax.jacfwd(delta)(forward_params(spec, state))


_step_jacobian_jit = jax.jit(step_jacobian, static_argnames="spec")


def asymmetry(J: np.ndarray) -> float:
    """‖J - Jᵀ‖_F / ‖J‖_F (0 for a gradient-descent step)."""
    J = np.asarray(J, np.float64)
    return float(np.linalg.norm(J - J.T) / np.linalg.norm(J))


def case_jacobian(
    case: Case, hidden: int, batch_size: int, key: jax.Array, dtype: Any = jnp.float64
) -> np.ndarray:
    """The Jacobian of ``case`` at a fresh synapse init (key) on one xor batch, in ``dtype``."""
    spec = case.spec_for(hidden)
    k_init, k_data = jax.random.split(key)
    batch = jax.tree.map(lambda a: a[0], get_family("xor").sample(k_data, 1, batch_size).support)
    state = init_state(k_init, case.genome, spec, batch_size)
    with jax.enable_x64(dtype == jnp.float64):
        J = _step_jacobian_jit(
            _floats(case.genome, dtype), spec, _floats(state, dtype), _floats(batch, dtype)
        )
        return np.asarray(J, np.float64)


# ------------------------------------------------------------------ App. A: generalised GD


def symmetric_basis(n: int) -> np.ndarray:
    """An orthonormal basis of symmetric n x n matrices, [n(n+1)/2, n, n]."""
    rows, cols = np.triu_indices(n)
    basis = np.zeros((rows.size, n, n))
    idx = np.arange(rows.size)
    basis[idx, rows, cols] = 1.0
    basis[idx, cols, rows] = 1.0
    basis[rows == cols] /= 1.0  # diagonal: one entry of 1
    basis[rows != cols] /= np.sqrt(2.0)
    return basis


def metric_constraints(Q: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """A [n(n-1)/2, m]: A @ c is the strict upper triangle of ĝQ - (ĝQ)ᵀ for ĝ = Σ c_i basis_i
    (paper eq. 13; ĝQ - (ĝQ)ᵀ is antisymmetric, so its upper triangle says it all)."""
    n = Q.shape[0]
    Z = basis @ Q - np.swapaxes(basis @ Q, 1, 2)  # [m, n, n]
    rows, cols = np.triu_indices(n, 1)
    return Z[:, rows, cols].T


def null_space(A: np.ndarray, tol: float = NULL_TOL) -> np.ndarray:
    """Orthonormal columns spanning {c: A c ≈ 0}: singular values < tol x the largest."""
    _, s, vt = np.linalg.svd(A, full_matrices=True)
    s_full = np.zeros(vt.shape[0])
    s_full[: s.size] = s
    scale = s.max() if s.size and s.max() > 0 else 1.0
    return vt[s_full < tol * scale].T


def best_min_eigenvalue(mats: np.ndarray, iters: int = 300) -> float:
    """λ_min / max|λ| of the combination Σ c_i M_i (|c_i| ≤ 1) with the largest λ_min.

    > 0 iff some combination is positive-definite. λ_min(Σ c_i M_i) is concave in c, so
    Kelley's cutting-plane method (one linear programme per step, a cut from the current
    smallest eigenvector) finds its maximum over the box. ``mats`` [d, n, n] symmetric; -inf
    when d = 0.
    """
    from scipy.optimize import linprog

    d, n = mats.shape[0], mats.shape[1] if mats.ndim == 3 else 0
    if d == 0:
        return float("-inf")
    cuts = [np.einsum("k,ikl,l->i", e, mats, e) for e in np.eye(n)]  # λ_min <= each diagonal
    best_low, best_c = -np.inf, np.zeros(d)
    for _ in range(iters):
        res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.c_[-np.array(cuts), np.ones(len(cuts))],
                      b_ub=np.zeros(len(cuts)), bounds=[(-1, 1)] * d + [(None, None)])
        c, upper = res.x[:d], -res.fun
        w, V = np.linalg.eigh(np.tensordot(c, mats, axes=1))
        if w[0] > best_low:
            best_low, best_c = w[0], c
        if upper - best_low < 1e-10:
            break
        v = V[:, 0]
        cuts.append(np.einsum("k,ikl,l->i", v, mats, v))
    w = np.linalg.eigvalsh(np.tensordot(best_c, mats, axes=1))
    return float(w[0] / max(np.abs(w).max(), 1e-300))


@dataclasses.dataclass
class MetricTest:
    """Outcome of the App. A test for one rule."""

    num_weights: int
    num_q: int
    null_dim_first: int  # null space of eq. 13 for Q̂_0 (paper: 265)
    basis_passing_all: int  # its basis vectors satisfying eq. 13 for every Q̂ (paper: 4)
    joint_null_dim: int  # the null space for all Q̂ together (basis-free)
    best_min_eig: float  # > 0: a positive-definite metric exists in the joint null space
    identity_residual: float  # max over Q̂ of ‖Q̂ - Q̂ᵀ‖/‖Q̂‖ (ĝ = I: plain GD)

    @property
    def generalised_gd(self) -> bool:
        return self.best_min_eig > 1e-6


def metric_test(qs: np.ndarray, tol: float = NULL_TOL) -> MetricTest:
    """App. A's test on Jacobians ``qs`` [N, n, n] (see the module docstring)."""
    n = qs.shape[1]
    basis = symmetric_basis(n)
    N0 = null_space(metric_constraints(qs[0], basis), tol)
    passing = np.ones(N0.shape[1], bool)
    joint = N0
    for Q in qs:
        A = metric_constraints(Q, basis)
        scale = np.linalg.norm(A, 2) if A.size else 1.0
        passing &= np.linalg.norm(A @ N0, axis=0) < tol * scale * 10
        if joint.shape[1]:
            C = A @ joint
            _, s, vt = np.linalg.svd(C, full_matrices=True)
            s_full = np.zeros(vt.shape[0])
            s_full[: s.size] = s
            joint = joint @ vt[s_full < tol * scale].T
    mats = np.tensordot(joint.T, basis, axes=1)  # [d, n, n]
    ident = max(asymmetry(Q) for Q in qs)
    return MetricTest(
        num_weights=n, num_q=int(qs.shape[0]), null_dim_first=int(N0.shape[1]),
        basis_passing_all=int(passing.sum()), joint_null_dim=int(joint.shape[1]),
        best_min_eig=best_min_eigenvalue(mats), identity_residual=ident,
    )


def case_metric_test(case: Case, scale: SymmetryScale, key: jax.Array) -> MetricTest:
    """App. A on ``case`` at ``scale.metric_hidden``: Q̂ at ``num_q`` random inits and batches."""
    keys = jax.random.split(key, scale.num_q)
    qs = np.stack([case_jacobian(case, scale.metric_hidden, scale.batch_size, k) for k in keys])
    return metric_test(qs)


# ------------------------------------------------------------------ the rules analysed


def default_cases(genome_file: Path | None = None) -> list[Case]:
    """backprop, feedback alignment, the toy2d preset's initial genome, and a learned genome
    (``genome_file``, else :data:`DEFAULT_LEARNED` when present)."""
    bp = backprop_genome(0.1)

    def bp_spec(h: int) -> NetworkSpec:
        return backprop_spec((2, h, 2), "sigmoid", feedback="softmax_error", hebbian_reduce="mean")

    cases = [
        Case("backprop", bp, bp_spec,
             "backprop genome, sigmoid, softmax-error feedback: one step = one SGD step"),
        Case("feedback-alignment", bp,
             lambda h: bp_spec(h).replace(symmetric_synapses=False),
             "the backprop genome with untied random backward synapses (hand-built)"),
    ]
    preset = reproduce_preset("toy2d")
    from blur.experiments.runs import initial_genome

    delta = initial_genome(preset, 2, jax.random.PRNGKey(0))
    cases.append(Case("delta", delta,
                      lambda h: dataclasses.replace(preset.network, hidden=(h,)).spec(2, 2),
                      "the toy2d preset's initial (delta) genome on its network"))
    path = genome_file or (DEFAULT_LEARNED if DEFAULT_LEARNED.exists() else None)
    if path is not None:
        cases.append(learned_case(Path(path)))
    return cases


def learned_case(path: Path) -> Case:
    """A genome file as a case, on its own network settings with one hidden layer."""
    from blur.experiments.evaluation import contender_from_file

    c = contender_from_file(path, "learned")
    if c.network.num_states != 2:
        raise ValueError(
            f"{path}: the symmetry analysis is for K=2 genomes (paper Fig. 2); this one has "
            f"K={c.network.num_states}"
        )
    if c.network.per_layer_genome and c.genome.num_layers != 2:
        raise ValueError(
            f"{path}: a per-layer genome for {c.genome.num_layers} synapse layers cannot run "
            "on one hidden layer; give a shared genome or a two-layer one"
        )
    net = c.network
    return Case("learned", c.genome, lambda h: dataclasses.replace(net, hidden=(h,)).spec(2, 2),
                f"meta-learned genome {path.parent.name}/{path.name} on its network")


# ------------------------------------------------------------------ the experiment


def plot(cases: list[Case], jacobians: list[np.ndarray], path: Path) -> Path:
    """One row per rule: J, and log10(|J - Jᵀ| / max|J|) as in the paper's Fig. 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(cases), 2, figsize=(9, 4 * len(cases)), squeeze=False)
    for (ax_j, ax_a), case, J in zip(axes, cases, jacobians, strict=True):
        lim = float(np.abs(J).max()) or 1.0
        im = ax_j.imshow(J, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax_j.set_title(f"{case.name}: J = ∂Δw/∂w", fontsize=9)
        fig.colorbar(im, ax=ax_j, fraction=0.046)
        rel = np.abs(J - J.T) / lim
        im = ax_a.imshow(np.log10(np.maximum(rel, 1e-12)), cmap="viridis", vmin=-12, vmax=0,
                         interpolation="nearest")
        ax_a.set_title(f"log10(|J - Jᵀ| / max|J|), ‖J-Jᵀ‖/‖J‖ = {asymmetry(J):.2e}",
                       fontsize=9)
        fig.colorbar(im, ax=ax_a, fraction=0.046)
        for ax in (ax_j, ax_a):
            ax.set_xlabel("w_m (flattened forward synapses)", fontsize=8)
            ax.set_ylabel("Δw_k", fontsize=8)
    return save_figure(fig, path, dpi=80)


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    genome: str | Path | None = None, rules: tuple[str, ...] | None = None,
) -> Outcome:
    """Run the analysis for every case and write ``symmetry.png``, ``table.md``/``.json``.

    Args:
      genome: a K=2 genome file for the ``learned`` case.
      rules: the cases to run (default all of :func:`default_cases`).
    """
    start = time.perf_counter()
    sizes = SCALES[scale]
    cases = default_cases(Path(genome) if genome is not None else None)
    if rules:
        unknown = sorted(set(rules) - {c.name for c in cases})
        if unknown:
            raise ValueError(f"unknown symmetry rules {unknown}; choose from "
                             f"{[c.name for c in cases]}")
        cases = [c for c in cases if c.name in rules]
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.PRNGKey(seed)
    rows, jacobians = [], []
    for i, case in enumerate(cases):
        k = jax.random.fold_in(key, i)
        J = case_jacobian(case, sizes.hidden, sizes.batch_size, k)
        J32 = case_jacobian(case, sizes.hidden, sizes.batch_size, k, jnp.float32)
        test = case_metric_test(case, sizes, jax.random.fold_in(k, 1))
        jacobians.append(J)
        rows.append({
            "case": case.name,
            "description": case.description,
            "num_weights": int(J.shape[0]),
            "asymmetry": asymmetry(J),
            "asymmetry_float32": asymmetry(J32),
            "max_abs_asymmetry_rel": float(np.abs(J - J.T).max() / np.abs(J).max()),
            "jacobian_norm": float(np.linalg.norm(J)),
            "metric_test": {
                **dataclasses.asdict(test),
                "best_min_eig": test.best_min_eig if np.isfinite(test.best_min_eig) else None,
                "generalised_gd": test.generalised_gd,
            },
        })
    figure = plot(cases, jacobians, out / "symmetry.png")
    head = ["rule", "weights", "‖J-Jᵀ‖/‖J‖ (f64)", "(f32)", "App. A: n",
            "null dim Q̂₀", "basis ok for all Q̂", "joint null dim", "best λmin / max abs λ",
            "generalised GD?"]
    md_rows = []
    for r in rows:
        m = r["metric_test"]
        md_rows.append([
            r["case"], r["num_weights"], f"{r['asymmetry']:.2e}", f"{r['asymmetry_float32']:.2e}",
            m["num_weights"], m["null_dim_first"], m["basis_passing_all"], m["joint_null_dim"],
            "none" if m["joint_null_dim"] == 0 else f"{m['best_min_eig']:.3g}",
            "yes" if m["generalised_gd"] else "no",
        ])
    markdown = (
        f"Symmetry of one step (hidden {sizes.hidden}, xor batch {sizes.batch_size}) and the "
        f"App. A metric test (hidden {sizes.metric_hidden}, {sizes.num_q} random Q̂, null "
        f"threshold {NULL_TOL:g} relative).\n\n" + markdown_table(head, md_rows)
    )
    table = {"scale": dataclasses.asdict(sizes), "null_tol": NULL_TOL, "rows": rows}
    options = {"genome": str(genome) if genome is not None else None,
               "rules": [c.name for c in cases]}
    return finish(out, "symmetry", scale, seed, start, [figure], table, markdown, options, command)
