"""Config: YAML reading (duplicates, anchors, overrides), typed sections with their checks,
the strategy section resolved by its registry, and the continual summary metrics."""

from __future__ import annotations

import dataclasses
import re
import time
import types
import typing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cl_spoof.config import (
    RunConfig,
    StrategyConfig,
    apply_overrides,
    config_from_dict,
    default_config_path,
    load_config,
    parse_yaml,
    to_dict,
    to_yaml,
    with_overrides,
)
from cl_spoof.errors import ConfigError
from cl_spoof.metrics.continual import summarize
from cl_spoof.strategies.registry import hyperparameters, resolve_strategy
from cl_spoof.workflows.setup import load_run_config, resolve
from tests.helpers.paths import ROOT

SHIPPED = sorted((ROOT / "configs").glob("*.yaml")) + sorted(
    (ROOT / "benchmarks" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    cfg = load_run_config(path)
    again = resolve(config_from_dict(parse_yaml(to_yaml(cfg))))
    assert again == cfg and to_yaml(again) == to_yaml(cfg)


def test_demo_config_in_package_is_the_repo_one() -> None:
    assert default_config_path().read_text() == (ROOT / "configs" / "demo.yaml").read_text()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"epoch": 3}}, "unknown config key 'train.epoch'"),
        ({"trian": {}}, "unknown config key 'trian'"),
        ({"train": {"epochs": "3"}}, "train.epochs: expected an integer"),
        ({"data": {"allow_missing": "yes"}}, "data.allow_missing: expected true or false"),
        ({"data": {"bonafide_sharing": "some"}},
         "data.bonafide_sharing must be one of all, disjoint, got 'some'"),
        ({"data": {"level": "loud"}}, "data.level must be one of none, rms, peak, got 'loud'"),
        ({"train": {"lr": 0}}, "train.lr must be positive"),
        ({"train": {"lr_gamma": 0}}, r"train.lr_gamma must be in \(0, 1\]"),
        ({"train": {"augment": {"rawboost": 9}}},
         "train.augment.rawboost must be a RawBoost algorithm id 0-8"),
        ({"train": {"augment": {"codec_rates": [8000, 500]}}},
         r"train.augment.codec_rates must list sample rates between 1000 and 192000 Hz, "
         r"got \[8000, 500\]"),
        ({"train": {"augment": {"ssi_snr_min": 50}}},
         "train.augment.ssi_snr_min must be at most ssi_snr_max"),
        ({"data": {"sources": [{"name": "a", "path": "b", "max_test": 1}]}},
         r"data.sources\[0\].max_test must be at least 2"),
        ({"data": {"attacks": "A01"}}, None),  # a comma string is accepted as a list
    ],
)
def test_bad_keys_and_values_are_named(data: dict, message: str | None) -> None:
    if message is None:
        assert config_from_dict(data).data.attacks == ("A01",)
        return
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def _numeric_keys(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, type) of every number and list of numbers in ``cls`` and its sections."""
    out: list[tuple[str, Any]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        key = f"{prefix}{f.name}"
        args = typing.get_args(tp)
        if tp is StrategyConfig:
            continue  # the strategy registry's, checked in tests/strategies/test_strategies.py
        if dataclasses.is_dataclass(tp):
            out += _numeric_keys(tp, f"{key}.")
        elif typing.get_origin(tp) is tuple and dataclasses.is_dataclass(args[0]):
            out += _numeric_keys(args[0], f"{key}[0].")
        elif tp in (int, float) or (typing.get_origin(tp) is tuple and args[0] in (int, float)):
            out.append((key, tp))
    return out


def _set(key: str, value: Any) -> dict:
    """A config mapping with ``key`` (dotted, ``sources[0]`` allowed) set to ``value``."""
    data: dict = {}
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if part.endswith("[0]"):
            node[part[:-3]] = [{"name": "a", "path": "b"}]
            node = node[part[:-3]][0]
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = value
    return data


NUMERIC_KEYS = _numeric_keys(RunConfig)


def test_every_section_has_numeric_keys_to_check() -> None:
    keys = [k for k, _ in NUMERIC_KEYS]
    assert {"seed", "train.epochs", "data.level_db", "data.sources[0].max_train",
            "train.augment.gain_db", "model.self_distillation.temperature"} <= set(keys)


@pytest.mark.parametrize(("key", "tp"), NUMERIC_KEYS, ids=[k for k, _ in NUMERIC_KEYS])
@pytest.mark.parametrize("huge", [1e300, -1e300])
def test_every_number_has_finite_bounds(key: str, tp: Any, huge: float) -> None:
    value: Any = [huge, huge] if typing.get_origin(tp) is tuple else huge
    with pytest.raises(ConfigError) as err:
        config_from_dict(_set(key, value))
    assert str(err.value).startswith(key + " "), str(err.value)


def test_absurd_numbers_in_a_file_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 1e23\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.epochs must be at most 100000, got "
                                          r"1e\+23$"):
        load_config(path)
    path.write_text("data:\n  level_db: 1e308\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: data\.level_db must be between -100 and 20 "
                                          r"dBFS, got 1e\+308$"):
        load_config(path)
    path.write_text("data:\n  level_db: -12.5\ntrain:\n  epochs: 100000\n")
    cfg = load_config(path)
    assert (cfg.data.level_db, cfg.train.epochs) == (-12.5, 100_000)


def test_overrides_build_new_configs() -> None:
    cfg = resolve(config_from_dict({}))
    other = with_overrides(cfg, strategy={"name": "dfwf"}, seed=4)
    assert (cfg.strategy.name, cfg.seed) == ("naive", 0)
    assert (other.strategy.name, other.seed) == ("dfwf", 4)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="c.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.epochs must be at least 1"):
        load_config(bad)


# ------------------------------------------------------------------------ YAML hardening


@pytest.mark.parametrize(("text", "message"), [
    ("data:\n  source: a.csv\nseed: 1\ndata:\n  source: b.csv\n",
     "line 4: key 'data' is given twice (first on line 1)"),
    ("train:\n  epochs: 2\n  lr: 0.1\n  epochs: 3\n",
     "line 4: key 'train.epochs' is given twice (first on line 2)"),
    ("data:\n  sources:\n  - name: a\n    path: x\n    name: b\n",
     "line 5: key 'data.sources[0].name' is given twice (first on line 3)"),
])
def test_duplicate_keys_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"c.yaml: {message}; keep one")):
        load_config(path)


def test_same_key_in_different_mappings_is_fine() -> None:
    data = parse_yaml("data:\n  sources:\n  - name: a\n  - name: b\nmodel:\n  preset: tiny\n")
    assert [s["name"] for s in data["data"]["sources"]] == ["a", "b"]


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, 10):
        lines.append(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]")
    text = "model:\n  overrides:\n" + "".join(f"    {line}\n" for line in lines)
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml: line 3: YAML anchors and aliases") as err:
        load_config(path)
    assert time.perf_counter() - start < 1.0
    assert "\n" not in str(err.value)


def test_deep_nesting_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("model:\n  overrides:\n    x: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: nested too deeply"):
        load_config(path)


@pytest.mark.parametrize("text", ["seed: &s 1\n", "train: {epochs: 2}\nother: *x\n",
                                  "base: &b {epochs: 2}\ntrain:\n  <<: *b\n"])
def test_any_anchor_or_alias_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="anchors and aliases"):
        parse_yaml(text)


# ------------------------------------------------------------------------ overrides


def test_overrides_are_typed_and_validated_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 0\nstrategy:\n  name: naive\n")
    cfg = load_run_config(path, overrides=["train.epochs=1", "data.attacks=[S01,S02]",
                                           "strategy.name=dfwf", "train.lr=1e-3",
                                           "model.overrides.channels=8"])
    assert (cfg.train.epochs, cfg.data.attacks, cfg.strategy.name) == (1, ("S01", "S02"), "dfwf")
    assert cfg.train.lr == 0.001 and cfg.model.overrides == {"channels": 8}
    assert cfg.strategy.kd_weight == 1.0  # resolved: every hyper-parameter present
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.epochs must be at least 1"):
        load_config(path)  # the file alone is refused: the override came first


@pytest.mark.parametrize(("override", "message"), [
    ("train.epochs=abc", r"override 'train.epochs=abc' \(given with .*c.yaml\): train.epochs: "
                         "expected an integer, got 'abc'"),
    ("train.epochs=1e23", "override 'train.epochs=1e23'.*train.epochs must be at most 100000"),
    ("train.epoch=1", "override 'train.epoch=1': unknown config key 'train.epoch' "
                      r"\(valid keys here: .*epochs"),
    ("trian.epochs=1", "override 'trian.epochs=1': unknown config key 'trian'"),
    ("seed.x=1", "override 'seed.x=1': seed has no sub-keys"),
    ("train.epochs", "override 'train.epochs': expected KEY=VALUE"),
    ("data.attacks=[S01,", "override 'data.attacks=\\[S01,': not a YAML value"),
    ("strategy.kd_weight=-1", "override 'strategy.kd_weight=-1'.*strategy.kd_weight must not "
                              "be negative"),
    ("strategy.kd_wieght=1", "override 'strategy.kd_wieght=1'.*unknown config key "
                             "'strategy.kd_wieght'"),
    ("strategy.name=finetune", "override 'strategy.name=finetune'.*unknown strategy "
                               "'finetune'; valid: naive"),
])
def test_a_bad_override_is_named(tmp_path: Path, override: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=message):
        load_run_config(path, overrides=[override])


def test_apply_overrides_creates_sections_and_copies() -> None:
    data = {"train": {"epochs": 3}}
    out = apply_overrides(data, ["model.overrides.channels=8", "train.epochs=2",
                                 "metrics.official=[min_dcf]"])
    assert out == {"train": {"epochs": 2}, "model": {"overrides": {"channels": 8}},
                   "metrics": {"official": ["min_dcf"]}}
    assert data == {"train": {"epochs": 3}}


# ------------------------------------------------------------------------ strategy section


def test_the_config_does_not_know_the_strategies() -> None:
    cfg = config_from_dict({"strategy": {"name": "nope", "anything": [1, "a"]}})
    assert cfg.strategy.hyperparameters == {"anything": [1, "a"]}
    with pytest.raises(AttributeError):
        _ = cfg.strategy.kd_weight
    with pytest.raises(ConfigError, match="strategy.x: expected a plain YAML value"):
        config_from_dict({"strategy": {"x": object()}})
    with pytest.raises(ConfigError, match="strategy.name: expected a string"):
        config_from_dict({"strategy": {"name": 3}})


def test_resolve_strategy_fills_the_declared_defaults_in_order() -> None:
    cfg = resolve_strategy(config_from_dict({}))
    defaults = {k: hp.default for k, hp in hyperparameters().items()}
    assert cfg.strategy.name == "naive"
    assert list(cfg.strategy.hyperparameters.items()) == list(defaults.items())
    assert to_dict(cfg)["strategy"] == {"name": "naive", **to_dict(defaults)}


def test_resolve_strategy_types_values_and_is_idempotent() -> None:
    cfg = resolve_strategy(config_from_dict({"strategy": {
        "name": "dfwf", "memory_size": 1e3, "kd_weight": 2, "psa_layers": "front, embedding"}}))
    s = cfg.strategy
    assert (s.memory_size, s.kd_weight, s.psa_layers) == (1000, 2.0, ("front", "embedding"))
    assert type(s.memory_size) is int and type(s.kd_weight) is float
    assert list(s.hyperparameters) == list(hyperparameters())  # declaration order
    assert resolve_strategy(cfg) is cfg and resolve(cfg) is cfg
    assert resolve(config_from_dict(to_dict(cfg))) == cfg


@pytest.mark.parametrize(("strategy", "message"), [
    ({"name": "finetune"}, "unknown strategy 'finetune'; valid: naive, joint, cumulative"),
    ({"kd_wieght": 1}, r"unknown config key 'strategy.kd_wieght' \(valid keys here: name, "),
    ({"kd_weight": "x"}, "strategy.kd_weight: expected a number, got 'x'"),
    ({"kd_weight": -1}, "strategy.kd_weight must not be negative"),
    ({"kd_temperature": 0}, "strategy.kd_temperature must be positive"),
    ({"memory_size": 0}, "strategy.memory_size must be at least 1"),
])
def test_resolve_strategy_names_the_key(strategy: dict, message: str) -> None:
    cfg = config_from_dict({"strategy": strategy})
    with pytest.raises(ConfigError, match=message):
        resolve_strategy(cfg)


# ------------------------------------------------------------------------ continual metrics


def test_summary_metrics_hand_worked() -> None:
    # stage x attack EER (%): A learned at 0, B at 1, C at 2
    m = pd.DataFrame([[5.0, 40.0, 45.0],
                      [20.0, 4.0, 30.0],
                      [35.0, 10.0, 2.0]], columns=["A", "B", "C"])
    s = summarize(m, ["A", "B", "C"])
    assert s["avg_eer_learned"] == pytest.approx([5.0, 12.0, 47 / 3])
    assert s["final_avg_eer"] == pytest.approx(47 / 3)
    # forgetting: final minus best since learned (before the last stage)
    assert s["forgetting"] == pytest.approx({"A": 30.0, "B": 6.0})
    assert s["max_forgetting"] == pytest.approx(30.0)
    # BWT: mean of EER(learned) - EER(final) = ((5-35) + (4-10)) / 2
    assert s["bwt"] == pytest.approx(-18.0)


def test_summary_joint_has_no_forgetting() -> None:
    m = pd.DataFrame([[3.0, 5.0]], columns=["A", "B"])
    s = summarize(m, ["joint"])
    assert s["final_avg_eer"] == pytest.approx(4.0) and s["avg_eer_learned"] == [4.0]
    assert s["bwt"] is None and s["max_forgetting"] is None
