"""The metric registry: one entry per metric drives what a stage computes, metrics.json,
the console summary and the report tables; `metrics.official` is checked against it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cl_spoof.config import MetricsConfig, config_from_dict
from cl_spoof.errors import ConfigError
from cl_spoof.metrics.definitions import (
    METRICS,
    Metric,
    StageScores,
    resolve_metrics,
    run_keys,
    summary_parts,
    table_metrics,
)
from cl_spoof.metrics.official import OfficialInputs, stage_metrics
from cl_spoof.reporting import build_report
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import load_run_config
from tests.helpers.configs import tiny_config


def scores(bona: list[float], spoof: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"utt_id": [f"b{i}" for i in range(len(bona))]
                         + [f"s{i}" for i in range(len(spoof))],
                         "key": ["bonafide"] * len(bona) + ["spoof"] * len(spoof),
                         "score": [*bona, *spoof]})


def test_registry_order_is_the_order_of_every_output() -> None:
    assert run_keys() == ["final_avg_eer", "bwt", "max_forgetting", "avg_forgetting", "fwt",
                          "final_pooled_eer", "final_min_dcf", "final_act_dcf", "final_cllr",
                          "final_min_tdcf"]
    # the comparison table shows average forgetting beside BWT
    assert [m.label for m in table_metrics()][:4] == [
        "final avg EER %", "BWT (pts)", "avg forgetting (pts)", "max forgetting (pts)"]
    assert not METRICS["bwt"].lower_is_better and METRICS["min_dcf"].lower_is_better


def test_stage_metrics_keys_in_order_and_inputs_recorded_after_their_last_user() -> None:
    test = scores([2.0, 3.0, 4.0, 1.0], [0.0, 1.5, -1.0])
    cal = scores([2.5, 3.5, 0.5], [0.2, -0.5, 1.0])
    out = stage_metrics(test, OfficialInputs(names=frozenset({"min_dcf", "act_dcf", "cllr"}),
                                             calibration_split="dev"), 3, cal)
    assert list(out) == ["stage", "pooled_eer", "min_dcf", "act_dcf", "cllr", "calibration"]
    assert out["stage"] == 3 and "'dev' split after stage 3" in out["calibration"]["fitted_on"]
    only_act = stage_metrics(test, OfficialInputs(names=frozenset({"act_dcf"}),
                                                  calibration_split="dev"), 0, cal)
    assert list(only_act) == ["stage", "pooled_eer", "act_dcf", "calibration"]
    assert only_act["act_dcf"] == out["act_dcf"]
    no_bona = stage_metrics(scores([], [0.0, 1.0]), OfficialInputs(), 0)
    assert no_bona == {"stage": 0, "pooled_eer": None, "min_dcf": None}
    with pytest.raises(ValueError, match="calibration scores"):
        stage_metrics(test, OfficialInputs(names=frozenset({"cllr"})), 0)


@pytest.mark.parametrize(("metrics", "data", "message"), [
    ({"official": ("eer",)}, {}, "metrics.official: unknown metric.s. eer .known: min_dcf, "
                                "act_dcf, cllr, min_tdcf; pooled EER and average forgetting"),
    ({"official": ("act_dcf",)}, {}, "metrics.official asks for act_dcf, which needs calibrated "
                                    "log-likelihood ratios: set data.calibration_split"),
    ({"official": ("cllr",)}, {}, "asks for cllr, .*set data.calibration_split"),
    ({"official": ("min_tdcf",)}, {}, "metrics.official asks for min_tdcf, which needs the "
                                     "organisers' ASV score file .*set metrics.asv_scores"),
    ({"official": ("act_dcf", "min_dcf")}, {"calibration_split": "eval"}, None),
])
def test_metrics_official_is_checked_against_the_registry(metrics: dict, data: dict,
                                                          message: str | None) -> None:
    cfg = replace(config_from_dict({"data": data}), metrics=MetricsConfig(**metrics))
    if message is None:
        assert resolve_metrics(cfg) is cfg
        return
    with pytest.raises(ConfigError, match=message):
        resolve_metrics(cfg)


def test_console_summary_follows_the_registry() -> None:
    values = {"final_avg_eer": 12.345, "bwt": -1.5, "max_forgetting": None,
              "avg_forgetting": 0.25, "final_min_dcf": 0.12345, "final_cllr": 0.5}
    # One forgetting sign on the console (larger = more forgetting): BWT stays in the tables.
    assert summary_parts(values) == ["final average EER 12.35 %",
                                     "avg forgetting 0.25 pts", "minDCF 0.123", "Cllr 0.500"]


def _spoof_trials(s: StageScores) -> float | None:
    return float(len(s.spoof))


def test_a_new_metric_is_one_registry_entry(tiny_corpus: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A toy stage metric (the number of spoof trials) registered in the registry alone
    reaches metrics.json (per stage and final), the console summary and the report."""
    monkeypatch.setitem(METRICS, "spoof_trials", Metric(
        "spoof_trials", "spoof trials", "spoof trials {:.0f}", decimals=1,
        per_stage=_spoof_trials, shown="if_computed"))
    cfg = load_run_config(tiny_config(tiny_corpus, tmp_path))
    summary = run_experiment(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    test_spoofs = 20  # 10 dev spoofs per attack, T1 and T2
    assert [o["spoof_trials"] for o in metrics["official"]] == [test_spoofs, test_spoofs]
    assert list(metrics["official"][0])[-1] == "spoof_trials"  # after the built-in ones
    assert metrics["final_spoof_trials"] == test_spoofs
    assert summary.metrics["final_spoof_trials"] == test_spoofs
    assert summary_parts(summary.metrics)[-1] == "spoof trials 20"

    report = build_report([tmp_path / "run"], tmp_path / "report")
    assert report.summary["final_spoof_trials_mean"].tolist() == [test_spoofs]
    md = report.markdown.read_text()
    comparison = md.split("## Comparison")[1].split("\n\n")[1]
    header, _, row = comparison.splitlines()[:3]
    assert header.split(" | ")[-2] == "spoof trials" and row.split(" | ")[-2] == "20.0"
    per_stage = pd.read_csv(tmp_path / "report" / "official_naive.csv")
    assert per_stage["spoof_trials"].tolist() == [test_spoofs, test_spoofs]
    official_md = md.split("## Official metrics per stage")[1]
    assert "| spoof trials |" in official_md and "| 20.0 |" in official_md
    html = report.html.read_text()
    assert "<th>spoof trials</th>" in html and "<td>20.0</td>" in html
