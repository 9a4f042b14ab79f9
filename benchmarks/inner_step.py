"""Inner-step benchmark: BLUR step vs jitted SGD step, same process. See :mod:`blur.bench`.

Usage: ``.venv/bin/python benchmarks/inner_step.py [--repeats 50] [--json out.json]``
(the same as ``blur bench``).
"""

import sys

from blur.bench import main

if __name__ == "__main__":
    sys.exit(main())
