#!/usr/bin/env bash
# (Re)write the shipped genomes and their model cards (src/blur/genomes/NAME.{json,card.json,md})
# from measured evaluations: one `blur genomes card` command per genome. To replace a genome,
# change its source file (and --made-with / --machine) below and rerun its line:
#   scripts/make_cards.sh [NAME...]        (default: all)
# Set BLUR to the command that runs blur (default: `python -m blur.cli.main` with src/ on the path).
set -euo pipefail
cd "$(dirname "$0")/.."
BLUR=${BLUR:-"env PYTHONPATH=$PWD/src ${PYTHON:-python} -m blur.cli.main"}
EVAL=(--seed 0 --evaluation.num-tasks 10 --evaluation.batch-size 128
      --evaluation.query-size 1000 --evaluation.report-steps 10 25 50)
EVAL_CMA=(--seed 0 --evaluation.num-tasks 10 --evaluation.batch-size 128
          --evaluation.query-size 1000 --evaluation.report-steps 10 15 25 50 75)
NAMES=("$@")

if [[ ${#NAMES[@]} -eq 0 || " ${NAMES[*]} " == *" toy2d-k2 "* ]]; then
  $BLUR genomes card toy2d-k2 results/toy2d-preset/genome.json \
    --tasks centered_circle small_centered_circle pie blob5 cross triangle \
    --summary "Per-layer K=2 rule meta-trained by gradient descent on the paper's 2-D tasks (xor, and, two moons); hidden (20,), softmax-error feedback, linear backward pass, neuron normalisation on both passes, unit-norm incoming weights. Evaluated on the held-out 2-D group." \
    --made-with ".venv/bin/blur meta-train --run-dir runs/toy2d-new-s0 (the main job, preset toy2d as retuned for issue 10, seed 0; results/toy2d-preset)" \
    --machine "the 2-core CPU work machine (jax 0.10.2), alone" \
    "${EVAL[@]}"
fi
if [[ ${#NAMES[@]} -eq 0 || " ${NAMES[*]} " == *" mnist-k4 "* ]]; then
  $BLUR genomes card mnist-k4 results/mnist10-cpu-rel/genome.json \
    --tasks "mnist?split=test" "fashion_mnist?split=test" \
    --summary "Per-layer K=4 rule meta-trained by gradient descent on 10x10 MNIST tasks only (all digits, 0-4, 5-9); hidden (256, 128), softmax-error feedback, no neuron normalisation. Evaluated on 28x28 MNIST and Fashion-MNIST test images." \
    --made-with ".venv/bin/blur meta-train --preset mnist10 --run-dir runs/mnist10-rel (the preset of commit 12d01fd; results/mnist10-cpu-rel)" \
    --machine "the 2-core CPU work machine (jax 0.10.2), alone" \
    "${EVAL[@]}"
fi
if [[ ${#NAMES[@]} -eq 0 || " ${NAMES[*]} " == *" cma-mnist-k2 "* ]]; then
  $BLUR genomes card cma-mnist-k2 results/cma-mnist14-preset/seed1/genome.json \
    --tasks "mnist?query_split=test&resolution=14" \
    --summary "Per-layer K=2 rule found by CMA-ES (paper 4.4: population 80, sigma 0.3, fitness = query accuracy after 15 steps) on 14x14 MNIST training images with the cma-mnist14 preset: hidden (512,), neuron normalisation over the batch on both passes; the CMA mean of generation 90 of 100, selected on 8 validation tasks carved from the training images. Evaluated on the whole 14x14 MNIST test split." \
    --made-with ".venv/bin/blur evolve --preset cma-mnist14 --seed 1 --run-dir runs/cma14-s1 (results/cma-mnist14-preset/seed1)" \
    --machine "the 2-core CPU work machine (jax 0.10.2), shared with two or three other jobs" \
    --wall-time-s 1686 --wall-time-note "the run loop's own wall time, beside a toy2d sweep and other runs" \
    --meta-trained-on "mnist?resolution=14" \
    "${EVAL_CMA[@]}"
fi
