"""benchmarks/: every index entry builds a valid config from its base and its changes, every
ablation result comes from an entry, and every script still imports (none is run here)."""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from cl_spoof.config import config_from_dict, load_config, to_dict, with_overrides
from cl_spoof.errors import ConfigError
from tests.helpers.paths import ROOT

if str(ROOT) not in sys.path:  # benchmarks is a package run from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import index, run_all  # noqa: E402

ENTRIES = index.load_index()
RESULTS = ROOT / "benchmarks" / "results"


def _in_schema(dotted: str) -> bool:
    """Whether ``dotted`` names a config key (beyond a free mapping such as
    ``model.overrides``, whose keys the preset's config checks)."""
    from cl_spoof.workflows.setup import resolve

    node: Any = resolve(config_from_dict({}))  # every section (and hyper-parameter) at its default
    for part in dotted.split("."):
        if isinstance(node, dict):
            return True
        if not dataclasses.is_dataclass(node):
            return False
        if part in {f.name for f in dataclasses.fields(node)}:
            node = getattr(node, part)
        elif part in getattr(node, "hyperparameters", {}):  # strategy: flat in the YAML
            node = node.hyperparameters[part]
        else:
            return False
    return True


def _sections(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The sections ``changes`` touches, as complete nested mappings."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[leaf] = value
    return {k: data[k] for k in {d.split(".")[0] for d in changes}}


def _at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def test_the_index_is_not_empty_and_names_are_plain() -> None:
    assert len(ENTRIES) >= 20
    for name in ENTRIES:
        assert name.isidentifier(), name


@pytest.mark.parametrize("name", list(ENTRIES))
def test_entry_builds_a_valid_config(name: str) -> None:
    from cl_spoof.models import PRESETS, build_detector
    from cl_spoof.workflows.setup import resolve

    e = ENTRIES[name]
    base_path = ROOT / e.base
    assert base_path.parent == ROOT / "configs" and base_path.is_file(), e.base
    assert e.description.strip(), f"{name}: no description"
    for dotted in e.set:
        assert _in_schema(dotted), f"{name}: {dotted} is not a config key"
    base = load_config(base_path)
    cfg = resolve(with_overrides(base, **_sections(to_dict(base), e.set)) if e.set else base)
    for dotted, value in e.set.items():
        assert _at(to_dict(cfg), dotted) == value, f"{name}: {dotted} not set"
    assert to_dict(index.ablation_config(name)) == to_dict(cfg)  # what --ablation runs
    preset_fields = {f.name for f in dataclasses.fields(PRESETS[cfg.model.preset].config)}
    assert set(cfg.model.overrides) <= preset_fields, name
    build_detector(cfg.model, cfg.data.sample_rate)  # the overrides' values are valid too
    for result in e.results:
        assert (ROOT / result).is_file(), f"{name}: {result} does not exist"
        assert (ROOT / result).parent == RESULTS


@pytest.mark.parametrize("name", list(ENTRIES))
def test_entry_command_runs_an_existing_module(name: str) -> None:
    words = shlex.split(ENTRIES[name].run)
    assert words[:2] == ["python", "-m"], ENTRIES[name].run
    assert (ROOT / (words[2].replace(".", "/") + ".py")).is_file(), words[2]
    if "--ablation" in words:
        assert words[words.index("--ablation") + 1] == name
    if words[2] == "benchmarks.index":  # writes the config of the entry for cl-spoof
        assert words[3] == name
    if ENTRIES[name].set and words[2] != "benchmarks.index":
        assert "--ablation" in words, f"{name}: its command does not apply its changes"


def test_every_ablation_result_comes_from_an_entry() -> None:
    named = {Path(r).name for e in ENTRIES.values() for r in e.results}
    produced = sorted(p.name for pattern in ("abl_*.json", "backbone_*.json")
                      for p in RESULTS.glob(pattern))
    assert produced, "no ablation results found"
    assert [p for p in produced if p not in named] == []


def test_a_bad_key_or_name_is_refused() -> None:
    base = load_config(ROOT / "configs" / "real_vocoders.yaml")
    assert not _in_schema("train.weight_decy")
    with pytest.raises(ConfigError, match="train.weight_decy"):
        index.apply_changes(base, {"train.weight_decy": 0.1})
    with pytest.raises(KeyError, match="known: real_attacks"):
        index.entry("no_such_ablation")


def test_real_set_studies_pass_the_real_set_they_were_given_or_say_where_it_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import _real_sets as rs
    from benchmarks.studies import real_attacks

    shipped = load_config(ROOT / "configs" / "real_vocoders.yaml").data.source
    manifest = tmp_path / "real" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,label,attack,speaker,split\n")
    monkeypatch.setitem(rs.SETS, "vocoders_tts",
                        dataclasses.replace(rs.SETS["vocoders_tts"], default=manifest))
    parser = real_attacks.real_set_parser("doc", "real_attacks")
    cfg = real_attacks.real_set_config(parser, parser.parse_args(["--ablation", "wd"]))
    assert cfg.data.source == str(manifest) != shipped
    manifest.unlink()
    with pytest.raises(SystemExit):
        real_attacks.real_set_config(parser, parser.parse_args([]))
    assert f"--source: vocoders_tts: no manifest at {manifest} (" in capsys.readouterr().err
    kept = real_attacks.real_set_config(parser, parser.parse_args([]), need_source=False)
    assert kept.data.source == shipped


def test_changes_apply_in_order_and_replace_whole_mappings() -> None:
    base = load_config(ROOT / "configs" / "demo.yaml")
    assert base.model.overrides and base.train.augment is None
    cfg = index.apply_changes(base, {"model.overrides": {}, "model.overrides.stats_dim": 4,
                                     "train.augment.p_rawboost": 0.5})
    assert cfg.model.overrides == {"stats_dim": 4}
    assert cfg.train.augment is not None and cfg.train.augment.p_rawboost == 0.5
    assert to_dict(cfg)["data"] == to_dict(base)["data"]


def test_index_command_writes_a_config_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "wd.yaml"
    index.main(["wd", "-o", str(out)])
    assert to_dict(load_config(out)) == to_dict(index.ablation_config("wd"))


def test_ablation_option_names_results_and_runs_after_the_entry(tmp_path: Path) -> None:
    from benchmarks.studies import real_attacks

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,attack,speaker,split\n")
    parser = real_attacks.real_set_parser("doc", "real_attacks")
    args = parser.parse_args(["--ablation", "wd", "--source", str(manifest)])
    cfg = real_attacks.real_set_config(parser, args)
    assert cfg.train.weight_decay == 0.001 and cfg.data.source == str(manifest.resolve())
    assert args.out == ROOT / "runs" / "abl_wd"
    assert real_attacks.ablation_name("wd") == "abl_wd"
    plain = parser.parse_args(["--source", str(manifest)])
    assert real_attacks.real_set_config(parser, plain).train.weight_decay == 0.0
    assert plain.out == ROOT / "runs" / "real_attacks"
    with pytest.raises(SystemExit):
        real_attacks.real_set_config(parser, parser.parse_args(["--ablation", "nope"]))


def _benchmark_modules() -> list[str]:
    package = importlib.import_module("benchmarks")
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, "benchmarks."))


@pytest.mark.parametrize("module", _benchmark_modules())
def test_every_benchmark_module_imports(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # some set OMP_WAIT_POLICY when absent (for their own process): keep this one's as is
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", ""))
    mod = importlib.import_module(module)
    if module.startswith(("benchmarks.speed.", "benchmarks.studies.")) \
            and not module.endswith("__init__"):
        assert callable(getattr(mod, "main", None)), f"{module} has no main()"


def test_run_all_runs_every_speed_benchmark() -> None:
    ran = {cmd[2] for cmd in run_all.commands()}
    speed = {m for m in _benchmark_modules() if m.startswith("benchmarks.speed.")}
    assert ran == speed and len(speed) >= 7
