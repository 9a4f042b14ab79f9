"""Shipped genomes: every name loads with a network that fits it, every card has its fields;
the slow test re-measures every card's table and fails if a genome falls > 1 point below it."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import blur
from blur import genomes
from blur._dataclass_json import to_jsonable
from blur.cli.main import main as cli
from blur.experiments.config import EvalSettings
from blur.genome import GenomeFormatError
from blur.io.genome_file import check_network_fits

NAMES = genomes.available()
REQUIRED_NAMES = ("toy2d-k2", "mnist-k4", "cma-mnist-k2")


def test_the_required_names_are_shipped():
    assert set(REQUIRED_NAMES) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_loads_with_a_network_that_fits_it(name):
    loaded = genomes.load(name)
    assert loaded.network is not None and loaded.method in ("gradient", "cma")
    check_network_fits(loaded.genome, loaded.network, name)
    spec = loaded.network.spec(7, 3)  # any widths: the genome does not fix them
    state = blur.init_state(jax.random.key(0), loaded.genome, spec, 4)
    x = jax.random.normal(jax.random.key(1), (4, 7))
    state, _ = blur.step(loaded.genome, spec, state, blur.Batch(x=x, y=np.arange(4) % 3))
    assert np.isfinite(np.asarray(blur.predict(loaded.genome, spec, state, x))).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_card_has_the_required_fields(name):
    card = genomes.card(name)
    for field in genomes.REQUIRED_CARD_FIELDS:
        assert card.get(field), f"{name}: card field {field!r} is empty"
    for field in genomes.REQUIRED_MADE_BY:
        assert card["made_by"].get(field) not in (None, ""), f"{name}: made_by.{field}"
    ev = card["evaluation"]
    for field in genomes.REQUIRED_EVALUATION:
        assert ev.get(field) not in (None, "", []), f"{name}: evaluation.{field}"
    assert ev["settings"]["num_tasks"] >= 10
    assert set(ev["baselines"]) == {"sgd", "momentum", "adam"}
    assert ev["command"].startswith(f"blur compare {name} ")
    assert card["card_command"].startswith(f"blur genomes card {name} ")
    assert card["network"] == json.loads(json.dumps(to_jsonable(genomes.load(name).network)))
    for row in ev["rows"]:
        assert {name, "sgd", "momentum", "adam"} <= set(row)
    text = genomes.render_card(card)
    assert ev["table"] in text and ev["command"] in text and card["made_by"]["command"] in text
    assert (genomes.package_dir() / f"{name}.md").read_text() == text


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(GenomeFormatError, match="available: " + ", ".join(NAMES)):
        genomes.load("no-such-genome")


def test_blur_genomes_list_and_show(capsys):
    assert cli(["genomes", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
    assert cli(["genomes", "show", NAMES[0]]) == 0
    assert "Reproduce: `blur compare" in capsys.readouterr().out
    assert cli(["genomes", "show", "nope"]) == 1
    assert "available" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("name", NAMES)
def test_card_table_is_reproduced_within_one_point(name, require_dataset):
    """Re-measure the card's table with its own command's settings; the genome may not fall
    more than 1 point below any entry of its card."""
    from blur.experiments.compare import compare

    card = genomes.card(name)
    ev = card["evaluation"]
    for task in ev["tasks"]:
        for data in ("fashion_mnist", "mnist", "omniglot"):
            if task.startswith(data):
                require_dataset(data)
                break
    settings = EvalSettings(**{**ev["settings"],
                               "report_steps": tuple(ev["settings"]["report_steps"]),
                               "baselines": tuple(ev["baselines"])})
    comp = compare([name], ev["tasks"], settings, jax.random.PRNGKey(ev["seed"]))
    now = {(r["family"], r["step"]): r[name]["mean"] for r in comp.report.rows}
    for row in ev["rows"]:
        card_value = row[name]["mean"]
        measured = now[(row["family"], row["step"])]
        assert measured >= card_value - 0.01, (
            f"{name} on {row['family']} at step {row['step']}: {100 * measured:.1f}% now, "
            f"{100 * card_value:.1f}% on its card")
