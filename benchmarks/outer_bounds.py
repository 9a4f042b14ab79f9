"""What bounds the meta-gradient, the mnist10 meta-step and the cma-mnist14 generation (issue 11).

For each workload, in one process:

* its median time over interleaved rounds (``blur.bench.interleave``);
* its matmul FLOPs, counted by formula (:func:`step_flops`), against the matmul peak measured
  in the same process (``blur.bench.matmul_fn``, 1024² float32, timed on its own);
* a profile (``jax.profiler.trace``, its Perfetto trace) of where the time goes: every XLA
  thunk executed, put in a class by the HLO instruction it runs (``matmul``: a dot or a
  fusion holding one; ``layout``: copies, transposes, bitcasts; ``broadcast``; ``reduction``;
  ``elementwise``: every other fusion; ``other``).

Workloads:

* ``mnist10 meta-step``: ``outer.gradient.meta_step`` of the preset as shipped, T = 10
  (4 runs x 3 tasks, K = 4, 100-256-128-10, B = 128, query 256);
* ``mnist10 objective``: the same runs' meta-objective without the gradient (forward only);
* ``C2 meta-gradient``: ``jit(grad)`` of the query loss after a T = 10 unroll on C2
  (784-256-10, K = 4, B = 128, asymmetric, normalisation on both passes: ``blur bench``'s
  meta section), and ``C2 unroll``: the same 10 steps forward only;
* ``cma-mnist14 generation``: ``outer.evolution.score_population`` as ``blur evolve`` runs it
  (population 80, fresh synapse init per candidate, chunks of 8), and at other chunk sizes.

    PYTHONPATH=src .venv/bin/python benchmarks/outer_bounds.py [--rounds 6] \
        [--json benchmarks/outer_bounds.json] [--markdown benchmarks/OUTER_BOUNDS.md]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from blur import bench

CLASSES = ("matmul", "layout", "broadcast", "reduction", "elementwise", "other")
_LAYOUT_OPS = {"parameter", "bitcast", "copy", "transpose", "reshape", "tuple",
               "get-tuple-element", "constant", "slice", "dynamic-slice", "concatenate"}
_CONTROL_OPS = {"while", "conditional", "call"}
_COMP = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (?:\([^=]*?\)|\S+) ([a-z][\w\-]*)\(")
_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")


def parse_hlo(
    text: str,
) -> tuple[dict[str, tuple[str, str | None]], dict[str, set[str]], dict[str, set[str]]]:
    """Instructions {name: (opcode, called computation)}, computations {name: opcodes} and
    the computations each computation calls."""
    instrs: dict[str, tuple[str, str | None]] = {}
    comps: dict[str, set[str]] = collections.defaultdict(set)
    comp_calls: dict[str, set[str]] = collections.defaultdict(set)
    current = ""
    for line in text.splitlines():
        m = _COMP.match(line)
        if m:
            current = m.group(1)
            continue
        comp_calls[current].update(_CALLS.findall(line))
        m = _INSTR.match(line)
        if m:
            called = _CALLS.search(line)
            instrs[m.group(1)] = (m.group(2), called.group(1) if called else None)
            comps[current].add(m.group(2))
    return instrs, comps, comp_calls


def _ops_under(comp: str, comps: dict[str, set[str]], comp_calls: dict[str, set[str]]) -> set[str]:
    """Every opcode in ``comp`` and the computations it calls, transitively."""
    seen, todo, ops = set(), [comp], set()
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        ops |= comps.get(c, set())
        todo.extend(comp_calls.get(c, ()))
    return ops


def classify(text: str) -> dict[str, str]:
    """Class (one of :data:`CLASSES`, or ``control``) of every HLO instruction in ``text``."""
    instrs, comps, comp_calls = parse_hlo(text)
    out = {}
    for name, (op, called) in instrs.items():
        if op in _CONTROL_OPS:
            out[name] = "control"
            continue
        ops = {op} if called is None else _ops_under(called, comps, comp_calls) | {op}
        ops.discard("fusion")
        if ops & {"dot", "convolution"}:
            out[name] = "matmul"
        elif ops <= _LAYOUT_OPS:
            out[name] = "layout"
        elif ops <= _LAYOUT_OPS | {"broadcast", "iota"}:
            out[name] = "broadcast"
        elif ops & {"reduce", "reduce-window", "scatter", "sort"}:
            out[name] = "reduction"
        elif op == "custom-call":
            out[name] = "other"
        else:
            out[name] = "elementwise"
    return out


def profile_classes(
    fn: Callable[[], Any], hlo_text: str, calls: int = 2, top: int = 8
) -> dict[str, Any]:
    """Thunk time per class over ``calls`` profiled calls of ``fn`` (already compiled), and the
    ``top`` largest thunks (name, class, ms per call)."""
    classes = classify(hlo_text)
    logdir = tempfile.mkdtemp(prefix="blur-prof-")
    try:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for _ in range(calls):
                jax.block_until_ready(fn())
        (path,) = glob.glob(f"{logdir}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            trace = json.load(f)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_class: collections.Counter[str] = collections.Counter()
    per_op: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") != "X":
            continue
        cls = classes.get(e["name"])
        if cls is None or cls == "control":
            continue  # runtime wrappers, Python frames, loop thunks (their bodies count)
        per_class[cls] += e.get("dur", 0.0)
        per_op[e["name"]] += e.get("dur", 0.0)
    total = sum(per_class.values())
    return {
        "thunk_ms_per_call": total / 1e3 / calls,
        "fraction": {c: per_class[c] / total if total else 0.0 for c in CLASSES},
        "top_ops": [
            (name, classes[name], us / 1e3 / calls) for name, us in per_op.most_common(top)
        ],
    }


def step_flops(spec: Any, batch: int) -> tuple[float, float]:
    """Matmul FLOPs of one BLUR training step and of one forward pass on ``batch`` examples.

    Training step: the forward products (K channels, every layer), the backward products
    (layers above the first), the Hebbian outer products (Kw channels: 1 with single-state
    synapses; the asymmetric backward synapses too). XLA's cost analysis counts a loop body
    once, not once per iteration, so the unrolls' FLOPs are counted here by formula.
    """
    sizes, K = spec.layer_sizes, spec.num_states
    kw = 1 if spec.single_state_synapses else K
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    fwd = sum(2 * K * batch * a * b for a, b in pairs)
    bwd = sum(2 * K * batch * a * b for a, b in pairs[1:])
    hebb = sum(2 * kw * batch * a * b for a, b in pairs)
    if not spec.symmetric_synapses:
        hebb += sum(2 * kw * batch * a * b for a, b in pairs[1:])
    return float(fwd + bwd + hebb), float(fwd)


def episode_flops(spec: Any, cfg: Any, T: int) -> float:
    """Matmul FLOPs of one episode of the meta-objective ``cfg``: T training steps, and the
    query's forward passes at each scoring point (:meth:`ObjectiveConfig.score_points`)."""
    train, _ = step_flops(spec, cfg.batch_size)
    query = step_flops(spec, cfg.query_batch_size or cfg.batch_size)[1] * cfg.num_query_batches
    scores = len({s for s in cfg.score_steps if s < T} | {T})
    return T * train + scores * query


