"""Typed run configuration and the paper's presets, selectable by name, overridable by field.

A family is named by a string ``NAME[:CLASSES][?key=value&key=value]`` understood by
:func:`blur.tasks.get_family`, e.g. ``xor``, ``mnist:0-4?resolution=10``,
``omniglot?num_ways=10&alphabets=Korean``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Literal

from blur.network import NetworkSpec
from blur.outer.evolution import CMAConfig
from blur.outer.gradient import Curriculum
from blur.outer.objective import ObjectiveConfig
from blur.tasks import TOY2D_META_TRAIN, TOY2D_META_VAL, get_family
from blur.tasks.base import TaskFamily


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The network a genome is meta-trained on (input and output widths come from the tasks).

    See :class:`blur.network.NetworkSpec` for the meaning of each field.
    """

    hidden: tuple[int, ...] = (20,)
    num_states: int = 2
    forward_activation: str = "relu_tanh"
    backward_activation: str = "tanh"
    last_activation: str = "linear"
    backward_update: Literal["additive", "multiplicative", "multiplicative_second_state"] = (
        "additive"
    )
    symmetric_synapses: bool = True
    single_state_synapses: bool = True
    neuron_norm: Literal["none", "forward", "backward", "both"] = "forward"
    synapse_stabiliser: tuple[Literal["oja", "normalize", "saturate"], ...] = ("oja",)
    reset_neurons: bool = True
    bias: bool = True
    hebbian_reduce: Literal["sum", "mean"] = "mean"
    feedback: Literal["label", "error", "softmax_error"] = "label"
    fan_in_scaling: bool = True
    per_layer_genome: bool = False
    synapse_keep_max: float | None = 1.0

    def spec(self, num_inputs: int, num_outputs: int) -> NetworkSpec:
        """The :class:`NetworkSpec` for a task with these input and output widths."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        hidden = fields.pop("hidden")
        return NetworkSpec(layer_sizes=(num_inputs, *hidden, num_outputs), **fields)

    def spec_for(self, family: TaskFamily) -> NetworkSpec:
        return self.spec(family.num_inputs, family.num_classes)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Task families: a meta-training mixture and held-out meta-validation families."""

    train: tuple[str, ...] = TOY2D_META_TRAIN
    validate: tuple[str, ...] = TOY2D_META_VAL


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """Meta-objective settings; T comes from the curriculum (gradient) or ``cma.num_steps``.

    The fields are those of :class:`blur.outer.objective.ObjectiveConfig`.

    Attributes:
      score_steps: inner steps before T after which the query is also scored; loss and
        accuracy (validation's too) are the means over these points and T. Points >= T are
        skipped, so one setting serves the whole curriculum. Empty: score after T only.
    """

    batch_size: int = 128
    num_query_batches: int = 1
    query_batch_size: int | None = None
    num_tasks: int = 6
    num_replicas: int = 1
    loss: Literal["cross_entropy", "l2"] = "cross_entropy"
    remat: bool = False
    score_steps: tuple[int, ...] = ()

    def objective(self, num_steps: int) -> ObjectiveConfig:
        return ObjectiveConfig(num_steps=num_steps, **dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class GradientSettings:
    """Gradient meta-training (paper App. C.1): Adam 5e-4, clip 10, best of N runs.

    Attributes:
      scale_by_parameter: multiply each genome field's Adam step by the field's RMS (at
        least 1), so large fields such as the fan-in-scaled Hebbian rate move as fast,
        relatively, as the O(1) matrices (blur.outer.gradient.make_optimizer). Off in the
        paper's setting.
    """

    meta_steps: int = 1000
    learning_rate: float = 5e-4
    clip_norm: float = 10.0
    scale_by_parameter: bool = False
    num_runs: int = 8
    curriculum: Curriculum = Curriculum()


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """CMA-ES meta-training (paper §4.4): population 80, 15 train + 20 eval batches of 128."""

    generations: int = 100
    num_steps: int = 15
    fitness: Literal["accuracy", "loss"] = "accuracy"
    cma: CMAConfig = CMAConfig()


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Final evaluation: accuracy after each inner step, next to tuned gradient baselines."""

    report_steps: tuple[int, ...] = (10, 25, 50)
    num_tasks: int = 16
    batch_size: int = 128
    query_size: int = 1000
    baselines: tuple[Literal["sgd", "momentum", "adam"], ...] = ("sgd",)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a meta-training run needs; written resolved to ``RUN_DIR/config.json``.

    Attributes:
      preset: the preset this config started from.
      run_dir: output folder (default ``runs/<preset>``).
      seed: seeds genome init, tasks, synapse inits and CMA-ES.
      genome_init: ``delta``, ``near_backprop`` or ``random`` (blur.genome.init_genome).
      init_eta_tilde: the initial genome's Hebbian rate: empty for the initialiser's default,
        one value shared by all layers, or one per synapse layer (per-layer genome only).
      init_scale: the initial genome's synapse init scale (None: the initialiser's default).
      log_every, validate_every, checkpoint_every: in meta-steps (generations for CMA-ES).
      validate_tasks: tasks per validation family at each validation.
      validate_num_steps: inner steps before each meta-validation's query. None: the T the
        run ends with (the curriculum's T at the last meta-step, or ``evolution.num_steps``),
        so that every validation of a run, and so the best-of-N choice, uses one horizon.
    """

    preset: str = "toy2d"
    run_dir: Path | None = None
    seed: int = 0
    genome_init: Literal["delta", "near_backprop", "random"] = "delta"
    init_eta_tilde: tuple[float, ...] = ()
    init_scale: float | None = None
    network: NetworkConfig = NetworkConfig()
    tasks: TaskConfig = TaskConfig()
    objective: ObjectiveSettings = ObjectiveSettings()
    gradient: GradientSettings = GradientSettings()
    evolution: EvolutionSettings = EvolutionSettings()
    evaluation: EvalSettings = EvalSettings()
    log_every: int = 10
    validate_every: int = 100
    validate_tasks: int = 8
    validate_num_steps: int | None = None
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.validate_num_steps is not None and self.validate_num_steps < 1:
            raise ValueError(
                f"validate_num_steps must be >= 1, or None for the run's final T; "
                f"got {self.validate_num_steps}"
            )

    def validation_steps(self, final_train_steps: int) -> int:
        """Inner steps of every meta-validation (``validate_num_steps`` or the final T)."""
        return self.validate_num_steps or final_train_steps

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir is not None else Path("runs") / self.preset


PRESETS: dict[str, tuple[str, RunConfig]] = {
    "toy2d": (
        "Meta-train on xor / and / two-moons, validate on the held-out 2-D group; K=2, (20,)."
        " Runs on built-in data in a few minutes on 2 CPU cores.",
        RunConfig(
            preset="toy2d",
            network=NetworkConfig(neuron_norm="none"),
            gradient=GradientSettings(
                meta_steps=600,
                learning_rate=1e-2,
                num_runs=4,
                curriculum=Curriculum(start=10, increment=5, every=200, maximum=20),
            ),
            objective=ObjectiveSettings(batch_size=128, num_tasks=6),
            validate_every=200,
            checkpoint_every=100,
        ),
    ),
    "mnist10": (
        "MNIST at 10x10 (20x20 crop), tasks full / 0-4 / 5-9; K=4; hidden (256, 128);"
        " meta-validation on 28x28 MNIST and Fashion-MNIST test splits. Output state 1 gets"
        " one-hot - softmax(prediction); a per-layer genome starts from the delta init with"
        " He-scale synapses and rates 200/100/50 (it already trains a fresh net before"
        " meta-training); Adam 1e-3, T = 10 -> 20, the query scored after step 10 and after T.",
        RunConfig(
            preset="mnist10",
            init_eta_tilde=(200.0, 100.0, 50.0),
            init_scale=6.0**0.5,
            network=NetworkConfig(
                hidden=(256, 128),
                num_states=4,
                neuron_norm="none",
                feedback="softmax_error",
                per_layer_genome=True,
            ),
            tasks=TaskConfig(
                train=("mnist?resolution=10", "mnist:0-4?resolution=10", "mnist:5-9?resolution=10"),
                validate=("mnist?split=test", "fashion_mnist?split=test"),
            ),
            objective=ObjectiveSettings(
                batch_size=128, num_tasks=3, query_batch_size=256, score_steps=(10,)
            ),
            gradient=GradientSettings(
                meta_steps=800,
                learning_rate=1e-3,
                scale_by_parameter=True,
                num_runs=4,
                curriculum=Curriculum(start=10, increment=5, every=300, maximum=20),
            ),
            validate_every=100,
            validate_tasks=4,
            checkpoint_every=100,
            evaluation=EvalSettings(num_tasks=3, query_size=2000, baselines=("sgd", "adam")),
        ),
    ),
    "cma-mnist14": (
        "CMA-ES (paper §4.4): hidden (512,), K=2, 14x14 MNIST, population 80, 15 training"
        " and 20 evaluation batches of 128, fitness = query accuracy.",
        RunConfig(
            preset="cma-mnist14",
            network=NetworkConfig(hidden=(512,), num_states=2, neuron_norm="forward"),
            tasks=TaskConfig(
                train=("mnist?resolution=14",), validate=("mnist?split=test&resolution=14",)
            ),
            objective=ObjectiveSettings(batch_size=128, num_query_batches=20, num_tasks=1),
            evolution=EvolutionSettings(
                generations=100, num_steps=15, cma=CMAConfig(popsize=80, sigma0=0.3)
            ),
            log_every=1,
            validate_every=10,
            validate_tasks=2,
            checkpoint_every=10,
            evaluation=EvalSettings(num_tasks=3, query_size=2000, baselines=("sgd", "adam")),
        ),
    ),
    "omniglot": (
        "Omniglot 10-way episodes at 28x28, meta-trained on the small1 alphabets and validated"
        " on the small2-only alphabets (Japanese katakana, Sanskrit, Tagalog); K=4, (256,).",
        RunConfig(
            preset="omniglot",
            network=NetworkConfig(hidden=(256,), num_states=4, neuron_norm="forward"),
            tasks=TaskConfig(
                train=("omniglot?num_ways=10&subsets=background_small1",),
                validate=(
                    "omniglot?num_ways=10&subsets=background_small2&exclude_alphabets=Greek,Latin",
                ),
            ),
            objective=ObjectiveSettings(batch_size=50, num_tasks=4, query_batch_size=50),
            gradient=GradientSettings(
                meta_steps=1000,
                learning_rate=1e-3,
                num_runs=4,
                curriculum=Curriculum(start=10, increment=5, every=500, maximum=15),
            ),
            validate_every=100,
            validate_tasks=4,
            checkpoint_every=100,
            evaluation=EvalSettings(num_tasks=8, batch_size=50, query_size=100),
        ),
    ),
}


def get_preset(name: str) -> RunConfig:
    """The preset called ``name``; ``ValueError`` lists the valid names."""
    try:
        return PRESETS[name][1]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text:
        return tuple(t for t in text.split(",") if t)
    return text


def parse_family(text: str) -> tuple[str, dict[str, Any]]:
    """``'mnist:0-4?resolution=10&split=test'`` -> ``('mnist:0-4', {'resolution': 10, ...})``."""
    name, _, query = text.partition("?")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"family {text!r}: option {part!r} must look like key=value")
        options[key.strip()] = _parse_value(value.strip())
    return name.strip(), options


