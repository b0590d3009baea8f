"""Every strategy name runs; compare gives every strategy the same start."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_run import tiny_config

from cl_spoof.compare import parse_strategies, run_compare
from cl_spoof.config import load_config, with_overrides
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.runner import run_experiment
from cl_spoof.strategies import STRATEGIES, check_strategy_name


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_runs_a_tiny_sequence(name: str, tiny_corpus: Path, tmp_path: Path
                                             ) -> None:
    cfg = with_overrides(load_config(tiny_config(tiny_corpus, tmp_path)),
                         strategy={"name": name, "memory_size": 8, "gem_patterns_per_exp": 4,
                                   "agem_patterns_per_exp": 4, "agem_sample_size": 4})
    summary = run_experiment(cfg, tmp_path / "run")
    matrix = pd.read_csv(tmp_path / "run" / "eer_matrix.csv")
    assert len(matrix) == (1 if name == "joint" else 2)
    assert matrix[["T1", "T2"]].notna().all().all()
    assert summary.metrics["strategy"] == name


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: naive, joint, cumulative"):
        check_strategy_name("finetune")
    with pytest.raises(CLSpoofError, match="twice"):
        parse_strategies("naive,naive")


def test_compare_same_start_per_seed_and_table(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tiny_corpus, tmp_path))
    out = tmp_path / "cmp"
    table = run_compare(cfg, ["naive", "dfwf", "joint"], [0, 1], out)
    assert table.strategy.tolist() == ["naive", "dfwf", "joint"]
    assert (table.seeds == 2).all()
    for seed in (0, 1):
        naive = pd.read_csv(out / "naive" / f"seed{seed}" / "eer_matrix.csv")
        dfwf = pd.read_csv(out / "dfwf" / f"seed{seed}" / "eer_matrix.csv")
        # DFWF adds nothing in the first experience: same initial weights and data
        # order per seed make the first stage identical to naive's.
        pd.testing.assert_series_equal(naive.iloc[0], dfwf.iloc[0], check_names=False)
    csv = pd.read_csv(out / "comparison.csv")
    assert set(csv.strategy) == {"naive", "dfwf", "joint"}
    md = (out / "comparison.md").read_text()
    assert all(s in md for s in ("naive", "dfwf", "joint", "±"))
    assert json.loads((out / "compare.json").read_text())["seeds"] == [0, 1]
    with pytest.raises(CLSpoofError, match="exists"):
        run_compare(cfg, ["naive"], [0], out)
