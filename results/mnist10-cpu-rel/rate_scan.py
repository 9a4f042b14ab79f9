"""The genome in this folder with its Hebbian rates eta_tilde scaled by 0.5-1.4: step-10 query
accuracy on the seed-1 draw of 10 tasks (the draw of evaluate-10tasks-seed1.json).

Run from the repository root: .venv/bin/python results/mnist10-cpu-rel/rate_scan.py
"""

from pathlib import Path

import jax
import numpy as np
from blur.experiments.evaluate import evaluate_family

from blur.experiments.config import build_family, config_from_json
from blur.io.genome_file import load_genome

HERE = Path(__file__).parent


def main() -> None:
    cfg = config_from_json((HERE / "config.json").read_text())
    genome = load_genome(HERE / "genome.json")
    print("eta_tilde", np.asarray(genome.eta_tilde), "init_scale", np.asarray(genome.init_scale))
    for text in ("mnist?split=test", "fashion_mnist?split=test"):
        family = build_family(text)
        spec = cfg.network.spec_for(family)
        for scale in (0.5, 0.7, 1.0, 1.4):
            scaled = genome.replace(eta_tilde=genome.eta_tilde * scale)
            result = evaluate_family(
                scaled, spec, family, jax.random.key(1), num_steps=10, num_tasks=10,
                batch_size=128, query_size=2000, baselines=(),
            )
            print(text, scale, round(100 * result["blur"][10], 1), flush=True)


if __name__ == "__main__":
    main()
