"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over.

Shared by the data cache and fetch code (blur.data) and run folders (blur.io), so it sits
upstream of both. Two forms:

* :func:`write_bytes_atomic` / :func:`write_text_atomic` for data already in memory;
* :func:`temp_file` + :func:`commit` for data streamed to disk and checked before it is
  installed (downloads, imports of large files): the caller fills and checks the temporary
  file, then :func:`commit` fsyncs it and renames it into place (or :func:`discard` drops it).

Every rename is followed by an fsync of the folder, so that the new name survives a crash.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename inside it is durable (best effort: skipped where the OS
    cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_file(path: str | os.PathLike[str]) -> Path:
    """Create an empty temporary file beside ``path`` (its folder is created if needed).

    The name is unique and created exclusively (O_EXCL), not with ``tempfile.mkstemp``:
    mkstemp creates mode 0600, which the rename would give to the final file; mode 0o666 here
    is reduced by the umask as for any new file.

    Returns:
      The temporary file's path (``.<name>.<pid>.<random>.tmp`` in the same folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def commit(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """fsync a filled temporary file (or folder tree) and rename it to ``path`` atomically.

    A folder tree replaces an existing folder at ``path`` (which is removed first, so that
    readers see the old tree or the new one, or briefly none). On failure the temporary
    file or tree is removed and the error re-raised.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        if tmp.is_dir():
            for sub, _, files in os.walk(tmp):
                for name in files:
                    _fsync_file(Path(sub) / name)
                _fsync_dir(Path(sub))
            if path.is_dir():
                shutil.rmtree(path)
        else:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def discard(tmp: str | os.PathLike[str]) -> None:
    """Remove a temporary file or tree (no error if it is gone)."""
    tmp = Path(tmp)
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def temp_dir(path: str | os.PathLike[str]) -> Path:
    """Create an empty temporary folder beside ``path``, to fill and :func:`commit`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.mkdir()
    return tmp


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
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
    _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Atomic :func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))
