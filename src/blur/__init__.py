"""blur: Meta-Learning Bidirectional Update Rules (Sandler et al., ICML 2021) in JAX."""

from blur.activations import ACTIVATIONS as ACTIVATIONS
from blur.genome import Genome as Genome
from blur.genome import GenomeFormatError as GenomeFormatError
from blur.genome import backprop_genome as backprop_genome
from blur.genome import delta_genome as delta_genome
from blur.genome import genome_from_dict as genome_from_dict
from blur.genome import genome_to_dict as genome_to_dict
from blur.genome import init_genome as init_genome
from blur.genome import near_backprop_genome as near_backprop_genome
from blur.genome import random_genome as random_genome
from blur.genome import ravel_genome as ravel_genome
from blur.genome import stack_layers as stack_layers
from blur.inner import StepMetrics as StepMetrics
from blur.inner import evaluate as evaluate
from blur.inner import predict as predict
from blur.inner import step as step
from blur.inner import unroll as unroll
from blur.network import NetworkSpec as NetworkSpec
from blur.network import NetworkState as NetworkState
from blur.network import backprop_spec as backprop_spec
from blur.network import init_state as init_state
from blur.rules import backward as backward
from blur.rules import feedback as feedback
from blur.rules import forward as forward
from blur.rules import hebbian as hebbian
from blur.tasks.base import Batch as Batch
from blur.tasks.base import Episode as Episode

__version__ = "0.1.0"

_LAZY = {"BlurClassifier": ("blur.estimator", "BlurClassifier")}
_LAZY_MODULES = ("genomes",)


def __getattr__(name: str) -> object:
    """``blur.BlurClassifier`` and ``blur.genomes`` are imported on first use, so that
    ``import blur`` does not pull in scikit-learn."""
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"blur.{name}")
    raise AttributeError(f"module 'blur' has no attribute {name!r}")
