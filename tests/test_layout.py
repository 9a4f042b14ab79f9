"""The package layout shows the data flow: no module imports one downstream of it.

Order (upstream first): data -> tasks -> genome/network/rules/inner -> outer -> baselines ->
io -> experiments (and bench, which times the presets' meta-steps) -> cli. Checked on the
import statements of every module (static), and by importing every module in that order in a
fresh interpreter (no cycle can hide there).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import blur

SRC = Path(blur.__file__).parent
LAYERS = [
    ("blur._atomic", "blur._allocator", "blur._pytree", "blur._dataclass_json", "blur.data"),
    ("blur.tasks",),
    ("blur.activations", "blur.genome", "blur.network", "blur.rules", "blur.inner"),
    ("blur.outer",),
    ("blur.baselines",),
    ("blur.io",),
    ("blur.experiments", "blur.genomes", "blur.estimator", "blur.bench"),
    ("blur.cli",),
]


def _layer(module: str) -> int:
    if module == "blur":
        return -1
    for i, group in enumerate(LAYERS):
        if any(module == g or module.startswith(g + ".") for g in group):
            return i
    raise AssertionError(f"{module} is in no layer of test_layout.LAYERS: add it")


def _modules() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def _imports(module: str) -> set[str]:
    path = SRC.parent.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("blur")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("blur"):
            found.add(node.module)
    return found


def test_no_module_imports_downstream():
    bad = []
    for module in _modules():
        if module == "blur":
            continue
        for imported in _imports(module):
            if imported != "blur" and _layer(imported) > _layer(module):
                bad.append(f"{module} imports {imported}")
    assert not bad, "\n".join(bad)


def test_every_module_imports_in_dependency_order():
    """A fresh interpreter imports every module, upstream first; a cycle fails its import."""
    modules = sorted(_modules(), key=_layer)
    code = ("import importlib, sys\nfor m in sys.argv[1:]:\n    print(m, flush=True)\n"
            "    importlib.import_module(m)\n")
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True,
                          text=True, timeout=300)
    last = done.stdout.split()[-1] if done.stdout.split() else "?"
    assert done.returncode == 0, f"import {last}:\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("forbidden", ["blur.experiments", "blur.cli", "blur.outer"])
def test_import_blur_stays_light(forbidden):
    code = ("import sys, blur; print(sorted(m for m in sys.modules if m == "
            f"{forbidden!r} or m.startswith({forbidden!r} + '.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
