"""Where one mnist10 meta-step (T = 10) spends its time, thunk by thunk (issue 11).

``benchmarks/outer_bounds.py`` gives the meta-step's time by class of HLO instruction. This
goes one level down, on the same workload (``outer.gradient.meta_step`` of the preset as
shipped, 4 runs x 3 tasks, K = 4, 100-256-128-10, B = 128, T = 10):

* the median wall time of ``--calls`` calls;
* the executed thunks' time split by phase, read from each instruction's JAX metadata: the
  reverse pass (``transpose(jvp(...))`` outside the recomputation), the per-step forward
  recomputation of ``jax.checkpoint`` (``rematted_computation``), and the rest (the forward
  pass, the query, sampling, the optimiser);
* the ``--top`` largest thunks with their output shape and phase;
* loop fusions that read the very same operands: XLA duplicated one elementwise expression
  into several consumers instead of computing it once.

    PYTHONPATH=src .venv/bin/python benchmarks/outer_bounds_tried/profile_mnist10.py \\
        > benchmarks/outer_bounds_tried/profile_mnist10.txt
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import outer_bounds  # noqa: E402

from blur import bench  # noqa: E402

_DEF = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+?)\{?[\d,]*\}? (fusion|[a-z][\w\-]*)\((.*)$")


def instructions(hlo: str) -> dict[str, tuple[str, str, str]]:
    """name -> (output type, operand list text, phase) of every HLO instruction.

    The phase comes from the instruction's JAX op_name (:func:`phase`). XLA:CPU's library
    fusions and dots carry no metadata: they take the phase of the last instruction with one
    in their fused computation, else the most common phase in the computation they sit in
    (a loop body of the forward or of the reverse scan).
    """
    out: dict[str, tuple[str, str, str]] = {}
    where: dict[str, str] = {}
    calls: dict[str, str] = {}
    comp_last: dict[str, str] = {}
    comp_phases: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    comp = ""
    for line in hlo.splitlines():
        head = outer_bounds._COMP.match(line)
        if head:
            comp = head.group(1)
            continue
        m = _DEF.match(line)
        if not m:
            continue
        name, shape, _, rest = m.groups()
        op = re.search(r'op_name="([^"]*)"', rest)
        ph = phase(op.group(1)) if op else ""
        out[name] = (shape, rest.split(")", 1)[0], ph)
        where[name] = comp
        called = re.search(r"calls=%?([\w.\-]+)", rest)  # fusions only, not to_apply
        if called:
            calls[name] = called.group(1)
        if ph:
            comp_last[comp] = ph
            comp_phases[comp][ph] += 1
    for name, (shape, operands, ph) in list(out.items()):
        if ph:
            continue
        ph = comp_last.get(calls.get(name, ""), "")
        if not ph and comp_phases[where[name]]:
            ph = comp_phases[where[name]].most_common(1)[0][0]
        out[name] = (shape, operands, ph or "unknown")
    return out


def phase(op_name: str) -> str:
    """The meta-step phase a JAX op_name belongs to (recomputation is checked first: its ops
    sit inside the reverse pass's transposed computation too)."""
    if "rematted_computation" in op_name:
        return "recompute (jax.checkpoint)"
    if "transpose(jvp" in op_name:
        return "reverse pass"
    return "forward / other"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--calls", type=int, default=7)
    p.add_argument("--top", type=int, default=20)
    a = p.parse_args()

    w = outer_bounds.mnist10_workloads(a.steps)[0]
    hlo = w.compiled.as_text()
    info = instructions(hlo)
    times = bench.interleave({"meta-step": w.fn}, 1, a.calls)["meta-step"]
    prof = outer_bounds.profile_classes(w.fn, hlo, calls=2, top=10_000)
    total = prof["thunk_ms_per_call"]
    print(f"{w.name}, T={a.steps}: {w.what}")
    print(f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPU cores, load "
          f"average {[round(x, 2) for x in os.getloadavg()]}")
    print(f"wall: median {statistics.median(times):.3f} s over {a.calls} calls; executed thunks "
          f"{total:.0f} ms per call (summed over both cores' threads)")

    by_phase: collections.Counter[str] = collections.Counter()
    for name, _, ms in prof["top_ops"]:
        by_phase[info.get(name, ("", "", "unknown"))[2]] += ms
    print("\nthunk time by phase (ms per call, share):")
    for ph, ms in by_phase.most_common():
        print(f"  {ph:28s} {ms:7.1f}  {100 * ms / total:4.1f}%")

    print(f"\nlargest {a.top} thunks (ms per call, class, output, phase):")
    for name, cls, ms in prof["top_ops"][: a.top]:
        shape, _, ph = info.get(name, ("?", "", "unknown"))
        print(f"  {ms:6.1f}  {cls:11s} {name:28s} {shape:28s} {ph}")

    # greedy groups of elementwise fusions whose operand sets overlap by >= 80% (Jaccard)
    groups: list[tuple[set[str], list[tuple[str, float]]]] = []
    for name, cls, ms in prof["top_ops"]:
        operands = info.get(name, ("", "", ""))[1]
        ops = {o.strip() for o in operands.split(",") if "%" in o}
        if cls != "elementwise" or len(ops) < 4:
            continue
        for members, g in groups:
            if len(ops & members) >= 0.8 * len(ops | members):
                g.append((name, ms))
                break
        else:
            groups.append((ops, [(name, ms)]))
    dup = [(sum(ms for _, ms in g), g) for _, g in groups if len(g) > 1]
    dup.sort(key=lambda x: -x[0])
    print("\nloop fusions reading (almost) the same operands, >= 4 of them (XLA recomputes a "
          "shared expression in each):")
    for ms, g in dup[:5]:
        names = ", ".join(f"{n} {m:.1f}" for n, m in g)
        print(f"  {len(g)} fusions, {ms:.1f} ms per call ({100 * ms / total:.1f}%): {names}")
    if not dup:
        print("  none")


if __name__ == "__main__":
    main()
