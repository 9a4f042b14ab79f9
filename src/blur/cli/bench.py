"""``blur bench``: inner-step speed vs a jitted SGD step (see :mod:`blur.bench`)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    from blur.bench import main as bench_main

    return bench_main(argv)
