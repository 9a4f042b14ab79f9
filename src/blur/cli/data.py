"""``blur data``: import and list data sets (thin wrapper over :mod:`blur.data`).

Usage::

  blur data fetch NAME [--from DIR] [--mirror URL] [--force] [--data-dir DIR]
  blur data list [--data-dir DIR]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import tyro

from blur.data import FETCHABLE, DataError, data_status, fetch


@dataclasses.dataclass(frozen=True)
class Fetch:
    """Import a data set into the data directory (download, or copy with --from)."""

    name: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="NAME")]
    """Data set: mnist, fashion_mnist, kmnist, emnist or omniglot."""
    from_: Annotated[Path | None, tyro.conf.arg(name="from", metavar="DIR")] = None
    """Import from this local folder instead of downloading (raw or .gz IDX files; Omniglot
    images_*.zip files or folders)."""
    mirror: Annotated[str | None, tyro.conf.arg(metavar="URL")] = None
    """Download from this base URL instead of the official mirrors (file:// works)."""
    force: bool = False
    """Re-import even if the data set is already present."""
    data_dir: Annotated[Path | None, tyro.conf.arg(metavar="DIR")] = None
    """Data directory (default $BLUR_DATA_DIR or ~/.cache/blur)."""


@dataclasses.dataclass(frozen=True)
class ListData:
    """Show each data set, whether it is present, and where."""

    data_dir: Annotated[Path | None, tyro.conf.arg(metavar="DIR")] = None
    """Data directory (default $BLUR_DATA_DIR or ~/.cache/blur)."""


Command = (
    Annotated[Fetch, tyro.conf.subcommand("fetch")]
    | Annotated[ListData, tyro.conf.subcommand("list")]
)


def main(argv: list[str] | None = None) -> int:
    """Run ``blur data`` with ``argv`` (the arguments after ``data``); returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        cmd = tyro.cli(Command, args=args, prog="blur data")  # type: ignore[call-overload]
    except SystemExit as e:  # --help or a parse error (tyro printed the message)
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        if isinstance(cmd, Fetch):
            fetch(cmd.name, source=cmd.from_, mirror=cmd.mirror, root=cmd.data_dir, force=cmd.force)
            return 0
        rows = data_status(cmd.data_dir)
        width = max(len(r[0]) for r in rows)
        swidth = max(len(r[1]) for r in rows)
        for name, status, where in rows:
            print(f"{name:<{width}}  {status:<{swidth}}  {where}")
        print(f"\nfetchable: {', '.join(FETCHABLE)} (blur data fetch NAME [--from DIR])")
        return 0
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
