"""Transparent huge pages for XLA's buffers on Linux (glibc's ``glibc.malloc.hugetlb`` tunable).

XLA:CPU allocates each call's temporaries afresh (one slab per executable, hundreds of MiB for
a meta-gradient) and frees them after, and glibc serves allocations that large with ``mmap``.
So every call takes a page fault per 4 KiB of temporaries: 56,000 faults per plain C2
meta-gradient (T = 10, 219 MiB). With ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35)
malloc asks the kernel for transparent huge pages on those regions (``madvise``), one fault per
2 MiB: 466 faults per call. Measured in alternating processes on this project's 2-core machine,
that takes 11-15 % off the plain meta-gradient and 3-4 % off the checkpointed one and the
mnist10 meta-step (``benchmarks/allocator/ALLOCATOR.md``).

The tunable is read once, when the process starts, so ``blur`` (the console script) re-executes
itself with it set before it runs any JAX computation (:func:`blur.cli.main.main`).
``BLUR_HUGEPAGES=0`` switches that off. Library users set the variable in their own
environment. Where the kernel's transparent huge pages are ``never``, or glibc is older or
absent, the setting is inert.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
SETTING = f"{TUNABLE}=1"
OPT_OUT = "BLUR_HUGEPAGES"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def tuned_environ(
    environ: Mapping[str, str], platform: str = sys.platform
) -> dict[str, str] | None:
    """The environment to re-execute the process with, or None when it needs no re-execution:
    not Linux, ``BLUR_HUGEPAGES=0``, or ``GLIBC_TUNABLES`` already naming the tunable (whatever
    its value, so a user's own ``glibc.malloc.hugetlb=0`` stands). Other tunables are kept."""
    if not platform.startswith("linux") or environ.get(OPT_OUT, "1") == "0":
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    if any(item.split("=", 1)[0] == TUNABLE for item in current.split(":") if item):
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{current}:{SETTING}" if current else SETTING
    return env


def thp_mode(path: Path = THP_MODE) -> str | None:
    """The kernel's transparent huge page mode (the bracketed word: always, madvise or never),
    or None where the file is absent."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def allocator_info(environ: Mapping[str, str]) -> dict[str, str | None]:
    """What a benchmark record needs to say about the allocator: the process's tunables and the
    kernel's huge page mode."""
    return {"glibc_tunables": environ.get("GLIBC_TUNABLES"), "transparent_hugepage": thp_mode()}