@dataclasses.dataclass
class Workload:
    name: str
    fn: Callable[[], Any]
    compiled: Any
    flops: float
    what: str


def mnist10_workloads(T: int) -> list[Workload]:
    from blur.outer import gradient
    from blur.outer.objective import meta_objective

    m = bench.mnist10_setup(T)
    state, key, spec, family, cfg = m.state, m.key, m.spec, m.family, m.cfg
    step_c = gradient.meta_step.lower(
        state, key, family=family, spec=spec, cfg=cfg, optimizer=m.optimizer
    ).compile()

    @partial(jax.jit, static_argnames=("spec", "cfg"))
    def objective(genomes: Any, family: Any, key: jax.Array, spec: Any, cfg: Any) -> Any:
        keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(m.num_runs))
        return jax.vmap(lambda g, k: meta_objective(g, spec, family, k, cfg)[0])(genomes, keys)

    genomes = m.genomes
    obj_c = objective.lower(genomes, family, key, spec=spec, cfg=cfg).compile()
    forward = m.num_runs * cfg.num_tasks * cfg.num_replicas * episode_flops(spec, cfg, T)
    shape = (f"{m.num_runs} runs x {cfg.num_tasks} tasks, K={spec.num_states}, "
             f"{'-'.join(map(str, spec.layer_sizes))}, B={cfg.batch_size}, T={T}")
    return [
        Workload("mnist10 meta-step", lambda: step_c(state, key, family=family), step_c,
                 3 * forward, f"gradient.meta_step as shipped ({shape}); FLOPs: 3x the "
                 "objective's (reverse mode: each product again for each of its two inputs)"),
        Workload("mnist10 objective", lambda: obj_c(genomes, family, key), obj_c, forward,
                 f"the same runs' meta-objective, forward only ({shape})"),
    ]


