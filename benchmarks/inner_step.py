"""The benchmark suite of ``blur bench`` (see :mod:`blur.bench`): inner step, meta-gradient,
mnist10 meta-step, evolution generation and scaling, as same-process interleaved ratios.

Usage: ``python benchmarks/inner_step.py [blur bench options]``, the same as ``blur bench``;
``benchmarks/RESULTS.md`` is written by
``blur bench --quick --baseline benchmarks/baseline-19f8077.json --json benchmarks/results.json
--markdown benchmarks/RESULTS.md``.
"""

import sys

from blur.bench import main

if __name__ == "__main__":
    sys.exit(main())
