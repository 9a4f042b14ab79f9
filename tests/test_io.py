"""blur.io: atomic writes, checkpoints, genome files, metrics.jsonl, config JSON and plots."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import blur
from blur import _atomic as atomic
from blur.experiments.config import (
    PRESETS,
    RunConfig,
    config_from_json,
    config_to_json,
    get_preset,
)
from blur.io import checkpoint
from blur.io.atomic import write_bytes_atomic, write_text_atomic
from blur.io.checkpoint import CheckpointError, load_checkpoint, load_meta, save_checkpoint
from blur.io.genome_file import load_genome, save_genome
from blur.io.metrics import append_metrics, read_metrics, truncate_metrics
from blur.io.plots import plot_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------- atomic


def test_atomic_write_creates_and_replaces_without_temp_files(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_text_atomic(path, "first\n")
    assert path.read_text() == "first\n"
    write_bytes_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert _files(path.parent) == ["a.txt"]


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    """The new file gets the mode of any newly created file (umask), not mkstemp's 0600."""
    plain = tmp_path / "plain"
    plain.write_text("x")
    path = tmp_path / "atomic"
    write_text_atomic(path, "x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "shared", "x")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "write"])
def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "genome.json"
    path.write_text("old complete content")

    def boom(*args, **kwargs):
        raise OSError(f"simulated failure in {fail_at}")

    if fail_at == "replace":
        monkeypatch.setattr(atomic.os, "replace", boom)
    elif fail_at == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", boom)
    else:
        real_fdopen = os.fdopen

        class HalfWriter:
            """Writes half of the data, then fails (a full disk, a kill)."""

            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()
                return False

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                raise OSError("simulated failure in write")

        monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match=f"simulated failure in {fail_at}"):
        write_text_atomic(path, "new content that must never be seen half written")
    assert path.read_text() == "old complete content"
    assert _files(tmp_path) == ["genome.json"]


def test_atomic_write_interrupt_cleans_up(tmp_path, monkeypatch):
    """A KeyboardInterrupt (BaseException) mid-write also removes the temporary file."""
    path = tmp_path / "x.bin"

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(path, b"data")
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- checkpoint


def _tree():
    return {
        "genome": {"a": jnp.arange(6, dtype=jnp.float32).reshape(2, 3), "b": jnp.float32(0.5)},
        "count": jnp.array([3, 4], jnp.int32),
        "list": [np.linspace(0, 1, 5)],
    }


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "checkpoint.npz"
    tree = _tree()
    save_checkpoint(path, tree, {"step": 7, "note": "x"})
    like = {
        "genome": {"a": np.zeros((2, 3), np.float32), "b": np.zeros((), np.float32)},
        "count": np.zeros((2,), np.int32),
        "list": [np.zeros(5)],
    }
    loaded, meta = load_checkpoint(path, like)
    assert meta["step"] == 7 and meta["note"] == "x" and meta["num_leaves"] == 4
    assert load_meta(path) == meta
    np.testing.assert_array_equal(loaded["genome"]["a"], np.arange(6).reshape(2, 3))
    assert loaded["genome"]["a"].dtype == np.float32
    assert float(loaded["genome"]["b"]) == 0.5
    np.testing.assert_array_equal(loaded["count"], [3, 4])
    assert loaded["count"].dtype == np.int32
    np.testing.assert_array_equal(loaded["list"][0], np.linspace(0, 1, 5))
    assert _files(tmp_path) == ["checkpoint.npz", "checkpoint.npz.json"]


def _like():
    return {
        "genome": {"a": np.zeros((2, 3), np.float32), "b": np.zeros((), np.float32)},
        "count": np.zeros((2,), np.int32),
        "list": [np.zeros(5)],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda like: {**like, "count": np.zeros((3,), np.int32)}, "shape"),
        (lambda like: {**like, "count": np.zeros((2,), np.float32)}, "int32"),
        (lambda like: {**like, "extra": np.zeros(1)}, "holds 4 arrays but this run needs 5"),
        (lambda like: {k: v for k, v in like.items() if k != "list"}, "needs 3"),
    ],
)
def test_checkpoint_rejects_mismatched_template(tmp_path, change, message):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _tree(), {"step": 1})
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path, change(_like()))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_checkpoint_rejects_non_finite(tmp_path, bad):
    path = tmp_path / "c.npz"
    tree = _tree()
    tree["list"][0][2] = bad
    save_checkpoint(path, tree, {"step": 1})
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(path, _like())


