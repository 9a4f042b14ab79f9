"""``blur meta-train`` with the initial genome's forward-normalisation shift of the hidden
layer's state 1 set to $SHIFT: how seeds 2 and 3 were first run, before the option
``--init-fwd-norm-shift`` existed (it builds the same genome):

    SHIFT=0.5 PYTHONPATH=src .venv/bin/python results/toy2d-shift/patched_meta_train.py \
        --seed 3 --run-dir runs/v/sh05-s3
"""
import os
import sys

from blur.cli.main import main
from blur.experiments import runs

VALUE = float(os.environ["SHIFT"])
orig = runs.initial_genome


def patched(config, num_layers, key):
    g = orig(config, num_layers, key)
    return g.replace(fwd_norm_shift=g.fwd_norm_shift.at[0, 1].set(VALUE))


runs.initial_genome = patched
sys.exit(main(["meta-train", *sys.argv[1:]]))
