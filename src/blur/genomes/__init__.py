"""Pretrained genomes shipped with the package, each with its model card.

Each name is a genome file (schema ``blur.genome`` v2: the genome **and** the network it was
meta-trained for, apart from the input and output widths) and a card (``NAME.card.json``,
rendered as ``NAME.md``): how it was made, what it was meta-trained on, and its measured
accuracy-vs-step table against tuned SGD, SGD with momentum and Adam, with the command that
reproduces the table. Cards are written by ``blur genomes card`` from measured output only.

>>> import blur.genomes
>>> blur.genomes.available()                    # doctest: +SKIP
('cma-mnist-k2', 'mnist-k4', 'toy2d-k2')
>>> loaded = blur.genomes.load("mnist-k4")      # doctest: +SKIP
>>> spec = loaded.network.spec(784, 10)         # doctest: +SKIP
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from blur._dataclass_json import from_jsonable, to_jsonable
from blur.genome import GenomeFormatError
from blur.io.genome_file import GenomeFile, genome_file_from_dict
from blur.network import NetworkConfig

CARD_SUFFIX = ".card.json"
REQUIRED_CARD_FIELDS = ("name", "summary", "made_by", "meta_trained_on", "network", "evaluation")
REQUIRED_MADE_BY = ("command", "wall_time_s", "machine")
REQUIRED_EVALUATION = ("command", "tasks", "seed", "settings", "baselines", "rows", "table")


def package_dir() -> Path:
    """The folder holding the shipped genome and card files."""
    return Path(str(resources.files(__name__)))


def available() -> tuple[str, ...]:
    """The shipped genome names, sorted."""
    folder = package_dir()
    return tuple(sorted(p.name[: -len(CARD_SUFFIX)] for p in folder.glob("*" + CARD_SUFFIX)
                        if (folder / (p.name[: -len(CARD_SUFFIX)] + ".json")).exists()))


def _check_name(name: str) -> None:
    names = available()
    if name not in names:
        raise GenomeFormatError(
            f"no shipped genome called {name!r}; available: {', '.join(names)} "
            "(or pass the path of a genome.json file)"
        )


def load(name: str) -> GenomeFile:
    """The shipped genome ``name`` with its network, method and metadata.

    Raises:
      GenomeFormatError: unknown name (the message lists the shipped names).
    """
    _check_name(name)
    path = package_dir() / f"{name}.json"
    return genome_file_from_dict(json.loads(path.read_text("utf-8")), source=f"blur.genomes:{name}")


def card(name: str) -> dict[str, Any]:
    """The model card of ``name`` as a dict (see :func:`render_card` for its fields).

    Its ``network`` is read as a :class:`blur.network.NetworkConfig`, as a genome file's is:
    a field added after the card was written gets its default (e.g. ``hebbian_decay`` 0).
    """
    _check_name(name)
    data = json.loads((package_dir() / f"{name}{CARD_SUFFIX}").read_text("utf-8"))
    if "network" in data:
        data["network"] = to_jsonable(from_jsonable(NetworkConfig, data["network"]))
    return data


def render_card(data: dict[str, Any]) -> str:
    """A card as markdown: provenance, network, meta-training data and the measured table."""
    made, ev = data["made_by"], data["evaluation"]
    net = data["network"]
    wall = made["wall_time_s"]
    wall_text = f"{wall:.0f} s ({wall / 60:.1f} min)" if isinstance(wall, int | float) else "?"
    lines = [
        f"# {data['name']}",
        "",
        data["summary"],
        "",
        "## How it was made",
        "",
        f"- command: `{made['command']}`",
        f"- meta-training wall time: {wall_text}" + (f" ({made['wall_time_note']})"
                                                     if made.get("wall_time_note") else ""),
        f"- machine: {made['machine']}",
        f"- method: {data.get('method') or '?'}",
    ]
    if made.get("source"):
        lines.append(f"- source: {made['source']}")
    lines += [
        "",
        "## Meta-trained on",
        "",
        *[f"- `{t}`" for t in data["meta_trained_on"]],
        "",
        "## Network",
        "",
        f"- hidden widths: {tuple(net['hidden'])} (input and output widths come from the data)",
        f"- K = {net['num_states']} states, feedback `{net['feedback']}`, "
        f"per-layer genome: {net['per_layer_genome']}, neuron norm `{net['neuron_norm']}`",
        "",
        "## Measured accuracy vs inner step",
        "",
        f"Query accuracy (%, mean ± s.e. over {ev['settings']['num_tasks']} fresh tasks per "
        f"family, batch {ev['settings']['batch_size']}, {ev['settings']['query_size']} query "
        "examples per task). Baselines: an MLP of the same hidden widths trained on the same "
        "batches from the same init keys, learning rate oracle-tuned per step over "
        "`blur.baselines.DEFAULT_LRS` (in brackets). The last columns are the paired "
        "difference to the best tuned baseline with its 95% t-interval over tasks.",
        "",
        ev["table"],
        "",
        f"Reproduce: `{ev['command']}`",
        "",
        f"Measured {ev.get('measured_at', '?')} on {ev.get('machine', '?')} in "
        f"{ev.get('wall_time_s', float('nan')):.0f} s.",
        "",
    ]
    if data.get("card_command"):
        lines += [f"This card was written by: `{data['card_command']}`", ""]
    return "\n".join(lines)
