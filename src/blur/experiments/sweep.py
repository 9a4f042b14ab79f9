"""``blur sweep``: Optuna search over any :class:`RunConfig` fields, one run folder per trial.

A *space* maps dotted field names (the CLI's, ``gradient.learning_rate`` or
``gradient.learning-rate``) to a spec:

- ``choice:a,b,c`` (or a TOML / JSON list): categorical; a tuple-typed field such as
  ``network.hidden`` takes choices of lists (``choice:[8],[16,16]`` or ``[[8], [16, 16]]``);
- ``float:lo,hi`` / ``int:lo,hi``: uniform ranges; ``log:lo,hi``: log-uniform (an int field
  gets integers);
- a single TOML / JSON value fixes the field.

The space is checked against :class:`RunConfig` before any trial (:func:`build_space`): an
unknown field, a group instead of a field, a value of the wrong type or one that makes an
invalid config raises :class:`SpaceError` naming the field and the fix.

Search: Optuna's TPE sampler (seeded) and a median (or successive-halving) pruner fed from the
run loop's validation hook (``trial.report(score, step)``; :func:`pruning_hook`). The objective
is the run's best validation score (:attr:`RunResult.best_score`), maximised. The study lives in
an Optuna RDB storage: SQLite in the sweep folder by default (``sqlite:///DIR/study.db``), or
any SQLAlchemy URL (PostgreSQL, MySQL) that several workers, each with its own sweep folder
and the same ``--study-name``, share. A URL's password is never written anywhere: give it as
``${ENV_VAR}`` in the URL or in ``$BLUR_SWEEP_DB_PASSWORD``; every printed or saved URL is
masked (:func:`mask_url`).

Sweep folder: ``sweep.json`` (the base config, space and settings, to resume), the trial run
folders ``trial_NNNN/`` (NNNN = the study-wide trial number), ``trials.csv`` (rewritten after
each trial), ``best_config.json`` (the best trial's full RunConfig, for
``blur meta-train --config`` / ``blur evolve --config``) and, by default, ``study.db``.

Resume (:func:`run_sweep` with ``resume=True``): trials of this folder that were left RUNNING
by a killed process are marked FAIL (user attr ``interrupted``) and re-queued with the same
parameters; the re-run continues from the killed run's last checkpoint (its folder is copied
into the new trial's folder, ``run(..., resume=True)``, and its earlier validations are
reported to the pruner again) when there is one. A trial killed before it recorded its folder
is failed and re-queued too (:func:`_requeue_interrupted`). Finished trials are never re-run;
the folder then runs the trials it still owes (``trials`` minus the finished, non-interrupted
ones it ran). One process per sweep folder (``.sweep.lock``).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import logging
import os
import re
import shutil
import socket
import time
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from blur._dataclass_json import from_jsonable, to_jsonable
from blur.experiments import runs
from blur.experiments.config import RunConfig, config_from_json, config_to_json
from blur.io.atomic import write_text_atomic

log = logging.getLogger("blur")

PASSWORD_ENV = "BLUR_SWEEP_DB_PASSWORD"
SETTINGS = "sweep.json"
TRIALS_CSV = "trials.csv"
BEST_CONFIG = "best_config.json"
LOCK = ".sweep.lock"
# Fields the sweep owns: trial folders are named by the sweep, the method by --method.
RESERVED = {"run_dir": "the sweep names each trial's folder (DIR/trial_NNNN); use --sweep-dir",
            "method": "give --method gradient|cma to the sweep instead"}


class SpaceError(ValueError):
    """A sweep space entry that cannot be used; the message names the field and the fix."""


class SweepError(ValueError):
    """A sweep folder, storage or setting that cannot be used; the message says the fix."""


# ------------------------------------------------------------------------------ the space


@dataclass(frozen=True)
class Param:
    """One searched field.

    Attributes:
      field: the dotted field name, with underscores (``gradient.learning_rate``).
      kind: ``choice``, ``float``, ``int`` or ``log`` (log-uniform; integers on an int field).
      low, high: the range (not for choices).
      choices: the choice values as the config takes them (tuples for tuple fields).
      integer: the range is over integers (an int field).
    """

    field: str
    kind: Literal["choice", "float", "int", "log"]
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    integer: bool = False

    @property
    def labels(self) -> tuple[Any, ...]:
        """Optuna's categorical choices (lists, which it cannot store, as JSON text)."""
        return tuple(_label(c) for c in self.choices)

    def suggest(self, trial: Any) -> Any:
        """The value ``trial`` (an ``optuna.Trial``) picks for this field."""
        if self.kind == "choice":
            label = trial.suggest_categorical(self.field, self.labels)
            return self.choices[self.labels.index(label)]
        log_scale = self.kind == "log"
        if self.integer:
            return trial.suggest_int(self.field, int(self.low), int(self.high), log=log_scale)
        return trial.suggest_float(self.field, float(self.low), float(self.high), log=log_scale)

    def describe(self) -> str:
        if self.kind == "choice":
            return "choice:" + ",".join(json.dumps(to_jsonable(c)) for c in self.choices)
        return f"{self.kind}:{self.low:g},{self.high:g}"


