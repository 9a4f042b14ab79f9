"""The import graph of blur.data: it imports nothing above it, tasks import it one way, and
neither ``import blur`` nor loading data imports the network code."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import blur

SRC = Path(blur.__file__).resolve().parent  # src/blur
# Not http.client: jax itself imports it (jax._src.profiler imports http.server).
NETWORK_MODULES = ("urllib.request", "blur.data.fetching")


def run_python(code: str) -> None:
    """Run ``code`` in a fresh interpreter with this test's ``sys.path``; fail on any error."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_import_blur_and_loading_data_do_not_import_the_network_code():
    """``import blur`` (which imports blur.tasks and blur.data) and loading an IDX data set
    from its cache leave urllib.request and the fetch module unloaded. (Loading ``digits``
    would not: scikit-learn's own ``sklearn.datasets`` imports urllib.request.)"""
    run_python(
        "import sys, tempfile\n"
        f"NET = {NETWORK_MODULES!r}\n"
        "import blur\n"
        "assert 'blur.data' in sys.modules and 'blur.tasks' in sys.modules\n"
        "assert not [m for m in NET if m in sys.modules], 'import blur'\n"
        "import numpy as np\n"
        "from blur.data import load_dataset\n"
        "from blur.data.store import write_npz_atomic\n"
        "root = tempfile.mkdtemp()\n"
        "z = np.zeros((12, 2, 2), np.uint8); y = np.zeros(12, np.uint8)\n"
        "write_npz_atomic(f'{root}/mnist/mnist.npz', dict(train_images=z, train_labels=y,\n"
        "                 test_images=z, test_labels=y))\n"
        "assert load_dataset('mnist', root).split('val')[0].shape == (2, 2, 2)\n"
        "bad = [m for m in NET if m in sys.modules]\n"
        "assert not bad, f'loading imported {bad}'\n"
    )


def test_fetching_imports_the_network_code_when_used():
    """The check above is not vacuous: fetching does import urllib.request."""
    run_python(
        "import sys, tempfile\n"
        "from blur.data import fetch\n"
        "fetch('digits', root=tempfile.mkdtemp(), log=lambda m: None)  # bundled: no network\n"
        "assert 'urllib.request' not in sys.modules\n"
        "import blur.data.fetching\n"
        "assert 'urllib.request' in sys.modules\n"
    )


def test_blur_data_alone_imports_no_other_blur_module():
    """Import blur.data with the blur package stubbed (so blur/__init__.py, which imports the
    whole engine, does not run): only blur.data.* and blur._atomic may load."""
    run_python(
        "import sys, types\n"
        f"pkg = types.ModuleType('blur'); pkg.__path__ = [{str(SRC)!r}]\n"
        "sys.modules['blur'] = pkg\n"
        "import blur.data\n"
        "blur.data.data_status()\n"
        "mods = sorted(m for m in sys.modules if m.startswith('blur.'))\n"
        "bad = [m for m in mods if not m.startswith('blur.data') and m != 'blur._atomic']\n"
        "assert not bad, bad\n"
        "assert 'blur.data.sources' in mods and 'urllib.request' not in sys.modules\n"
    )


def _blur_imports(path: Path) -> set[str]:
    """Every ``blur.*`` module a source file imports (at any depth, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "blur":
                found |= {f"blur.{a.name}" for a in node.names}
            elif node.module.startswith("blur."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("blur.")}
    return found


def test_data_never_imports_upstream_and_tasks_import_data_one_way():
    for path in sorted((SRC / "data").glob("*.py")):
        for module in _blur_imports(path):
            assert module.startswith("blur.data") or module == "blur._atomic", (path, module)
    # tasks/ imports the public blur.data package, never its network module.
    for path in sorted((SRC / "tasks").glob("*.py")):
        assert "blur.data.fetching" not in _blur_imports(path), path
