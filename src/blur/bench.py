"""``blur bench``: a benchmark suite whose every figure is a same-process, interleaved ratio.

Sections (``--sections``, default all):

* ``inner``: a BLUR inner step (forward, feedback, backward, Hebbian, with its metrics) inside
  a jitted ``blur.unroll`` of T=20 steps, per step, against an SGD step (``jax.grad`` of the
  softmax cross-entropy of the ReLU MLP of :mod:`blur.baselines` and a parameter update)
  inside a jitted ``lax.scan`` of 20, per step; and one jitted ``blur.step`` call against one
  jitted SGD step; on C1 2-20-2 K=2 B=512,
  C2 784-256-10 K=4 B=128 and C3 196-512-10 K=2 B=128, with per-state normalisation on both
  passes. Also the achieved GFLOP/s of the BLUR step, counting 3 x 2·B·Σ(n_in+1)·n_out·K
  FLOPs per step, against a large jitted matmul timed in the same rounds.
* ``meta``: the meta-gradient ``jit(grad(query cross-entropy after blur.unroll))`` w.r.t. the
  genome on C2 (asymmetric, K=4) at T=10 and T=50, without and with ``jax.checkpoint``, in
  jitted SGD steps, and the peak memory of the compiled executable
  (``compiled.memory_analysis()``: arguments + outputs + temporaries - aliased).
* ``mnist10``: one ``outer.gradient.meta_step`` of the ``mnist10`` preset as shipped
  (4 runs, 3 tasks, T=10 and T=20), in seconds and in jitted C2 SGD steps.
* ``evolution``: one CMA-ES generation of ``cma-mnist14`` as ``blur evolve`` runs it
  (population 80, 15 training and 20 evaluation batches of 128, a synapse init per candidate,
  chunks of 8: ask, ``score_population``, tell), in seconds, genome-steps/s
  (population x 15 inner steps per second) and jitted C3 SGD steps.
* ``scaling``: ``blur.unroll`` time on C2 against T (10, 50, 200, 1000) and ``score_population``
  of ``cma-mnist14`` against the population (1, 8, 80, 256), per step / per genome.

How a figure is measured: every timed function is jitted and compiled first, then called
``--warmup`` times untimed; then the sides of a comparison are called in turn (A, B, A, B, ...)
for ``--rounds`` rounds, each call waited for with ``block_until_ready``. A ratio is the
median of the per-round ratios A_i / B_i, and its spread is their inter-quartile range, so
slow drift of a shared machine cancels. Next to a long workload (meta-gradient, mnist10,
evolution, scaling), the SGD side of a round is a burst of ``SGD_BURST`` waited-for calls
(:func:`sgd_unit_fn`): a single call there runs cold and reads 2-3x slow. Times are medians
too. Targets (issue 11) are printed next to their figures; nothing is hard-coded except the
targets themselves.

Output: a table on stdout, ``--json`` (every figure and its raw per-round samples) and
``--markdown`` (``benchmarks/RESULTS.md`` is written by ``blur bench --markdown``).

Usage:
  blur bench                                   # everything (about 10 minutes on 2 cores)
  blur bench --quick                           # fewer rounds, smaller scaling sweep
  blur bench --sections inner meta --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import blur
from blur._allocator import allocator_info
from blur.baselines import init_mlp, mlp_loss

SECTIONS = ("inner", "meta", "mnist10", "evolution", "scaling")


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple[int, ...]
    num_states: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.name} {'-'.join(map(str, self.sizes))} K={self.num_states} B={self.batch}"

    @property
    def flops(self) -> float:
        """FLOPs of one BLUR step: 3 passes x 2·B·Σ(n_in+1)·n_out·K (issue 11)."""
        pairs = zip(self.sizes[:-1], self.sizes[1:], strict=True)
        return 3 * 2 * self.batch * sum((a + 1) * b for a, b in pairs) * self.num_states


CONFIGS = {
    "C1": Config("C1", (2, 20, 2), 2, 512),
    "C2": Config("C2", (784, 256, 10), 4, 128),
    "C3": Config("C3", (196, 512, 10), 2, 128),
}

TARGETS = {
    "inner_C2_ratio_per_K": ("<=", 1.2),
    "meta_C2_T10_sgd_steps": ("<=", 160.0),
    "meta_C2_T50_remat_peak_GB": ("<=", 2.0),
    "gflops_C2_fraction_of_matmul": (">=", 0.40),
}
"""Issue 11's targets that one run can check on its own (the 'x times faster than today'
targets need today's figure from the same sitting, which this module cannot know)."""


# ----------------------------------------------------------------------------- timing