def _label(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(to_jsonable(value))


def normalise_field(name: str) -> str:
    """``gradient.learning-rate`` -> ``gradient.learning_rate`` (leading dashes dropped)."""
    return name.strip().lstrip("-").replace("-", "_")


def load_space_file(path: str | Path) -> dict[str, Any]:
    """A space file (``.toml`` or ``.json``) as ``{dotted field: spec}``.

    Nested tables (``[gradient]`` / ``{"gradient": {...}}``) are flattened with dots.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise SpaceError(f"space file {path} not found") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise SpaceError(f"space file {path}: give a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise SpaceError(f"space file {path} does not parse: {e}") from None
    if not isinstance(data, dict):
        raise SpaceError(f"space file {path} must hold a table of FIELD = SPEC entries")
    return _flatten(data)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_space_arg(text: str) -> tuple[str, str]:
    """``'gradient.learning-rate=log:1e-4,1e-2'`` -> ``('gradient.learning-rate', 'log:...')``."""
    name, eq, spec = text.partition("=")
    if not eq or not name.strip() or not spec.strip():
        raise SpaceError(f"--space {text!r} must look like FIELD=SPEC, e.g. gradient.learning-rate"
                         "=log:1e-4,1e-2 or network.hidden=choice:[8],[16,16]")
    return name.strip(), spec.strip()


def build_space(entries: Mapping[str, Any], base: RunConfig) -> tuple[Param, ...]:
    """Check ``entries`` (``{field: spec}``) against ``base`` and return the searched params.

    Raises:
      SpaceError: naming the field and the fix (see the module docstring).
    """
    if not entries:
        raise SpaceError("the sweep space is empty: give --space FILE.toml or --space FIELD=SPEC, "
                         "e.g. --space gradient.learning-rate=log:1e-4,1e-2")
    params: dict[str, Param] = {}
    for raw, spec in entries.items():
        name = normalise_field(raw)
        if name in params:
            raise SpaceError(f"sweep space field {name!r} is given twice; keep one entry")
        tp = field_type(name)
        param = _parse_spec(name, tp, spec)
        for value in _extremes(param):
            try:
                apply_params(base, {name: value})
            except (ValueError, TypeError) as e:
                raise SpaceError(f"sweep space field {name!r}: the value {to_jsonable(value)!r} "
                                 f"makes an invalid config ({e}); narrow its spec") from None
        params[name] = param
    return tuple(params.values())


def field_type(name: str) -> Any:
    """The type of the dotted RunConfig field ``name``; :class:`SpaceError` if there is none."""
    parts = name.split(".")
    if parts[0] in RESERVED and len(parts) == 1:
        raise SpaceError(f"sweep space field {name!r} cannot be searched: {RESERVED[parts[0]]}")
    tp: Any = RunConfig
    for i, part in enumerate(parts):
        here = ".".join(parts[:i]) or "RunConfig"
        if not dataclasses.is_dataclass(tp):
            raise SpaceError(f"unknown sweep space field {name!r}: {here} is a value, not a "
                             "group; remove the part after it")
        hints = typing.get_type_hints(tp)
        if part not in hints:
            close = difflib.get_close_matches(part, list(hints), n=1)
            hint = f"did you mean {'.'.join([*parts[:i], close[0]])!r}? " if close else ""
            raise SpaceError(f"unknown sweep space field {name!r}: {here} has no field {part!r}; "
                             f"{hint}valid: {', '.join(sorted(hints))}")
        tp = hints[part]
    if dataclasses.is_dataclass(tp):
        sub = sorted(typing.get_type_hints(tp))
        raise SpaceError(f"sweep space field {name!r} is a group, not a value; search one of its "
                         f"fields, e.g. {name}.{sub[0]} (fields: {', '.join(sub)})")
    return tp


_SPEC = re.compile(r"^(choice|float|int|log)\s*:(.*)$", re.S)


def _parse_spec(name: str, tp: Any, spec: Any) -> Param:
    how = ("give choice:a,b,c, float:lo,hi, int:lo,hi or log:lo,hi (or a TOML list of choices)")
    if isinstance(spec, list):
        if not spec:
            raise SpaceError(f"sweep space field {name!r}: the list of choices is empty")
        return Param(name, "choice", choices=tuple(_convert(name, tp, v) for v in spec))
    if not isinstance(spec, str):  # one TOML / JSON value fixes the field
        return Param(name, "choice", choices=(_convert(name, tp, spec),))
    m = _SPEC.match(spec.strip())
    if m is None:
        raise SpaceError(f"sweep space field {name!r}: spec {spec!r} is not understood; {how}")
    kind, body = m.group(1), m.group(2).strip()
    if kind == "choice":
        try:
            values = json.loads(f"[{body}]")
        except json.JSONDecodeError:
            values = [_scalar(t.strip()) for t in body.split(",") if t.strip()]
        if not values:
            raise SpaceError(f"sweep space field {name!r}: {spec!r} lists no choices")
        return Param(name, "choice", choices=tuple(_convert(name, tp, v) for v in values))
    base = _unwrap_optional(tp)
    if base not in (int, float):
        raise SpaceError(f"sweep space field {name!r} is {_type_name(tp)}, which has no range; "
                         "give choice:a,b,c (or a TOML list)")
    if kind == "float" and base is int:
        raise SpaceError(f"sweep space field {name!r} is an int: use int:lo,hi (or log:lo,hi)")
    bounds = [t.strip() for t in body.split(",")]
    try:
        low, high = (float(b) for b in bounds)
    except ValueError:
        raise SpaceError(f"sweep space field {name!r}: {spec!r} needs two numbers, "
                         f"{kind}:lo,hi") from None
    integer = base is int
    if integer and (low != int(low) or high != int(high)):
        raise SpaceError(f"sweep space field {name!r} is an int: its bounds {body!r} must be "
                         "whole numbers")
    if not low < high:
        raise SpaceError(f"sweep space field {name!r}: {spec!r} needs lo < hi")
    if kind == "log" and low <= 0:
        raise SpaceError(f"sweep space field {name!r}: {spec!r} is a log-range, so lo must be > 0")
    if integer:
        low, high = int(low), int(high)
    return Param(name, kind, low=low, high=high, integer=integer)


def _scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    return text  # "none" stays text here: None only for an optional field (_convert)


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return tp


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace(
        "typing.", "")


def _convert(name: str, tp: Any, value: Any) -> Any:
    """``value`` (JSON-like) as the field's Python value; :class:`SpaceError` if it does not fit."""
    optional = type(None) in typing.get_args(tp)
    if optional and isinstance(value, str) and value.lower() in ("none", "null"):
        value = None
    if value is None:
        if optional:
            return None
        raise SpaceError(f"sweep space field {name!r} cannot be None")
    base = _unwrap_optional(tp)
    origin = typing.get_origin(base)
    bad = f"sweep space field {name!r} is {_type_name(tp)}: the choice {value!r} does not fit; "
    if origin is Literal:
        allowed = typing.get_args(base)
        if value not in allowed:
            raise SpaceError(bad + f"choose among {list(allowed)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpaceError(bad + "this field is a tuple, so give choices of lists, e.g. "
                             f"{name} = [[8], [16, 16]] in TOML or choice:[8],[16,16]")
        args = typing.get_args(base)
        inner = args[0] if args else Any
        return tuple(_convert(name, inner, v) for v in value) if inner is not Any else tuple(value)
    if base is bool:
        if not isinstance(value, bool):
            raise SpaceError(bad + "give true or false")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise SpaceError(bad + "give whole numbers")
        return int(value)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpaceError(bad + "give numbers")
        return float(value)
    if base is str or base is Path:
        if not isinstance(value, str):
            raise SpaceError(bad + "give text")
        return from_jsonable(base, value)
    return from_jsonable(base, value)


def _extremes(param: Param) -> tuple[Any, ...]:
    if param.kind == "choice":
        return param.choices
    return (param.low, param.high)


def apply_params(base: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``base`` with each dotted field of ``values`` replaced (its ``__post_init__`` checks run)."""
    config = base
    for name, value in values.items():
        config = _replace(config, normalise_field(name).split("."), value)
    return config


def _replace(obj: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    new = value if not rest else _replace(getattr(obj, head), rest, value)
    return dataclasses.replace(obj, **{head: new})


# ---------------------------------------------------------------------------- storage URLs

_ENV_REF = re.compile(r"\$\{(\w+)\}")


def expand_storage_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL to connect with: ``${VAR}`` expanded, and ``$BLUR_SWEEP_DB_PASSWORD`` set as the
    password of a URL that has a user but no password (or a masked ``***`` one).

    Never print or save the result; use :func:`mask_url`.
    """
    env = os.environ if environ is None else environ

    def expand(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise SweepError(f"the storage URL refers to ${{{m.group(1)}}}, which is not set in "
                             "the environment; export it")
        return env[m.group(1)]

    url = _ENV_REF.sub(expand, url)
    password = env.get(PASSWORD_ENV)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SweepError(f"storage {mask_url(url)!r} is not a database URL; give e.g. "
                         "sqlite:///DIR/study.db or postgresql://USER@HOST/DB") from None
    if parsed.password == "***":
        if not password:
            raise SweepError(f"the storage URL's password was not saved ({mask_url(url)}); set "
                             f"${PASSWORD_ENV} or give --storage again")
        parsed = parsed.set(password=password)
    elif parsed.username and parsed.password is None and password:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print and save)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(://[^/:@]*):[^@/]*@", r"\1:***@", url)
    return parsed.render_as_string(hide_password=True)


def savable_url(url: str) -> str:
    """What ``sweep.json`` records: the URL as given when its password is only ``${VAR}``
    references (or absent), else masked (the password then comes from the environment)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except ArgumentError:
        return mask_url(url)
    if password is None or re.fullmatch(r"(\$\{\w+\})+", password):
        return url
    log.warning("the storage URL holds a password; it is not saved (%s). Give it through $%s "
                "or ${VAR} in the URL instead", mask_url(url), PASSWORD_ENV)
    return mask_url(url)


# ---------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep runs (saved, with the base config and space, in ``sweep.json``).

    Attributes:
      sweep_dir: the sweep folder (one per worker process).
      trials: trials this folder runs (several workers on one study add up).
      storage: an Optuna RDB URL (never with a literal password); None: SQLite in sweep_dir.
      study_name: the Optuna study (needed with ``storage``, so that workers find each other).
      sampler_seed: TPE's seed (a fresh single-worker sweep is reproducible; a resumed or
        joining worker mixes in the trials already in the study).
      tpe_startup_trials: random trials before TPE models the space.
      pruner: ``median``, ``halving`` (successive halving) or ``none``.
      pruner_startup_trials: finished trials before the median pruner acts.
      pruner_warmup_steps: meta-steps before a trial can be pruned (1: never on the initial
        genome's validation at step 0).
      evaluate: run each trial's final evaluation table (slow; the objective is validation).
      top: rows of the best-trials table.
    """

    sweep_dir: Path
    trials: int
    storage: str | None = None
    study_name: str | None = None
    sampler_seed: int = 0
    tpe_startup_trials: int = 10
    pruner: Literal["median", "halving", "none"] = "median"
    pruner_startup_trials: int = 3
    pruner_warmup_steps: int = 1
    evaluate: bool = False
    top: int = 5

    def __post_init__(self) -> None:
        if self.trials < 0:
            raise SweepError(f"--trials {self.trials} must be >= 0")
        if self.storage is not None and not self.study_name:
            raise SweepError("--storage is shared by several workers, so give --study-name NAME "
                             "too (the same on every worker)")

    def storage_url(self) -> str:
        """The URL as saved (unexpanded, no password)."""
        if self.storage is None:
            return f"sqlite:///{Path(self.sweep_dir).resolve() / 'study.db'}"
        return self.storage

    def name(self) -> str:
        return self.study_name or "blur-sweep"


def pruning_hook(trial: Any) -> Callable[[int, float], None]:
    """The run loop's ``on_validation`` hook: report the score, stop a trial the pruner prunes."""
    import optuna

    def hook(step: int, score: float) -> None:
        trial.report(float(score), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation {100 * score:.1f}% at step {step} is below the "
                                     "pruner's threshold")

    return hook


def make_pruner(settings: SweepSettings) -> Any:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                           n_warmup_steps=settings.pruner_warmup_steps)
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_storage(url: str) -> Any:
    """An Optuna RDB storage for ``url`` (expanded; SQLite waits up to 60 s for a lock)."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    import sqlalchemy.exc

    full = expand_storage_url(url)
    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(full, engine_kwargs=kwargs)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
                # workers that start together race to create the schema (or hit a lock):
                # the loser retries once the winner's tables exist
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except Exception as e:  # driver / connection errors: reported with the masked URL
        from sqlalchemy.engine import make_url

        message = str(e).replace(full, mask_url(url))
        password = make_url(full).password
        if password:
            message = message.replace(password, "***")
        raise SweepError(f"cannot open the study storage {mask_url(url)}: "
                         f"{type(e).__name__}: {message.splitlines()[0] if message else ''}"
                         ) from None


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: the study, its table and the files it wrote."""

    study: Any
    table: str
    best_config: Path | None
    trials_csv: Path


def save_settings(settings: SweepSettings, base: RunConfig, space: Mapping[str, Any]) -> Path:
    """Write ``sweep.json`` (storage URL made savable: no password)."""
    data = {
        "settings": {
            **to_jsonable(settings),
            "sweep_dir": str(settings.sweep_dir),
            "storage": None if settings.storage is None else savable_url(settings.storage),
        },
        "space": {k: to_jsonable(v) for k, v in space.items()},
        "base_config": json.loads(config_to_json(base)),
    }
    path = Path(settings.sweep_dir) / SETTINGS
    write_text_atomic(path, runs.dump_json(data))
    return path


def load_settings(sweep_dir: str | Path) -> tuple[SweepSettings, RunConfig, dict[str, Any]]:
    """``sweep.json`` of a sweep folder: its settings, base config and space entries."""
    path = Path(sweep_dir) / SETTINGS
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path} not found: {sweep_dir} holds no sweep to resume; start it "
                         "without --resume") from None
    settings = from_jsonable(SweepSettings, {**data["settings"], "sweep_dir": Path(sweep_dir)})
    base = config_from_json(json.dumps(data["base_config"]))
    return settings, base, dict(data["space"])


