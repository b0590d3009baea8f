"""``train.trainable`` (freeze-and-learn): only the named layers learn after the first stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cl_spoof.config import config_from_dict, load_config, with_overrides
from cl_spoof.errors import ConfigError
from cl_spoof.strategies import STRATEGIES
from cl_spoof.strategies.layers import matches
from cl_spoof.workflows.run import run_experiment
from tests.helpers.configs import tiny_config

TRAINABLE = ("head", "gru")  # the tiny model: front, blocks.0-1, pre_gru, gru, head


def _state(run: Path, stage: int) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / f"stage_{stage}.pt", weights_only=True)["model_state"]


@pytest.mark.parametrize("strategy", [n for n, s in STRATEGIES.items() if not s.joint])
def test_frozen_layers_stay_bit_identical_and_the_others_learn(strategy: str, tiny_corpus: Path,
                                                               tmp_path: Path) -> None:
    cfg = with_overrides(load_config(tiny_config(tiny_corpus, tmp_path)),
                         strategy={"name": strategy, "memory_size": 8,
                                   "gem_patterns_per_exp": 4, "agem_patterns_per_exp": 4,
                                   "agem_sample_size": 4},
                         train={"trainable": list(TRAINABLE)})
    run_experiment(cfg, tmp_path / "run")
    first, second = _state(tmp_path / "run", 1), _state(tmp_path / "run", 2)
    learned = frozen = 0
    for name, value in first.items():
        if any(matches(name, p) for p in TRAINABLE):
            learned += not torch.equal(value, second[name])
        else:  # weights and BatchNorm statistics alike
            assert torch.equal(value, second[name]), name
            frozen += 1
    assert frozen > 10 and learned >= 4, (frozen, learned)


def test_first_stage_trains_everything(tiny_corpus: Path, tmp_path: Path) -> None:
    """Freezing starts with the second experience: stage 1 equals a run without it."""
    base = load_config(tiny_config(tiny_corpus, tmp_path))
    run_experiment(base, tmp_path / "all")
    run_experiment(with_overrides(base, train={"trainable": ["head"]}), tmp_path / "frozen")
    a, b = _state(tmp_path / "all", 1), _state(tmp_path / "frozen", 1)
    for name, value in a.items():
        assert torch.equal(value, b[name]), name


def test_a_pattern_that_matches_nothing_names_the_key(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = with_overrides(load_config(tiny_config(tiny_corpus, tmp_path)),
                         train={"trainable": ["head", "fc9*"]})
    with pytest.raises(ConfigError, match=r"train\.trainable: pattern 'fc9\*' matches no layer"):
        run_experiment(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "stage_1.pt").exists()


def test_trainable_reads_a_list_or_a_comma_string() -> None:
    assert config_from_dict({"train": {"trainable": ["front", "blocks.0"]}}).train.trainable == \
        ("front", "blocks.0")
    assert config_from_dict({"train": {"trainable": "front, head"}}).train.trainable == \
        ("front", "head")
    assert config_from_dict({}).train.trainable == ()
