"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over.

Shared by the data cache (blur.tasks) and run folders (blur.io), so it sits upstream of both.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name created exclusively (O_EXCL), not tempfile.mkstemp: mkstemp creates mode
    # 0600, which the rename would give to genome.json & co. (unreadable to other users, unlike
    # metrics.jsonl); mode 0o666 here is reduced by the umask as for any new file.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Atomic :func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))