def run_sweep(
    base: RunConfig,
    space_entries: Mapping[str, Any],
    settings: SweepSettings,
    *,
    resume: bool = False,
    run_fn: Callable[..., Any] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring.

    Args:
      base: the config every trial starts from (its ``run_dir`` is set per trial).
      space_entries: ``{dotted field: spec}``, checked by :func:`build_space` first.
      settings: see :class:`SweepSettings`.
      resume: continue the sweep saved in ``settings.sweep_dir``.
      run_fn: the run loop (default :func:`blur.experiments.loop.run`); for tests.
    """
    import optuna

    space = build_space(space_entries, base)
    sweep_dir = Path(settings.sweep_dir)
    if not resume and (sweep_dir / SETTINGS).exists():
        raise SweepError(f"{sweep_dir} already holds a sweep; continue it with --resume or choose "
                         "another --sweep-dir (each worker needs its own)")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with _Lock(sweep_dir):
        if not resume:
            save_settings(settings, base, space_entries)
        storage = open_storage(settings.storage_url())
        log.info("sweep %s: study %r in %s", sweep_dir, settings.name(),
                 mask_url(settings.storage_url()))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        name = settings.name()
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    load_if_exists=True, pruner=make_pruner(settings))
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise SweepError(f"study {name!r} is not maximised: it is not a blur sweep; choose "
                             "another --study-name")
        existing = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.TPESampler(
            seed=settings.sampler_seed + 1_000_003 * existing,
            n_startup_trials=settings.tpe_startup_trials, constant_liar=True,
        )
        me = str(sweep_dir.resolve())
        done = 0
        if resume:
            requeued = _requeue_interrupted(study, storage, me, settings.storage is None)
            done = sum(
                1 for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get("sweep_dir") == me and t.state.is_finished()
                and not t.user_attrs.get("interrupted")
            )
            log.info("resuming %s: %d trials finished, %d interrupted trials re-queued, %d to run",
                     sweep_dir, done, requeued, max(settings.trials - done, 0))
        objective = _Objective(base, space, settings, me, run_fn)
        csv_path = sweep_dir / TRIALS_CSV

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            score = "-" if trial.value is None else f"{100 * trial.value:.1f}%"
            log.info("trial %d %s: %s", trial.number, trial.state.name.lower(), score)
            write_trials_csv(study, csv_path)

        remaining = max(settings.trials - done, 0)
        if remaining:
            study.optimize(objective, n_trials=remaining, catch=(ValueError,),
                           callbacks=[after_trial], gc_after_trial=False)
        write_trials_csv(study, csv_path)
        table = best_trials_table(study, space, settings.top)
        best = write_best_config(study, sweep_dir / BEST_CONFIG)
    return SweepResult(study, table, best, csv_path)


class _Objective:
    """One trial: sample the params, build the config, run it in ``DIR/trial_NNNN``."""

    def __init__(self, base: RunConfig, space: tuple[Param, ...], settings: SweepSettings,
                 me: str, run_fn: Callable[..., Any] | None) -> None:
        self.base, self.space, self.settings, self.me = base, space, settings, me
        self.run_fn = run_fn

    def __call__(self, trial: Any) -> float:
        if self.run_fn is None:
            from blur.experiments.loop import run as run_fn
        else:
            run_fn = self.run_fn
        trial.set_user_attr("sweep_dir", self.me)  # first: marks the trial as this folder's
        values = {p.field: p.suggest(trial) for p in self.space}
        run_dir = Path(self.settings.sweep_dir) / f"trial_{trial.number:04d}"
        trial.set_user_attr("params", {k: to_jsonable(v) for k, v in values.items()})
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("host", socket.gethostname())
        try:
            config = apply_params(self.base, values)
        except (ValueError, TypeError) as e:
            trial.set_user_attr("error", str(e))
            raise ValueError(f"trial {trial.number}: {values} make an invalid config: {e}"
                             ) from None
        config = dataclasses.replace(config, run_dir=run_dir)
        trial.set_user_attr("config", json.loads(config_to_json(
            dataclasses.replace(config, run_dir=None))))
        resume = self._continue_interrupted(trial, config, run_dir)
        log.info("trial %d: %s -> %s", trial.number,
                 ", ".join(f"{k}={to_jsonable(v)}" for k, v in values.items()), run_dir)
        result = run_fn(config, resume=resume, evaluate=self.settings.evaluate,
                        on_validation=pruning_hook(trial))
        trial.set_user_attr("best_step", int(result.best_step))
        trial.set_user_attr("wall_time", float(result.wall_time))
        return float(result.best_score)

    @staticmethod
    def _continue_interrupted(trial: Any, config: RunConfig, run_dir: Path) -> bool:
        """Copy an interrupted trial's run folder (checkpoint) into this trial's folder."""
        source = trial.user_attrs.get("resume_dir")
        if not source or run_dir.exists() or not (Path(source) / runs.CHECKPOINT).exists():
            return False
        shutil.copytree(source, run_dir)
        write_text_atomic(run_dir / runs.CONFIG, config_to_json(config) + "\n")
        from blur.io.checkpoint import load_meta
        from blur.io.metrics import read_metrics

        step = int(load_meta(run_dir / runs.CHECKPOINT)["step"])
        for record in read_metrics(run_dir / runs.METRICS):  # the pruner's earlier evidence
            if record.get("kind") == "validation" and record["step"] <= step:
                trial.report(float(max(record["meta_val_accuracy"])), int(record["step"]))
        log.info("trial %d continues interrupted trial %s from its checkpoint at step %d",
                 trial.number, trial.user_attrs.get("resumes_trial"), step)
        return True


ORPHAN_AGE_S = 600.0


def _requeue_interrupted(study: Any, storage: Any, me: str, private: bool) -> int:
    """Mark this folder's RUNNING trials (left by a killed process) FAIL and re-queue them.

    A trial killed between its creation and its first user attr has no ``sweep_dir``: it is
    taken as this folder's when the storage is the folder's own SQLite (``private``), or, in a
    shared storage, when it started more than ``ORPHAN_AGE_S`` ago (a live worker sets the
    attr within milliseconds).
    """
    import datetime

    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    now = datetime.datetime.now()
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("sweep_dir")
        age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
        if owner != me and not (owner is None and (private or age > ORPHAN_AGE_S)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(t.params), user_attrs={
            "resumes_trial": t.number, "resume_dir": t.user_attrs.get("run_dir")})
        log.warning("trial %d was interrupted (its process was killed): marked failed, and "
                    "re-queued with the same parameters", t.number)
        count += 1
    return count


class _Lock:
    """One process per sweep folder: ``.sweep.lock`` holds the host and pid of its owner."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / LOCK

    def __enter__(self) -> _Lock:
        host = socket.gethostname()
        if self.path.exists():
            try:
                owner = json.loads(self.path.read_text("utf-8"))
            except (ValueError, OSError):
                owner = {}
            if owner.get("host") == host and _alive(int(owner.get("pid", -1))):
                raise SweepError(f"{self.path.parent} is in use by another blur sweep (pid "
                                 f"{owner['pid']}); give each worker its own --sweep-dir "
                                 f"(if that process is gone, delete {self.path})")
        write_text_atomic(self.path, json.dumps({"host": host, "pid": os.getpid()}))
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------- reporting


def _trial_rows(study: Any) -> tuple[list[str], list[dict[str, Any]]]:
    names: list[str] = []
    rows = []
    for t in study.get_trials(deepcopy=False):
        params = t.user_attrs.get("params") or dict(t.params)
        for k in params:
            if k not in names:
                names.append(k)
        duration = t.duration.total_seconds() if t.duration is not None else None
        rows.append({
            "trial": t.number, "state": t.state.name.lower(),
            "score": t.value, "duration_s": duration,
            **{k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in params.items()},
            "run_dir": t.user_attrs.get("run_dir", ""), "host": t.user_attrs.get("host", ""),
            "note": "interrupted" if t.user_attrs.get("interrupted") else (
                f"continues trial {t.user_attrs['resumes_trial']}"
                if "resumes_trial" in t.user_attrs else ""),
        })
    return names, rows


def write_trials_csv(study: Any, path: Path) -> None:
    """Every trial of the study: number, state, score, duration, params, run folder."""
    names, rows = _trial_rows(study)
    buffer = io.StringIO()
    fields = ["trial", "state", "score", "duration_s", *names, "run_dir", "host", "note"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def best_trials_table(study: Any, space: tuple[Param, ...], top: int = 5) -> str:
    """A markdown table of the ``top`` completed trials (best first) and a count by state."""
    names, rows = _trial_rows(study)
    done = sorted((r for r in rows if r["state"] == "complete"), key=lambda r: -r["score"])
    header = ["trial", "score %", "state", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in done[:top]:
        cells = [str(r["trial"]), f"{100 * r['score']:.1f}", r["state"],
                 *(_cell(r.get(n)) for n in names)]
        lines.append("| " + " | ".join(cells) + " |")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines.append("")
    lines.append("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_best_config(study: Any, path: Path) -> Path | None:
    """The best completed trial's full RunConfig as ``best_config.json`` (None if none)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        log.warning("no trial completed: no %s written", path.name)
        return None
    best = max(complete, key=lambda t: t.value)
    config = config_from_json(json.dumps(best.user_attrs["config"]))
    write_text_atomic(path, config_to_json(dataclasses.replace(config, run_dir=None)) + "\n")
    return path