def build_family(text: str) -> TaskFamily:
    """The task family named by ``text`` (see the module docstring)."""
    name, options = parse_family(text)
    return get_family(name, **options)


def build_train_family(tasks: TaskConfig) -> TaskFamily:
    """One family for meta-training: the single family, or a uniform mixture."""
    from blur.tasks import Mixture

    families = tuple(build_family(t) for t in tasks.train)
    if len(families) == 1:
        return families[0]
    return Mixture(families, name="+".join(f.name for f in families))


# ------------------------------------------------------------------ JSON round trip


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_to_json(config: RunConfig) -> str:
    return json.dumps(_to_jsonable(config), indent=1)


def _from_jsonable(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"expected an object for {tp.__name__}, got {value!r}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"unknown {tp.__name__} fields {sorted(unknown)}")
        return tp(**{k: _from_jsonable(hints[k], v) for k, v in value.items()})
    if origin is tuple and value is not None:
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_from_jsonable(inner, v) for v in value)
    if tp is Path or (
        origin in (typing.Union, getattr(__import__("types"), "UnionType", None))
        and Path in typing.get_args(tp)
    ):
        return None if value is None else Path(value)
    return value


def config_from_json(text: str) -> RunConfig:
    """Inverse of :func:`config_to_json`; unknown fields raise ``ValueError``."""
    return _from_jsonable(RunConfig, json.loads(text))
