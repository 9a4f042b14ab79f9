"""Genome files: JSON with a schema version, written atomically, loaded strictly (no pickle).

Schema ``blur.genome`` v2 is the genome (:func:`blur.genome.genome_to_dict`) plus, optionally:

* ``network``: the :class:`blur.network.NetworkConfig` it was meta-trained for (every spec
  field but the input and output widths, which come from the data);
* ``method``: how it was made (``gradient`` or ``cma``; or ``hand`` for a built-in genome);
* ``metadata``: free-form JSON (run folder, meta-step, validation score, ...).

So a v2 file holds everything needed to train a fresh network on new data. v1 files (no
network) still load; :func:`load_genome_file` then gives ``network=None``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from blur._dataclass_json import from_jsonable, to_jsonable
from blur.genome import Genome, GenomeFormatError, genome_from_dict, genome_to_dict
from blur.io.atomic import write_text_atomic
from blur.network import NetworkConfig

METHODS = ("gradient", "cma", "hand")
_EXTRA_KEYS = ("metadata", "network", "method")


@dataclasses.dataclass(frozen=True)
class GenomeFile:
    """A loaded genome file.

    Attributes:
      genome: the rule.
      network: the network it was meta-trained for (None in a v1 file).
      method: ``gradient``, ``cma`` or ``hand`` (None in a v1 file or when unrecorded).
      metadata: the file's free-form metadata (empty if none).
    """

    genome: Genome
    network: NetworkConfig | None = None
    method: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def genome_file_dict(
    genome: Genome,
    *,
    network: NetworkConfig | None = None,
    method: str | None = None,
    **metadata: object,
) -> dict[str, Any]:
    """The JSON object of a v2 genome file (see the module docstring)."""
    if method is not None and method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {list(METHODS)}")
    if network is not None:
        check_network_fits(genome, network, "save_genome")
    data = genome_to_dict(genome)
    if network is not None:
        data["network"] = to_jsonable(network)
    if method is not None:
        data["method"] = method
    if metadata:
        data["metadata"] = metadata
    return data


def save_genome(
    genome: Genome,
    path: str | os.PathLike[str],
    *,
    network: NetworkConfig | None = None,
    method: str | None = None,
    **metadata: object,
) -> None:
    """Write ``genome`` (schema ``blur.genome`` v2) with its network, method and metadata."""
    data = genome_file_dict(genome, network=network, method=method, **metadata)
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def check_network_fits(genome: Genome, network: NetworkConfig, source: str) -> None:
    """Raise ``GenomeFormatError`` (naming ``source`` and the fix) if the genome cannot drive
    ``network``: another K, or a per-layer genome of another depth."""
    if genome.num_states != network.num_states:
        raise GenomeFormatError(
            f"{source}: the genome has K={genome.num_states} states but the network has "
            f"num_states={network.num_states}; use --network.num-states {genome.num_states}"
        )
    per_layer = genome.num_layers is not None
    if per_layer != network.per_layer_genome or (
        per_layer and genome.num_layers != network.num_layers
    ):
        raise GenomeFormatError(
            f"{source}: the genome has num_layers={genome.num_layers} but the network has "
            f"per_layer_genome={network.per_layer_genome} with {network.num_layers} synapse "
            "layers; a per-layer genome fixes the depth (give "
            f"{max((genome.num_layers or 1) - 1, 0)} hidden widths)"
        )


def genome_file_from_dict(data: Any, *, source: str = "genome") -> GenomeFile:
    """Validate a genome file's JSON object (v1 or v2); errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise GenomeFormatError(f"{source}: expected a JSON object")
    genome = genome_from_dict(
        {k: v for k, v in data.items() if k not in _EXTRA_KEYS}, source=source
    )
    network = None
    if data.get("network") is not None:
        try:
            network = from_jsonable(NetworkConfig, data["network"])
        except (ValueError, TypeError) as e:
            raise GenomeFormatError(f"{source}: invalid 'network': {e}") from None
        check_network_fits(genome, network, source)
    method = data.get("method")
    if method is not None and method not in METHODS:
        raise GenomeFormatError(
            f"{source}: method is {method!r}, expected one of {list(METHODS)}"
        )
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise GenomeFormatError(f"{source}: 'metadata' must be an object")
    return GenomeFile(genome=genome, network=network, method=method, metadata=metadata)


def load_genome_file(path: str | os.PathLike[str]) -> GenomeFile:
    """Read and validate a genome file with its network, method and metadata.

    Raises:
      GenomeFormatError: the file is missing, not JSON, or fails validation (shapes, dtypes,
        finiteness, a network that does not fit the genome); the message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise GenomeFormatError(f"{path}: no such genome file") from None
    except IsADirectoryError:
        raise GenomeFormatError(
            f"{path}: is a folder; pass the genome.json file inside it"
        ) from None
    except UnicodeDecodeError:
        raise GenomeFormatError(f"{path}: not a UTF-8 JSON genome file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenomeFormatError(
            f"{path}: corrupt genome file, invalid JSON at line {e.lineno} column {e.colno} "
            f"({e.msg}); re-export it with `blur` or restore it from the run's checkpoint"
        ) from None
    return genome_file_from_dict(data, source=str(path))


def load_genome(path: str | os.PathLike[str]) -> Genome:
    """The genome alone of a validated genome file (see :func:`load_genome_file`)."""
    return load_genome_file(path).genome
