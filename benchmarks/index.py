"""The index of studies and ablations, ``benchmarks/index.yaml``, and the configs it describes.

Each entry names a base config (a file of ``configs/``) and the dotted keys it changes
(``train.weight_decay: 0.001``; a key naming a whole mapping, ``model.overrides: {}``,
replaces it), with a one-line description, the command that produced its results and
the result files. The study scripts take ``--ablation NAME`` and build the config from
here; for a run of your own, write it out::

    python -m benchmarks.index                     # every entry, one line each
    python -m benchmarks.index NAME [-o FILE]      # the config of NAME as YAML
    cl-spoof run FILE --strategy joint [--data PATH/TO/manifest.csv]

(``--data`` where the base config names no data: ``configs/real_vocoders.yaml``.)
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import REPO
from cl_spoof.config import load_config, to_dict, with_overrides
from cl_spoof.workflows.setup import resolve

INDEX = REPO / "benchmarks" / "index.yaml"
FIELDS = ("base", "set", "description", "run", "results")


@dataclass(frozen=True)
class Entry:
    """One study or ablation of the index."""

    name: str
    base: str  # relative to the repository root
    set: dict[str, Any]  # dotted key -> value, applied in this order
    description: str
    run: str  # the command that produced the results
    results: tuple[str, ...]  # relative to the repository root

    @property
    def results_name(self) -> str | None:
        """The name the results were written under (``abl_wd`` for ``abl_wd.json``)."""
        stems = {Path(r).stem for r in self.results}
        return stems.pop() if len(stems) == 1 else None


def load_index(path: Path = INDEX) -> dict[str, Entry]:
    """Every entry of the index, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = {}
    for name, raw in data.items():
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise ValueError(f"{path}: {name}: unknown field(s) {unknown}; fields: {FIELDS}")
        entries[name] = Entry(name=name, base=raw["base"], set=dict(raw.get("set") or {}),
                              description=raw["description"], run=raw.get("run", ""),
                              results=tuple(raw.get("results") or ()))
    return entries


def entry(name: str, path: Path = INDEX) -> Entry:
    """The entry ``name``; ``KeyError`` listing the known names otherwise."""
    entries = load_index(path)
    if name not in entries:
        raise KeyError(f"no entry {name!r} in {path.name}; known: {', '.join(entries)}")
    return entries[name]


def nested(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of the plain config ``base`` with every dotted key of ``changes`` set."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for depth, part in enumerate(parents):
            if node.get(part) is None:
                node[part] = {}  # a section left out or null (train.augment) gets its keys
            node = node[part]
            if not isinstance(node, dict):
                raise KeyError(f"{dotted}: {'.'.join(parents[:depth + 1])} is not a mapping")
        node[leaf] = copy.deepcopy(value)
    return data


def apply_changes(cfg: Any, changes: dict[str, Any]) -> Any:
    """``cfg`` with the dotted keys of ``changes`` set, validated like a config file (an
    unknown key or a bad value is a ``ConfigError`` naming it)."""
    data = nested(to_dict(cfg), changes)
    touched = {dotted.split(".")[0] for dotted in changes}
    return with_overrides(cfg, **{section: data[section] for section in touched})


def ablation_config(name: str, path: Path = INDEX) -> Any:
    """The config of index entry ``name``: its base with its changes, resolved by the
    strategy and metric registries like any config a run is given."""
    e = entry(name, path)
    return resolve(apply_changes(load_config(REPO / e.base), e.set))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", nargs="?", help="an entry of the index (none: list them)")
    ap.add_argument("-o", "--out", type=Path, help="write the config here (default: print)")
    args = ap.parse_args(argv)
    if args.name is None:
        for e in load_index().values():
            print(f"{e.name}: {e.description}")
        return
    try:
        cfg = ablation_config(args.name)
    except KeyError as exc:
        ap.error(str(exc.args[0]))
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
