"""Config validation and the continual summary metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cl_spoof.config import (
    config_from_dict,
    default_config_path,
    load_config,
    to_yaml,
    with_overrides,
)
from cl_spoof.errors import ConfigError
from cl_spoof.metrics.continual import summarize

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    cfg = load_config(path)
    assert config_from_dict(yaml.safe_load(to_yaml(cfg))) == cfg


def test_demo_config_in_package_is_the_repo_one() -> None:
    assert default_config_path().read_text() == (REPO / "configs" / "demo.yaml").read_text()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"epoch": 3}}, "unknown config key 'train.epoch'"),
        ({"trian": {}}, "unknown config key 'trian'"),
        ({"train": {"epochs": "3"}}, "train.epochs: expected an integer"),
        ({"data": {"allow_missing": "yes"}}, "data.allow_missing: expected true or false"),
        ({"strategy": {"kd_weight": -1}}, "strategy.kd_weight must not be negative"),
        ({"strategy": {"kd_temperature": 0}}, "strategy.kd_temperature must be positive"),
        ({"strategy": {"memory_size": 0}}, "strategy.memory_size must be at least 1"),
        ({"data": {"bonafide_sharing": "some"}}, "data.bonafide_sharing"),
        ({"data": {"attacks": "A01"}}, None),  # a comma string is accepted as a list
    ],
)
def test_bad_keys_and_values_are_named(data: dict, message: str | None) -> None:
    if message is None:
        assert config_from_dict(data).data.attacks == ("A01",)
        return
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_overrides_build_new_configs() -> None:
    cfg = config_from_dict({})
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