def c2_workloads(T: int) -> list[Workload]:
    cfg = bench.CONFIGS["C2"]
    spec = bench.blur_spec(cfg, symmetric=False)
    loss, genome = bench.meta_loss_fn(cfg, T)
    grad_c = jax.jit(jax.grad(loss)).lower(genome).compile()
    fwd_c = jax.jit(loss).lower(genome).compile()
    train, fwd = step_flops(spec, cfg.batch)
    forward = T * train + fwd
    what = f"{cfg.label}, asymmetric, normalisation on both passes, T={T}"
    return [
        Workload("C2 meta-gradient", lambda: grad_c(genome), grad_c, 3 * forward,
                 f"jit(grad) of the query loss after the unroll ({what}); FLOPs 3x forward"),
        Workload("C2 unroll + query", lambda: fwd_c(genome), fwd_c, forward,
                 f"the same loss, forward only ({what})"),
    ]


def evolution_workloads(chunks: list[int | None]) -> list[Workload]:
    from blur.outer.evolution import CMAES, score_population

    e = bench.evolution_setup()
    family, spec, unravel, key = e.family, e.spec, e.unravel, e.key
    cma, obj = e.config.evolution.cma, e.config.objective
    X = jnp.asarray(CMAES(e.x0, cma, e.stds).ask(), jnp.float32)
    P = X.shape[0]
    flops = P * obj.num_tasks * obj.num_replicas * episode_flops(spec, obj, obj.num_steps)
    out = []
    for chunk in chunks:
        kw = dict(unravel=unravel, spec=spec, cfg=obj, fresh_init=cma.fresh_init,
                  chunk_size=chunk)
        c = score_population.lower(X, key, family=family, **kw).compile()
        shipped = " (as shipped)" if chunk == cma.chunk_size else ""
        out.append(Workload(
            f"cma-mnist14 generation, chunk {chunk or P}{shipped}",
            lambda c=c: c(X, key, family=family), c, flops,
            f"score_population, P={P}, {'-'.join(map(str, spec.layer_sizes))}, "
            f"K={spec.num_states}, fresh_init={cma.fresh_init}, "
            f"{obj.num_steps} + {obj.num_query_batches} batches of {obj.batch_size}",
        ))
    return out