def test_checkpoint_rejects_corrupt_or_missing_files(tmp_path):
    path = tmp_path / "c.npz"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(path, _like())
    with pytest.raises(CheckpointError, match="sidecar not found"):
        load_meta(path)
    save_checkpoint(path, _tree(), {"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # torn archive
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(path, _like())
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(path, _like())
    path.unlink()
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(path, _like())
    side = Path(str(path) + ".json")
    side.write_text('{"version": 1, "num_lea')
    with pytest.raises(CheckpointError, match="corrupt checkpoint sidecar"):
        load_meta(path)
    side.write_text('{"version": 99}')
    with pytest.raises(CheckpointError, match="version 1"):
        load_meta(path)


def test_checkpoint_metadata_inside_the_archive_is_authoritative(tmp_path):
    """The sidecar is a readable copy: a stale, torn or missing sidecar does not change what is
    loaded (the arrays and the metadata of the archive always belong together)."""
    path = tmp_path / "c.npz"
    save_checkpoint(path, _tree(), {"step": 1})
    side = Path(str(path) + ".json")
    assert json.loads(side.read_text()) == load_meta(path)
    side.write_text('{"version": 1, "num_leaves": 3, "step": 0}')
    assert load_checkpoint(path, _like())[1]["step"] == 1
    side.write_text("{")
    assert load_meta(path)["step"] == 1
    side.unlink()
    assert load_checkpoint(path, _like())[1]["step"] == 1


def test_checkpoint_crash_between_archive_and_sidecar(tmp_path, monkeypatch):
    """A kill after the archive is replaced but before the sidecar is: the new arrays load
    with the new step (they used to load with the old sidecar's step)."""
    path = tmp_path / "c.npz"
    save_checkpoint(path, [np.zeros(3)], {"step": 3})

    def killed(*args):
        raise KeyboardInterrupt("killed between the two writes")

    monkeypatch.setattr(checkpoint, "write_text_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, [np.ones(3)], {"step": 6})
    tree, meta = load_checkpoint(path, [np.zeros(3)])
    assert meta["step"] == 6
    np.testing.assert_array_equal(tree[0], np.ones(3))
    assert json.loads(Path(str(path) + ".json").read_text())["step"] == 3  # the stale copy


def test_checkpoint_without_embedded_metadata_uses_the_sidecar(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, leaf_00000=np.arange(3.0))
    Path(str(path) + ".json").write_text('{"version": 1, "num_leaves": 1, "step": 4}')
    tree, meta = load_checkpoint(path, [np.zeros(3)])
    assert meta["step"] == 4 and np.array_equal(tree[0], np.arange(3.0))


def test_checkpoint_refuses_non_json_meta_and_keeps_old(tmp_path):
    """A non-finite value in the metadata is refused before anything is written."""
    path = tmp_path / "c.npz"
    save_checkpoint(path, _tree(), {"step": 1})
    bigger = _tree()
    bigger["list"][0] = bigger["list"][0] + 1.0
    with pytest.raises(ValueError):
        save_checkpoint(path, bigger, {"step": 2, "best": float("nan")})
    tree, meta = load_checkpoint(path, _like())
    assert meta["step"] == 1 and load_meta(path)["step"] == 1
    np.testing.assert_array_equal(tree["list"][0], np.linspace(0, 1, 5))  # the old arrays
    assert _files(tmp_path) == ["c.npz", "c.npz.json"]


# ------------------------------------------------------------------------- genome files


def test_genome_file_round_trip_with_metadata(tmp_path):
    genome = blur.random_genome(jax.random.key(3), 3, 2)
    path = tmp_path / "genome.json"
    save_genome(genome, path, step=5, run=1, meta_val_accuracy=0.75)
    data = json.loads(path.read_text())
    assert data["metadata"] == {"step": 5, "run": 1, "meta_val_accuracy": 0.75}
    assert data["num_states"] == 3 and data["num_layers"] == 2
    loaded = load_genome(path)
    for name in blur.genome_to_dict(genome)["fields"]:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(genome, name), err_msg=name)
    assert _files(tmp_path) == ["genome.json"]


def test_genome_file_rejects_bad_content(tmp_path):
    genome = blur.delta_genome(2)
    path = tmp_path / "genome.json"
    with pytest.raises(blur.GenomeFormatError, match="no such genome file"):
        load_genome(path)
    save_genome(genome, path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(blur.GenomeFormatError, match="corrupt genome file") as err:
        load_genome(path)
    assert str(path) in str(err.value)
    data = blur.genome_to_dict(genome)
    data["fields"]["eta"] = float("nan")
    path.write_text(json.dumps(data))  # Python writes the NaN token; json.loads accepts it
    with pytest.raises(blur.GenomeFormatError, match="'eta' holds non-finite"):
        load_genome(path)
    data = blur.genome_to_dict(genome)
    data["fields"]["nu"] = [[1.0, 2.0]]
    path.write_text(json.dumps(data))
    with pytest.raises(blur.GenomeFormatError, match="'nu' has shape"):
        load_genome(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(blur.GenomeFormatError):
        load_genome(path)


def test_save_genome_refuses_non_finite_and_keeps_old(tmp_path):
    path = tmp_path / "genome.json"
    good = blur.delta_genome(2)
    save_genome(good, path)
    before = path.read_text()
    with pytest.raises(ValueError):
        save_genome(good.replace(eta=jnp.float32(jnp.inf)), path)
    assert path.read_text() == before
    assert _files(tmp_path) == ["genome.json"]


# ------------------------------------------------------------------------------ metrics


def test_metrics_append_read_and_non_finite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_metrics(path) == []
    append_metrics(path, {"step": 0, "loss": 1.5, "v": [1.0, float("nan")]})
    append_metrics(path, {"step": 1, "loss": float("inf"), "g": {"f": float("-inf")}})
    recs = read_metrics(path)
    assert recs == [
        {"step": 0, "loss": 1.5, "v": [1.0, None]},
        {"step": 1, "loss": None, "g": {"f": None}},
    ]
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_metrics_torn_last_line_is_ignored_and_removed_by_truncate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for s in range(5):
        append_metrics(path, {"step": s, "kind": "train"})
    with open(path, "a") as f:
        f.write('{"step": 5, "kind": "tra')  # killed mid-write
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2, 3, 4]
    truncate_metrics(path, 2)
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2]
    assert path.read_text().endswith("\n")
    append_metrics(path, {"step": 3, "kind": "train"})
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2, 3]
    assert _files(tmp_path) == ["metrics.jsonl"]


def test_truncate_metrics_keeps_records_up_to_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for rec in [{"step": 0}, {"step": 3, "kind": "validation"}, {"step": 1}, {"x": 1},
                {"step": 4}]:
        append_metrics(path, rec)
    truncate_metrics(path, 3)
    assert read_metrics(path) == [{"step": 0}, {"step": 3, "kind": "validation"}, {"step": 1},
                                  {"x": 1}]
    truncate_metrics(path, -1)
    assert read_metrics(path) == [{"x": 1}]


def test_truncate_metrics_bound_per_kind(tmp_path):
    """Resuming at a checkpoint after n steps keeps train records of steps < n (0-based index)
    and validation records of steps <= n (they count the steps done)."""
    path = tmp_path / "metrics.jsonl"
    recs = [{"step": 2, "kind": "train"}, {"step": 3, "kind": "validation"},
            {"step": 3, "kind": "train"}, {"step": 4, "kind": "validation"}, {"step": 1}]
    for rec in recs:
        append_metrics(path, rec)
    truncate_metrics(path, 2, max_step_by_kind={"validation": 3})
    assert read_metrics(path) == [recs[0], recs[1], recs[4]]


# ------------------------------------------------------------------------------- config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip_for_every_preset(name):
    config = get_preset(name)
    back = config_from_json(config_to_json(config))
    assert back == config
    assert isinstance(back.network.hidden, tuple)
    assert isinstance(back.tasks.train, tuple)
    assert type(back.gradient.curriculum) is type(config.gradient.curriculum)
    assert type(back.evolution.cma) is type(config.evolution.cma)
    with_dir = dataclasses.replace(config, run_dir=Path("runs/x"), seed=3)
    back = config_from_json(config_to_json(with_dir))
    assert back == with_dir and isinstance(back.run_dir, Path)
    # the JSON is plain and stable: a second round trip gives the same text
    assert config_to_json(back) == config_to_json(with_dir)


def test_config_from_json_rejects_unknown_fields():
    data = json.loads(config_to_json(RunConfig()))
    data["bogus"] = 1
    with pytest.raises(ValueError, match=r"unknown RunConfig fields \['bogus'\]"):
        config_from_json(json.dumps(data))
    data = json.loads(config_to_json(RunConfig()))
    data["gradient"]["curriculum"]["evry"] = 3
    with pytest.raises(ValueError, match=r"unknown Curriculum fields \['evry'\]"):
        config_from_json(json.dumps(data))
    data = json.loads(config_to_json(RunConfig()))
    data["network"] = [1, 2]
    with pytest.raises(ValueError, match="expected an object for NetworkConfig"):
        config_from_json(json.dumps(data))


def test_config_from_json_validates_values():
    data = json.loads(config_to_json(RunConfig()))
    data["gradient"]["curriculum"]["maximum"] = 1  # < start
    with pytest.raises(ValueError, match="Curriculum"):
        config_from_json(json.dumps(data))
    data = json.loads(config_to_json(RunConfig()))
    data["validate_num_steps"] = 0
    with pytest.raises(ValueError, match="validate_num_steps must be >= 1"):
        config_from_json(json.dumps(data))


# -------------------------------------------------------------------------------- plots


def _png_ok(path: Path) -> tuple[int, int]:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_plot_run_writes_valid_pngs(tmp_path):
    for s in range(6):
        append_metrics(tmp_path / "metrics.jsonl", {
            "step": s, "kind": "train", "meta_loss": [1.0 / (s + 1), 2.0 / (s + 1)],
            "meta_train_accuracy": [0.5 + 0.05 * s, 0.6],
        })
    append_metrics(tmp_path / "metrics.jsonl",
                   {"step": 6, "kind": "validation", "meta_val_accuracy": [0.6, 0.7]})
    paths = plot_run(tmp_path)
    assert paths == [tmp_path / "meta_training.png"]
    assert _png_ok(paths[0]) == (1100, 400)
    # an eval.json of the format before per-task curves: no accuracy plot, no error
    results = [{"family": "pie", "blur": [0.5, 0.6, 0.7], "sgd": {"curve": [0.5, 0.8, 0.9]}}]
    (tmp_path / "eval.json").write_text(json.dumps({"report_steps": [2], "results": results}))
    assert plot_run(tmp_path) == [tmp_path / "meta_training.png"]
    families = [{"family": f, "genomes": {"BLUR": [[0.5, 0.6, 0.7], [0.4, 0.7, 0.8]]},
                 "baselines": {"sgd": {"oracle": [[0.5, 0.8, 0.9], [0.5, 0.7, 0.9]]}}}
                for f in ("pie", "xor")]
    (tmp_path / "eval.json").write_text(json.dumps({"report_steps": [2], "families": families}))
    paths = plot_run(tmp_path)
    assert paths == [tmp_path / "meta_training.png", tmp_path / "accuracy_vs_step.png"]
    for p in paths:
        w, h = _png_ok(p)
        assert w > 100 and h > 100


def test_plot_run_refuses_folder_without_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_run(tmp_path)
    assert _files(tmp_path) == []


# ------------------------------------------------------------------ genome file schema v2


def test_genome_file_v2_carries_network_and_method(tmp_path):
    from blur.io.genome_file import load_genome_file
    from blur.network import NetworkConfig

    network = NetworkConfig(hidden=(7, 5), num_states=3, per_layer_genome=True,
                            synapse_stabiliser=("oja",), synapse_keep_max=1.0)
    genome = blur.random_genome(jax.random.key(0), 3, 3)
    save_genome(genome, tmp_path / "g.json", network=network, method="cma", step=4)
    loaded = load_genome_file(tmp_path / "g.json")
    assert loaded.network == network and loaded.method == "cma"
    assert loaded.metadata == {"step": 4}
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, loaded.genome, genome))
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["schema_version"] == 2 and data["network"]["hidden"] == [7, 5]