def _call(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def interleave(
    fns: dict[str, Callable[[], Any]], warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Per-round wall times (seconds) of each function, called in turn every round.

    Every function is called ``warmup`` times first (the first call compiles), untimed.
    """
    for _ in range(warmup):
        for fn in fns.values():
            jax.block_until_ready(fn())
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(_call(fn))
    return samples


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    q = np.percentile(np.asarray(values, np.float64), [25, 50, 75])
    return float(q[0]), float(q[1]), float(q[2])


def ratio_stats(a: Sequence[float], b: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
    """Median and inter-quartile range of the per-round ratios scale·a_i/b_i."""
    r = [scale * x / y for x, y in zip(a, b, strict=True)]
    lo, med, hi = quartiles(r)
    return {"median": med, "q25": lo, "q75": hi, "samples": r}


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms over ``repeats`` waited-for calls after ``warmup``."""
    return 1e3 * statistics.median(interleave({"f": fn}, warmup, repeats)["f"])


def _check(name: str, value: float) -> str:
    op, bound = TARGETS[name]
    ok = value <= bound if op == "<=" else value >= bound
    return f"target {op} {bound:g}: {'MET' if ok else 'NOT MET'}"


# ----------------------------------------------------------------------- shared pieces


def blur_spec(cfg: Config, symmetric: bool) -> blur.NetworkSpec:
    """A realistic BLUR network: per-state normalisation on both passes, multi-state synapses,
    asymmetric unless ``symmetric`` (then the backward weights are tied, one Hebbian update)."""
    return blur.NetworkSpec(
        cfg.sizes, cfg.num_states, neuron_norm="both", symmetric_synapses=symmetric
    )


def random_batch(key: jax.Array, shape: tuple[int, ...], n_in: int, n_out: int) -> blur.Batch:
    kx, ky = jax.random.split(key)
    return blur.Batch(
        x=jax.random.normal(kx, (*shape, n_in), jnp.float32),
        y=jax.random.randint(ky, shape, 0, n_out),
    )


@jax.jit
def sgd_step(
    params: list[tuple[jax.Array, jax.Array]], x: jax.Array, y: jax.Array
) -> list[tuple[jax.Array, jax.Array]]:
    grads = jax.grad(mlp_loss)(params, x, y)
    return jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)


@jax.jit
def sgd_scan(
    params: list[tuple[jax.Array, jax.Array]], xs: jax.Array, ys: jax.Array
) -> list[tuple[jax.Array, jax.Array]]:
    """T SGD steps in one ``lax.scan`` (xs [T, B, n_0], ys [T, B])."""

    def body(p: Any, xy: tuple[jax.Array, jax.Array]) -> tuple[Any, None]:
        return sgd_step(p, *xy), None

    return jax.lax.scan(body, params, (xs, ys))[0]


def sgd_scan_fn(cfg: Config, T: int) -> Callable[[], Any]:
    """T jitted SGD steps in one scan: the baseline of :func:`blur_unroll_fn`."""
    params = init_mlp(jax.random.key(3), cfg.sizes)
    batches = random_batch(jax.random.key(0), (T, cfg.batch), cfg.sizes[0], cfg.sizes[-1])
    return lambda: sgd_scan(params, batches.x, batches.y)


def blur_unroll_fn(cfg: Config, symmetric: bool, T: int) -> Callable[[], Any]:
    """T BLUR steps in one jitted ``blur.unroll`` (a ``lax.scan``, metrics included)."""
    spec = blur_spec(cfg, symmetric)
    genome = blur.random_genome(jax.random.key(1), cfg.num_states)
    state = blur.init_state(jax.random.key(2), genome, spec, cfg.batch)
    batches = random_batch(jax.random.key(0), (T, cfg.batch), cfg.sizes[0], cfg.sizes[-1])
    unroll = jax.jit(blur.unroll, static_argnums=1)
    return lambda: unroll(genome, spec, state, batches)


def sgd_fn(cfg: Config) -> Callable[[], Any]:
    """One jitted SGD step on cfg's MLP shape and batch size (the unit of every ratio)."""
    params = init_mlp(jax.random.key(3), cfg.sizes)
    batch = random_batch(jax.random.key(0), (cfg.batch,), cfg.sizes[0], cfg.sizes[-1])
    return lambda: sgd_step(params, batch.x, batch.y)


SGD_BURST = 20


def sgd_unit_fn(cfg: Config) -> Callable[[], Any]:
    """``SGD_BURST`` jitted SGD step calls in a row, each waited for: one timed sample of the
    unit "jitted SGD steps" next to a long workload (time / ``SGD_BURST`` per call).

    A single SGD call timed right after a workload of 0.2 s or more runs cold: on the project's
    2-core machine 2.9 ms against 1.06 ms warm (C2), which made the long rows' ratios read
    2-3x too low. In a burst, all but the first call are warm.
    """
    step = sgd_fn(cfg)

    def burst() -> Any:
        out = None
        for _ in range(SGD_BURST):
            out = jax.block_until_ready(step())
        return out

    return burst


def blur_step_fn(cfg: Config, symmetric: bool) -> Callable[[], Any]:
    spec = blur_spec(cfg, symmetric)
    genome = blur.random_genome(jax.random.key(1), cfg.num_states)
    state = blur.init_state(jax.random.key(2), genome, spec, cfg.batch)
    batch = random_batch(jax.random.key(0), (cfg.batch,), cfg.sizes[0], cfg.sizes[-1])
    step = jax.jit(blur.step, static_argnums=1)
    return lambda: step(genome, spec, state, batch)


def matmul_fn(n: int) -> tuple[Callable[[], Any], float]:
    """A jitted n x n @ n x n float32 matmul (2n³ FLOPs), this machine's practical peak."""
    a = jax.random.normal(jax.random.key(4), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(5), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    return (lambda: mm(a, b)), 2.0 * n**3


def peak_bytes(compiled: Any) -> int | None:
    """Peak memory of a compiled executable: arguments + outputs + temporaries - aliased."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not report it
        return None
    if m is None:
        return None
    return int(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


# ----------------------------------------------------------------------------- sections


def bench_inner(opts: argparse.Namespace) -> dict[str, Any]:
    """Inner step C1-C3 (asymmetric and symmetric) vs SGD, and GFLOP/s vs a matmul.

    Two measures per row: a step inside the training loop (``blur.unroll`` of T steps vs a
    ``lax.scan`` of T SGD steps, per step; what meta-training and evolution run), and one
    jitted ``blur.step`` call vs one jitted SGD step (which also pays the conversion of the
    public channel-last state to the rules' channel-first layout and back).
    """
    rows = []
    T = opts.inner_steps
    mm, mm_flops = matmul_fn(opts.matmul_size)
    for name in opts.configs:
        cfg = CONFIGS[name]
        for symmetric in (False, True):
            fns = {
                "unroll": blur_unroll_fn(cfg, symmetric, T),
                "sgd_scan": sgd_scan_fn(cfg, T),
                "step": blur_step_fn(cfg, symmetric),
                "sgd": sgd_fn(cfg),
            }
            if not symmetric:
                fns["matmul"] = mm
            s = interleave(fns, opts.warmup, opts.rounds)
            ratio = ratio_stats(s["unroll"], s["sgd_scan"])
            row: dict[str, Any] = {
                "config": name,
                "label": cfg.label,
                "synapses": "symmetric" if symmetric else "asymmetric",
                "K": cfg.num_states,
                "T": T,
                "blur_ms": 1e3 * statistics.median(s["unroll"]) / T,
                "sgd_ms": 1e3 * statistics.median(s["sgd_scan"]) / T,
                "ratio": ratio,
                "ratio_per_K": ratio_stats(s["unroll"], s["sgd_scan"], 1.0 / cfg.num_states),
                "call_blur_ms": 1e3 * statistics.median(s["step"]),
                "call_sgd_ms": 1e3 * statistics.median(s["sgd"]),
                "call_ratio_per_K": ratio_stats(s["step"], s["sgd"], 1.0 / cfg.num_states),
            }
            if not symmetric:
                # achieved / peak per round: (flops·T / t_unroll) / (mm_flops / t_mm)
                frac = ratio_stats(s["matmul"], s["unroll"], T * cfg.flops / mm_flops)
                row["gflops"] = T * cfg.flops / statistics.median(s["unroll"]) / 1e9
                row["matmul_gflops"] = mm_flops / statistics.median(s["matmul"]) / 1e9
                row["fraction_of_matmul"] = frac
            rows.append(row)
            line = (
                f"  {cfg.label:<26}{row['synapses']:<11} BLUR {row['blur_ms']:7.3f} ms/step  "
                f"SGD {row['sgd_ms']:6.3f}  ratio {ratio['median']:5.2f} "
                f"[{ratio['q25']:.2f}-{ratio['q75']:.2f}]  /K {row['ratio_per_K']['median']:4.2f}"
                f" (one call: /K {row['call_ratio_per_K']['median']:4.2f})"
            )
            if name == "C2" and not symmetric:
                line += f"  ({_check('inner_C2_ratio_per_K', row['ratio_per_K']['median'])})"
            print(line, flush=True)
            if not symmetric:
                f = row["fraction_of_matmul"]["median"]
                extra = (
                    f"  ({_check('gflops_C2_fraction_of_matmul', f)})" if name == "C2" else ""
                )
                print(
                    f"  {'':<37}{row['gflops']:7.1f} GFLOP/s, matmul {opts.matmul_size}^3 "
                    f"{row['matmul_gflops']:6.1f} GFLOP/s: {100 * f:5.1f}% of it{extra}",
                    flush=True,
                )
    return {"rows": rows, "matmul_size": opts.matmul_size, "T": T}


def meta_loss_fn(
    cfg: Config, T: int, remat: bool = False
) -> tuple[Callable[[blur.Genome], jax.Array], blur.Genome]:
    """The query cross-entropy after a T-step unroll on ``cfg`` (asymmetric, normalisation on
    both passes) as a function of the genome, and the genome it is taken at."""
    spec = blur_spec(cfg, symmetric=False)
    genome = blur.random_genome(jax.random.key(1), cfg.num_states)
    support = random_batch(jax.random.key(6), (T, cfg.batch), cfg.sizes[0], cfg.sizes[-1])
    query = random_batch(jax.random.key(7), (cfg.batch,), cfg.sizes[0], cfg.sizes[-1])
    key = jax.random.key(2)

    def loss(g: blur.Genome) -> jax.Array:
        state = blur.init_state(key, g, spec, cfg.batch)
        final, _ = blur.unroll(g, spec, state, support, remat=remat)
        logits = blur.predict(g, spec, final, query.x)
        return blur.inner.cross_entropy(logits, query.y)

    return loss, genome


def meta_grad_fn(
    cfg: Config, T: int, remat: bool
) -> tuple[Callable[[], Any], int | None, float]:
    """jit(grad) of the query cross-entropy after a T-step C2 unroll; (call, peak bytes,
    compile seconds)."""
    loss, genome = meta_loss_fn(cfg, T, remat)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.grad(loss)).lower(genome).compile()
    compile_s = time.perf_counter() - t0
    return (lambda: compiled(genome)), peak_bytes(compiled), compile_s


def bench_meta(opts: argparse.Namespace) -> dict[str, Any]:
    """Meta-gradient on C2 at T=10 and T=50, plain and with jax.checkpoint."""
    cfg = CONFIGS["C2"]
    sgd = sgd_unit_fn(cfg)
    rows = []
    for T in (10, 50):
        for remat in (False, True):
            fn, peak, compile_s = meta_grad_fn(cfg, T, remat)
            rounds = max(3, opts.rounds // (2 if T == 10 else 6))
            s = interleave({"meta": fn, "sgd": sgd}, 1, rounds)
            r = ratio_stats(s["meta"], s["sgd"], SGD_BURST)
            row = {
                "T": T,
                "remat": remat,
                "seconds": statistics.median(s["meta"]),
                "sgd_steps": r,
                "peak_bytes": peak,
                "compile_s": compile_s,
            }
            rows.append(row)
            peak_s = "n/a" if peak is None else f"{peak / 2**20:8.1f} MiB"
            line = (
                f"  C2 T={T:<3} {'checkpoint' if remat else 'plain':<11}"
                f"{1e3 * row['seconds']:8.1f} ms = {r['median']:6.1f} SGD steps "
                f"[{r['q25']:.1f}-{r['q75']:.1f}]  peak {peak_s}"
            )
            if T == 10:  # both ways of taking it; the presets ship with checkpointing
                line += f"  ({_check('meta_C2_T10_sgd_steps', r['median'])})"
            if T == 50 and remat and peak is not None:
                line += f"  ({_check('meta_C2_T50_remat_peak_GB', peak / 1e9)})"
            print(line, flush=True)
    return {"rows": rows}


def _family_or_synthetic(texts: Sequence[str]) -> tuple[Any, bool]:
    """The training family of a preset; a synthetic stand-in of the same shape (random
    28x28 images, 10 classes) when the data are not imported. Returns (family, synthetic)."""
    from blur.experiments.config import TaskConfig, build_train_family, parse_family
    from blur.tasks import DataNotFoundError, ImageClassification, Mixture

    try:
        return build_train_family(TaskConfig(train=tuple(texts), validate=())), False
    except DataNotFoundError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (20000, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, 20000)
        fams = []
        for text in texts:
            name, options = parse_family(text)
            _, _, classes = name.partition(":")
            fams.append(
                ImageClassification.from_arrays(
                    images,
                    labels,
                    name=f"synthetic {text}",
                    classes=classes or None,
                    resolution=options.get("resolution"),
                )
            )
        return (fams[0] if len(fams) == 1 else Mixture(tuple(fams), name="synthetic")), True


@dataclasses.dataclass
class Mnist10Setup:
    """What one ``gradient.meta_step`` of the mnist10 preset at unroll length T takes."""

    state: Any
    key: jax.Array
    spec: blur.NetworkSpec
    family: Any
    cfg: Any
    optimizer: Any
    genomes: Any
    num_runs: int
    synthetic: bool


def mnist10_setup(T: int, config: Any = None) -> Mnist10Setup:
    """The mnist10 preset's runs, optimiser and tasks as the trainer builds them, at T
    (``config``: a variant of the preset's ``RunConfig`` instead of the preset itself)."""
    from blur.experiments.config import get_preset
    from blur.experiments.runs import initial_genome
    from blur.outer import gradient

    config = get_preset("mnist10") if config is None else config
    family, synthetic = _family_or_synthetic(config.tasks.train)
    spec = config.network.spec_for(family)
    gs = config.gradient
    genome0 = initial_genome(config, spec.num_layers, jax.random.PRNGKey(0))
    genomes = jax.tree_util.tree_map(lambda x: jnp.stack([x] * gs.num_runs), genome0)
    optimizer = gradient.make_optimizer(gs.learning_rate, gs.clip_norm, gs.scale_by_parameter)
    state = gradient.init(genomes, optimizer)
    cfg = dataclasses.replace(config.objective, num_steps=T)  # the curriculum's T, as the trainer
    return Mnist10Setup(state, jax.random.PRNGKey(1), spec, family, cfg, optimizer, genomes,
                        gs.num_runs, synthetic)


def mnist10_fn(T: int) -> tuple[Callable[[], Any], bool]:
    """One ``gradient.meta_step`` of the mnist10 preset at unroll length T (as shipped)."""
    from blur.outer import gradient

    m = mnist10_setup(T)
    step = partial(gradient.meta_step, spec=m.spec, family=m.family, cfg=m.cfg,
                   optimizer=m.optimizer)
    return (lambda: step(m.state, m.key)), m.synthetic


def bench_mnist10(opts: argparse.Namespace) -> dict[str, Any]:
    sgd = sgd_unit_fn(CONFIGS["C2"])
    rows = []
    for T in opts.mnist10_steps:
        fn, synthetic = mnist10_fn(T)
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        first = time.perf_counter() - t0
        rounds = max(3, opts.rounds // 6)
        s = interleave({"meta": fn, "sgd": sgd}, 1, rounds)
        r = ratio_stats(s["meta"], s["sgd"], SGD_BURST)
        row = {
            "T": T,
            "seconds": statistics.median(s["meta"]),
            "seconds_q": quartiles(s["meta"]),
            "sgd_steps": r,
            "first_call_s": first,
            "synthetic_data": synthetic,
        }
        rows.append(row)
        print(
            f"  mnist10 meta-step T={T:<3}{row['seconds']:7.3f} s "
            f"[{row['seconds_q'][0]:.3f}-{row['seconds_q'][2]:.3f}] = {r['median']:7.0f} C2 SGD "
            f"steps  (first call incl. compile {first:.1f} s)"
            + ("  [synthetic data]" if synthetic else ""),
            flush=True,
        )
    return {"rows": rows}


@dataclasses.dataclass
class EvolutionSetup:
    """What a cma-mnist14 generation takes, as ``blur evolve`` builds it."""

    config: Any
    family: Any
    spec: blur.NetworkSpec
    x0: np.ndarray
    unravel: Any
    key: jax.Array
    synthetic: bool
    stds: np.ndarray | None  # the preset's per-value first-step multipliers (None: all 1)


def evolution_setup() -> EvolutionSetup:
    """The cma-mnist14 preset's task family, network and searched subspace, taken from the
    :class:`~blur.outer.evolution.EvolutionTrainer` that ``blur evolve`` builds."""
    from blur.experiments.config import get_preset
    from blur.experiments.runs import initial_genome
    from blur.outer.evolution import EvolutionTrainer

    config = get_preset("cma-mnist14")
    family, synthetic = _family_or_synthetic(config.tasks.train)
    spec = config.network.spec_for(family)
    genome0 = initial_genome(config, spec.num_layers, jax.random.PRNGKey(0))
    trainer = EvolutionTrainer(genome=genome0, spec=spec, family=family,
                               objective=config.objective, cma=config.evolution.cma)
    return EvolutionSetup(config, family, spec, trainer.x0, trainer.unravel,
                          jax.random.PRNGKey(1), synthetic, trainer.stds)


def evolution_fn(popsize: int) -> tuple[Callable[[], Any], bool, int]:
    """One CMA-ES generation of cma-mnist14 as ``blur evolve`` runs it (ask, score_population
    with the preset's searched subspace, fresh-init and chunk settings, tell) at ``popsize``."""
    from blur.outer.evolution import CMAES, fitness_from_aux, score_population

    e = evolution_setup()
    ev = e.config.evolution
    es = CMAES(e.x0, dataclasses.replace(ev.cma, popsize=max(popsize, 2)), e.stds)
    cfg = e.config.objective  # T = 15 training steps, 20 query batches of 128

    def generation() -> np.ndarray:
        X = es.ask()[:popsize]
        aux = score_population(
            X.astype(np.float32), e.key, unravel=e.unravel, spec=e.spec, family=e.family,
            cfg=cfg, fresh_init=ev.cma.fresh_init, chunk_size=ev.cma.chunk_size,
        )
        fitness = fitness_from_aux(aux, ev.fitness)
        if popsize == es.popsize:
            es.tell(X, -fitness)
        return fitness

    return generation, e.synthetic, cfg.num_steps


def bench_evolution(opts: argparse.Namespace) -> dict[str, Any]:
    sgd = sgd_unit_fn(CONFIGS["C3"])
    P = 80
    fn, synthetic, T = evolution_fn(P)
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    s = interleave({"gen": fn, "sgd": sgd}, 1, max(3, opts.rounds // 8))
    r = ratio_stats(s["gen"], s["sgd"], SGD_BURST)
    sec = statistics.median(s["gen"])
    row = {
        "popsize": P,
        "train_steps": T,
        "seconds": sec,
        "seconds_q": quartiles(s["gen"]),
        "genome_steps_per_s": P * T / sec,
        "sgd_steps": r,
        "first_call_s": first,
        "synthetic_data": synthetic,
    }
    print(
        f"  cma-mnist14 generation P={P}: {sec:6.2f} s [{row['seconds_q'][0]:.2f}-"
        f"{row['seconds_q'][2]:.2f}], {row['genome_steps_per_s']:6.0f} genome-steps/s, "
        f"{r['median']:7.0f} C3 SGD steps [{r['q25']:.0f}-{r['q75']:.0f}]"
        + ("  [synthetic data]" if synthetic else ""),
        flush=True,
    )
    return {"rows": [row]}


def _linearity(xs: Sequence[int], times: Sequence[float]) -> list[float]:
    """Time per unit relative to the largest size's (1.0 everywhere = linear growth)."""
    per = [t / x for x, t in zip(xs, times, strict=True)]
    return [p / per[-1] for p in per]


def bench_scaling(opts: argparse.Namespace) -> dict[str, Any]:
    cfg = CONFIGS["C2"]
    spec = blur_spec(cfg, symmetric=False)
    genome = blur.random_genome(jax.random.key(1), cfg.num_states)
    state = blur.init_state(jax.random.key(2), genome, spec, cfg.batch)
    unroll = jax.jit(blur.unroll, static_argnums=1)
    sgd = sgd_unit_fn(cfg)
    Ts = (10, 50, 200) if opts.quick else (10, 50, 200, 1000)
    t_rows = []
    for T in Ts:
        support = random_batch(jax.random.key(6), (T, cfg.batch), cfg.sizes[0], cfg.sizes[-1])
        fn = lambda support=support: unroll(genome, spec, state, support)  # noqa: E731
        rounds = max(3, opts.rounds // (2 if T <= 50 else 8))
        s = interleave({"unroll": fn, "sgd": sgd}, 1, rounds)
        t_rows.append(
            {
                "T": T,
                "seconds": statistics.median(s["unroll"]),
                "sgd_steps_per_step": ratio_stats(s["unroll"], s["sgd"], SGD_BURST / T),
            }
        )
    lin_t = _linearity(Ts, [r["seconds"] for r in t_rows])
    for row, lin in zip(t_rows, lin_t, strict=True):
        row["per_step_vs_largest"] = lin
        print(
            f"  unroll C2 T={row['T']:<5}{row['seconds']:8.3f} s  "
            f"{1e3 * row['seconds'] / row['T']:6.2f} ms/step "
            f"({row['sgd_steps_per_step']['median']:5.2f} SGD steps/step)  "
            f"per-step cost / T={Ts[-1]}'s: {lin:5.2f}",
            flush=True,
        )
    Ps = (1, 8, 80) if opts.quick else (1, 8, 80, 256)
    p_rows = []
    sgd3 = sgd_unit_fn(CONFIGS["C3"])
    for P in Ps:
        fn, synthetic, steps = evolution_fn(P)
        s = interleave({"gen": fn, "sgd": sgd3}, 1, max(2, opts.rounds // (8 if P < 80 else 16)))
        p_rows.append(
            {
                "popsize": P,
                "seconds": statistics.median(s["gen"]),
                "sgd_steps": ratio_stats(s["gen"], s["sgd"], SGD_BURST),
                "synthetic_data": synthetic,
            }
        )
    lin_p = _linearity(Ps, [r["seconds"] for r in p_rows])
    for row, lin in zip(p_rows, lin_p, strict=True):
        row["per_genome_vs_largest"] = lin
        print(
            f"  cma-mnist14 P={row['popsize']:<5}{row['seconds']:8.3f} s  "
            f"{1e3 * row['seconds'] / row['popsize']:8.1f} ms/genome  "
            f"per-genome cost / P={Ps[-1]}'s: {lin:5.2f}",
            flush=True,
        )
    return {"T": t_rows, "population": p_rows}


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "inner": bench_inner,
    "meta": bench_meta,
    "mnist10": bench_mnist10,
    "evolution": bench_evolution,
    "scaling": bench_scaling,
}


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": platform.processor() or platform.machine(),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "load_average": _load(),
        "allocator": allocator_info(os.environ),
    }


def _load() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (other processes competing for the cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _q(stats: dict[str, Any], fmt: str = ".2f") -> str:
    return f"{stats['median']:{fmt}} [{stats['q25']:{fmt}}-{stats['q75']:{fmt}}]"


def _mark(name: str, value: float) -> str:
    op, bound = TARGETS[name]
    ok = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound:g}: **{'met' if ok else 'not met'}**"


def markdown(results: dict[str, Any]) -> str:
    """The markdown report of a ``results`` dict (as written to ``--json``)."""
    m = results["machine"]
    o = results["options"]
    out = [
        "# Benchmark results",
        "",
        f"Written by `blur bench {' '.join(o['argv'])}` on {m['date_utc']} UTC "
        f"in {results['wall_s']:.0f} s. Do not edit by hand: rerun the command.",
        "",
        f"- jax {m['jax']}, platform **{m['platform']}** ({m['device_kind']}), "
        f"{m['device_count']} device(s), {m['cpu_count']} CPU cores"
        f" ({m['affinity']} usable), {m['processor']}.",
        f"- Every figure: {o['warmup']} warm-up call(s) after compiling, then the sides called "
        "in turn each round; ratio = median of the per-round ratios, [25th-75th percentile].",
        f"- 'Jitted SGD steps' next to a long workload: the SGD side of each round is "
        f"{results.get('sgd_burst', 1)} waited-for SGD calls in a row, per call (a single "
        "call right after a long workload runs cold and reads 2-3x slow).",
    ]
    if m.get("load_average") is not None:
        out.append(
            f"- Load average (1, 5, 15 min) at the start {m['load_average']}, at the end "
            f"{m.get('load_average_end')}, on {m['cpu_count']} cores: above "
            f"{m['cpu_count']} means other processes were competing for the cores, which "
            "inflates and scatters absolute times; interleaved ratios cancel part of it."
        )
    if "allocator" in m:
        a = m["allocator"]
        out.append(
            f"- Allocator: `GLIBC_TUNABLES={a['glibc_tunables'] or ''}`, transparent huge pages "
            f"`{a['transparent_hugepage']}` (the `blur` console script sets "
            "`glibc.malloc.hugetlb=1`; see `blur._allocator`)."
        )
    if o.get("note"):
        out.append(f"- Note: {o['note']}")
    if m["platform"] != "gpu":
        out.append(
            "- No GPU figures exist yet: this file holds "
            f"{m['platform']} figures only. `blur bench` runs unchanged on a GPU."
        )
    out.append("")
    s = results["sections"]
    if "inner" in s:
        out += [
            "## Inner step: BLUR step vs SGD step",
            "",
            f"Per step of a jitted `blur.unroll` of T={s['inner']['T']} steps (metrics "
            f"included) vs per step of a jitted `lax.scan` of {s['inner']['T']} SGD steps: the "
            "training loop's cost. 'one call' is one jitted `blur.step` vs one jitted SGD step "
            "(it also converts the public channel-last state to the rules' channel-first "
            "layout and back). Normalisation on both passes, multi-state synapses.",
            "",
            "| config | synapses | BLUR ms/step | SGD ms/step | BLUR/SGD | /K | one call /K "
            "| GFLOP/s | % of matmul |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in s["inner"]["rows"]:
            g = f"{r['gflops']:.1f}" if "gflops" in r else ""
            f = _q({k: 100 * v for k, v in r["fraction_of_matmul"].items() if k != "samples"},
                   ".1f") if "fraction_of_matmul" in r else ""
            out.append(
                f"| {r['label']} | {r['synapses']} | {r['blur_ms']:.3f} | {r['sgd_ms']:.3f} | "
                f"{_q(r['ratio'])} | {_q(r['ratio_per_K'])} | {_q(r['call_ratio_per_K'])} | "
                f"{g} | {f} |"
            )
        c2 = [r for r in s["inner"]["rows"] if r["config"] == "C2" and "gflops" in r]
        if c2:
            r = c2[0]
            out += [
                "",
                f"Matmul peak: {s['inner']['matmul_size']}² float32 matmul, "
                f"{r['matmul_gflops']:.1f} GFLOP/s (during the C2 rounds). "
                f"FLOPs per BLUR step = 3 × 2·B·Σ(n_in+1)·n_out·K.",
                "",
                f"- Target C2 ratio/K {_mark('inner_C2_ratio_per_K', r['ratio_per_K']['median'])}"
                f" (measured {r['ratio_per_K']['median']:.2f}).",
                f"- Target C2 GFLOP/s fraction "
                f"{_mark('gflops_C2_fraction_of_matmul', r['fraction_of_matmul']['median'])}"
                f" (measured {100 * r['fraction_of_matmul']['median']:.1f}%).",
            ]
        out.append("")
    if "meta" in s:
        out += [
            "## Meta-gradient: `jit(grad)` of the query cross-entropy after a C2 unroll",
            "",
            "C2 784-256-10, K=4, B=128, asymmetric, normalisation on both passes; gradient "
            "w.r.t. the genome. Peak memory from the compiled executable's memory analysis.",
            "",
            "| T | jax.checkpoint | ms | jitted C2 SGD steps | peak memory MiB | compile s |",
            "|---|---|---|---|---|---|",
        ]
        for r in s["meta"]["rows"]:
            peak = "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}"
            out.append(
                f"| {r['T']} | {'yes' if r['remat'] else 'no'} | {1e3 * r['seconds']:.1f} | "
                f"{_q(r['sgd_steps'], '.1f')} | {peak} | {r['compile_s']:.1f} |"
            )
        for r in s["meta"]["rows"]:
            if r["T"] == 10:
                how = "with checkpointing (as the presets run it)" if r["remat"] else "plain"
                prefix = "- " if r["remat"] else "\n- "
                out.append(
                    f"{prefix}Target T=10, {how}, "
                    f"{_mark('meta_C2_T10_sgd_steps', r['sgd_steps']['median'])} SGD steps "
                    f"(measured {r['sgd_steps']['median']:.1f})."
                )
            if r["T"] == 50 and r["remat"] and r["peak_bytes"] is not None:
                out.append(
                    f"- Target T=50 with checkpointing "
                    f"{_mark('meta_C2_T50_remat_peak_GB', r['peak_bytes'] / 1e9)} GB peak "
                    f"(measured {r['peak_bytes'] / 1e9:.3f} GB)."
                )
        out.append("")
    base = results.get("baseline", {}).get("sections", {})
    if base:
        bm = results["baseline"]
        out += [
            f"Baseline (`--baseline {bm['file']}`): written by `blur bench "
            f"{' '.join(bm['options']['argv'])}` on {bm['machine']['date_utc']} UTC; "
            "'speed-up' = its seconds / these seconds (separate processes, so machine load "
            "does not cancel as it does in the interleaved ratios).",
            "",
        ]
    if "mnist10" in s:
        out += [
            "## One meta-step of the `mnist10` preset as shipped",
            "",
            "`outer.gradient.meta_step`: 4 runs × 3 tasks, K=4, 100-256-128-10, B=128, "
            "query 256. The preset's curriculum goes T = 10 → 20.",
            "",
            "| T | seconds [IQR] | jitted C2 SGD steps | first call (compile) s | data |",
            "|---|---|---|---|---|",
        ]
        old = {r["T"]: r for r in base.get("mnist10", {}).get("rows", [])}
        for r in s["mnist10"]["rows"]:
            q = r["seconds_q"]
            out.append(
                f"| {r['T']} | {r['seconds']:.3f} [{q[0]:.3f}-{q[2]:.3f}] | "
                f"{_q(r['sgd_steps'], '.0f')} | {r['first_call_s']:.1f} | "
                f"{'synthetic' if r['synthetic_data'] else 'MNIST'} |"
            )
        for r in s["mnist10"]["rows"]:
            if r["T"] in old:
                b = old[r["T"]]
                out.append(
                    f"\n- T={r['T']}: baseline {b['seconds']:.3f} s "
                    f"({b['sgd_steps']['median']:.0f} C2 SGD steps), now {r['seconds']:.3f} s "
                    f"({r['sgd_steps']['median']:.0f}): speed-up "
                    f"{b['seconds'] / r['seconds']:.2f}x in seconds, "
                    f"{b['sgd_steps']['median'] / r['sgd_steps']['median']:.2f}x in SGD steps "
                    "(target 3x)."
                )
        out.append("")
    if "evolution" in s:
        r = s["evolution"]["rows"][0]
        q = r["seconds_q"]
        out += [
            "## One CMA-ES generation of `cma-mnist14`",
            "",
            f"Population {r['popsize']}, 196-512-10, K=2, {r['train_steps']} training + 20 "
            "evaluation batches of 128, as `blur evolve` runs it (the preset's searched "
            "values, a synapse init per candidate, chunks of 8); ask + `score_population` + "
            "tell.",
            "",
            "| seconds [IQR] | genome-steps/s | jitted C3 SGD steps | data |",
            "|---|---|---|---|",
            f"| {r['seconds']:.2f} [{q[0]:.2f}-{q[2]:.2f}] | {r['genome_steps_per_s']:.0f} | "
            f"{_q(r['sgd_steps'], '.0f')} | {'synthetic' if r['synthetic_data'] else 'MNIST'} |",
            "",
        ]
        if base.get("evolution"):
            b = base["evolution"]["rows"][0]
            out += [
                f"- Baseline {b['seconds']:.2f} s ({b['sgd_steps']['median']:.0f} C3 SGD steps), "
                f"now {r['seconds']:.2f} s: speed-up {b['seconds'] / r['seconds']:.2f}x in "
                f"seconds, {b['sgd_steps']['median'] / r['sgd_steps']['median']:.2f}x in SGD "
                "steps.",
                "",
            ]
    if "scaling" in s:
        sc = s["scaling"]
        out += [
            "## Scaling",
            "",
            "Unroll (`blur.unroll`, jitted) on C2 against T; per-step cost relative to the "
            "largest T's (1.00 = linear growth):",
            "",
            "| T | seconds | ms/step | SGD steps/step | per-step cost vs largest T |",
            "|---|---|---|---|---|",
        ]
        for r in sc["T"]:
            out.append(
                f"| {r['T']} | {r['seconds']:.3f} | {1e3 * r['seconds'] / r['T']:.2f} | "
                f"{_q(r['sgd_steps_per_step'])} | {r['per_step_vs_largest']:.2f} |"
            )
        out += [
            "",
            "One `cma-mnist14` generation against the population; per-genome cost relative to "
            "the largest population's:",
            "",
            "| population | seconds | ms/genome | per-genome cost vs largest |",
            "|---|---|---|---|",
        ]
        for r in sc["population"]:
            out.append(
                f"| {r['popsize']} | {r['seconds']:.3f} | "
                f"{1e3 * r['seconds'] / r['popsize']:.1f} | {r['per_genome_vs_largest']:.2f} |"
            )
        out += ["", _scaling_words(sc), ""]
    return "\n".join(out)


def _scaling_words(sc: dict[str, Any]) -> str:
    """Where growth is not linear: per-unit cost more than 25% off the largest size's."""
    notes = []
    for key, unit, name in (("T", "T", "per_step_vs_largest"),
                            ("population", "popsize", "per_genome_vs_largest")):
        label = "T" if key == "T" else "population"
        high = [f"{r[unit]} ({r[name]:.2f}x)" for r in sc[key] if r[name] > 1.25]
        low = [f"{r[unit]} ({r[name]:.2f}x)" for r in sc[key] if r[name] < 0.8]
        if not high and not low:
            notes.append(f"Against {label}, growth is linear within 25%.")
            continue
        if high:
            notes.append(
                f"Against {label}, per-unit cost is above the largest size's at "
                f"{', '.join(high)} (growth slower than linear there)."
            )
        if low:
            notes.append(
                f"Against {label}, per-unit cost is below the largest size's at "
                f"{', '.join(low)} (growth faster than linear up to the largest size)."
            )
    return " ".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blur bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sweeps")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls after compiling")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--inner-steps", type=int, default=20, help="T of the inner-step unrolls (per step)"
    )
    parser.add_argument(
        "--mnist10-steps", type=int, nargs="+", default=[10, 20], help="T of the mnist10 rows"
    )
    parser.add_argument("--matmul-size", type=int, default=1024, help="side of the peak matmul")
    parser.add_argument("--json", type=str, default=None, help="write every figure here")
    parser.add_argument("--markdown", type=str, default=None, help="write the report here")
    parser.add_argument("--note", type=str, default="", help="a line for the report's header")
    parser.add_argument(
        "--from-json",
        type=str,
        default=None,
        help="measure nothing: rewrite --markdown from a --json file an earlier run wrote",
    )
    parser.add_argument(
        "--baseline",
        type=str,
        default=None,
        help="a --json file written by blur bench on other code (e.g. before a change); the "
        "report adds its seconds and the speed-up for the rows both runs have",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 12 if args.quick else 40
    if args.rounds < 2:
        parser.error(f"--rounds {args.rounds}: need at least 2 rounds for a median and spread")
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(markdown(results) + "\n")
            print(f"wrote {args.markdown} from {args.from_json}")
        return 0
    info = machine()
    print(
        f"jax {info['jax']} on {info['platform']} ({info['device_kind']}), "
        f"{info['cpu_count']} CPU cores; {args.rounds} interleaved rounds after "
        f"{args.warmup} warm-up calls",
        flush=True,
    )
    t0 = time.perf_counter()
    sections = {}
    for name in args.sections:
        print(f"[{name}]", flush=True)
        sections[name] = RUNNERS[name](args)
    wall = time.perf_counter() - t0
    info["load_average_end"] = _load()
    print(f"done in {wall:.0f} s (load average {info['load_average_end']})")
    results = {
        "machine": info,
        "options": {
            "argv": argv,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "quick": args.quick,
            "note": args.note,
        },
        "targets": {k: list(v) for k, v in TARGETS.items()},
        "sgd_burst": SGD_BURST,
        "wall_s": wall,
        "sections": sections,
    }
    if args.baseline:
        with open(args.baseline) as f:
            base = json.load(f)
        results["baseline"] = {"file": args.baseline, "options": base["options"],
                               "machine": base["machine"], "sections": base["sections"]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results) + "\n")
        print(f"wrote {args.markdown}")
    return 0