def measure(workloads: list[Workload], rounds: int) -> dict[str, Any]:
    matmul, matmul_flops = bench.matmul_fn(1024)
    peak = matmul_flops / (bench.median_ms(matmul, 3, 30) / 1e3)  # timed on its own
    times = bench.interleave({w.name: w.fn for w in workloads}, 2, rounds)
    rows = []
    for w in workloads:
        sec = statistics.median(times[w.name])
        prof = profile_classes(w.fn, w.compiled.as_text())
        mm_s = prof["fraction"]["matmul"] * prof["thunk_ms_per_call"] / 1e3
        rows.append({
            "name": w.name, "what": w.what, "seconds": sec,
            "seconds_q": bench.quartiles(times[w.name]), "flops": w.flops,
            "gflops": w.flops / sec / 1e9, "peak_fraction": w.flops / sec / peak,
            "at_peak_s": w.flops / peak,
            "matmul_thunk_peak_fraction": w.flops / mm_s / peak if mm_s > 0 else None,
            "profile": prof,
        })
        p = prof["fraction"]
        print(f"  {w.name}: {sec:.3f} s, {w.flops / 1e9:.1f} GFLOP of matmuls "
              f"({100 * rows[-1]['peak_fraction']:.0f}% of peak); "
              + ", ".join(f"{k} {100 * v:.0f}%" for k, v in p.items()), flush=True)
    return {"peak_gflops": peak / 1e9, "rows": rows}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# What bounds the meta-gradient, the mnist10 meta-step and the cma-mnist14 generation",
        "",
        f"Written by `{res['command']}` (`benchmarks/outer_bounds.py`) on {m['date_utc']} UTC: "
        f"jax {m['jax']}, {m['platform']}, {m['cpu_count']} CPU cores, load average at the "
        f"start {m['load_average']} and at the end {res['load_end']}. Matmul peak measured in "
        f"the same process: {res['peak_gflops']:.0f} GFLOP/s (1024² float32). Times: median of "
        f"{res['rounds']} interleaved rounds. Matmul FLOPs counted by formula (XLA's cost "
        "analysis counts a loop body once); the gradient's as 3x its forward pass's.",
        "",
        "| workload | seconds [IQR] | matmul GFLOP | % of matmul peak | s at peak "
        "| matmul thunks' % of peak |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        q = r["seconds_q"]
        mm = r["matmul_thunk_peak_fraction"]
        lines.append(
            f"| {r['name']} | {r['seconds']:.3f} [{q[0]:.3f}-{q[2]:.3f}] | "
            f"{r['flops'] / 1e9:.1f} | {100 * r['peak_fraction']:.0f} | {r['at_peak_s']:.3f} | "
            f"{'' if mm is None else f'{100 * mm:.0f}'} |"
        )
    lines += [
        "",
        "Where the time goes (profiled calls; share of the executed XLA thunks' time by the "
        "class of the HLO instruction each runs):",
        "",
        "| workload | thunk ms / call | " + " | ".join(CLASSES) + " |",
        "|---|---|" + "---|" * len(CLASSES),
    ]
    for r in res["rows"]:
        f = r["profile"]["fraction"]
        lines.append(f"| {r['name']} | {r['profile']['thunk_ms_per_call']:.0f} | "
                     + " | ".join(f"{100 * f[c]:.0f}%" for c in CLASSES) + " |")
    lines += ["", "Largest thunks (ms per call, class):", ""]
    for r in res["rows"]:
        tops = ", ".join(f"`{n}` {ms:.1f} ({c})" for n, c, ms in r["profile"]["top_ops"][:5])
        lines.append(f"- {r['name']}: {tops}")
    lines += ["", "Workloads:", ""] + [f"- {r['name']}: {r['what']}" for r in res["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=10, help="T of the mnist10 and C2 workloads")
    p.add_argument("--chunks", type=int, nargs="*", default=[8, 4, 16, 80])
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args()
    info = bench.machine()
    t0 = time.perf_counter()
    workloads = c2_workloads(args.steps) + mnist10_workloads(args.steps)
    workloads += evolution_workloads([c if c > 0 else None for c in args.chunks])
    res = measure(workloads, args.rounds)
    res.update(
        machine=info, rounds=args.rounds, load_end=bench._load(),
        wall_s=time.perf_counter() - t0,
        command=f"PYTHONPATH=src .venv/bin/python benchmarks/outer_bounds.py --rounds "
        f"{args.rounds} --steps {args.steps} --chunks {' '.join(map(str, args.chunks))}",
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(res))
    print(f"done in {res['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