def test_genome_file_network_fields_added_later_take_their_defaults(tmp_path):
    """``norm_output`` (added after files such as the shipped ``mnist-k4`` were written):
    False round-trips, and a file without the key loads with the default, True."""
    from blur.io.genome_file import load_genome_file
    from blur.network import NetworkConfig

    network = NetworkConfig(hidden=(7,), neuron_norm="both", norm_output=False)
    save_genome(blur.delta_genome(2), tmp_path / "g.json", network=network)
    assert load_genome_file(tmp_path / "g.json").network.norm_output is False
    data = json.loads((tmp_path / "g.json").read_text())
    del data["network"]["norm_output"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_genome_file(tmp_path / "old.json").network.norm_output is True


def test_genome_file_v1_still_loads_without_a_network(tmp_path):
    from blur.io.genome_file import load_genome_file

    genome = blur.delta_genome(2)
    data = blur.genome_to_dict(genome)
    data["schema_version"] = 1
    (tmp_path / "v1.json").write_text(json.dumps({**data, "metadata": {"step": 1}}))
    loaded = load_genome_file(tmp_path / "v1.json")
    assert loaded.network is None and loaded.method is None and loaded.metadata == {"step": 1}


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["network"].update(num_states=3), "K=2 states but the network has num_states=3"),
    (lambda d: d["network"].update(per_layer_genome=True), "a per-layer genome fixes the depth"),
    (lambda d: d["network"].update(hiden=[3]), r"unknown NetworkConfig fields \['hiden'\]"),
    (lambda d: d["network"].update(neuron_norm="sideways"), "neuron_norm='sideways' is invalid"),
    (lambda d: d.update(method="magic"), "method is 'magic'"),
])
def test_genome_file_with_a_network_that_does_not_fit_is_refused(tmp_path, change, message):
    from blur.io.genome_file import genome_file_dict, load_genome_file
    from blur.network import NetworkConfig

    data = genome_file_dict(blur.delta_genome(2), network=NetworkConfig(), method="gradient")
    change(data)
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(blur.GenomeFormatError, match=message) as err:
        load_genome_file(tmp_path / "g.json")
    assert "g.json" in str(err.value)
