"""End-to-end `cl-spoof run` on a tiny synthetic corpus with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from tests.helpers.checks import eers_from_scores
from tests.helpers.configs import tiny_config

runner = CliRunner()


@pytest.mark.parametrize("strategy", ["naive", "joint"])
def test_run_writes_complete_run_directory(tiny_corpus: Path, tmp_path: Path,
                                           strategy: str) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--strategy", strategy, "--out", str(out)])
    assert res.exit_code == 0, res.output
    n_stages = 1 if strategy == "joint" else 2
    matrix = pd.read_csv(out / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", "T1", "T2"]
    assert len(matrix) == n_stages
    assert matrix["stage"].tolist() == list(range(1, n_stages + 1))  # trained stages: 1..N
    assert matrix[["T1", "T2"]].notna().all().all()  # unseen attacks are filled too
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["avg_eer_learned"]) == n_stages
    assert metrics["final_avg_eer"] == pytest.approx(matrix[["T1", "T2"]].iloc[-1].mean(),
                                                     abs=1e-3)
    assert (metrics["bwt"] is None) == (strategy == "joint")
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["strategy"]["name"] == strategy
    assert sorted(p.name for p in (out / "scores").iterdir()) == [
        f"stage_{k}.txt" for k in range(1, n_stages + 1)]
    for k in range(1, n_stages + 1):
        lines = (out / "scores" / f"stage_{k}.txt").read_text().splitlines()
        # 10 dev bona fide (once) + 10 dev spoofs per attack
        assert len(lines) == 30
        utt, attack, key, score = lines[0].split()
        assert key in ("bonafide", "spoof") and float(score) == float(score)
        eers = eers_from_scores(out / "scores" / f"stage_{k}.txt")  # the matrix is the EER
        for attack in ("T1", "T2"):  # of that stage's scores
            assert matrix[attack].iloc[k - 1] == pytest.approx(eers[attack], abs=1e-3)
        ckpt = torch.load(out / "checkpoints" / f"stage_{k}.pt", weights_only=True)
        assert ckpt["stage"] == k and "model_state" in ckpt
    status = json.loads((out / "run.json").read_text())
    assert status["finished"] is True and status["stage_base"] == 1
    assert status["completed_stages"] == status["total_stages"] == n_stages
    assert status["stage_0"] is False
    assert [o["stage"] for o in metrics["official"]] == list(range(1, n_stages + 1))
    assert (out / "logs" / "log.txt").stat().st_size > 0
    assert "EER (%) after each stage" in res.output


def test_run_refuses_existing_directory(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["run", str(tiny_config(tiny_corpus, tmp_path)), "--out", str(out)])
    assert res.exit_code == 2 and "exists" in res.output
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"data": {"attacks": ["T1", "NOPE"]}}, "NOPE not in the data"),
        ({"model": {"preset": "huge"}}, "huge"),
        ({"train": {"epoch": 2}}, "train.epoch"),
    ],
)
def test_run_bad_config_is_named(tiny_corpus: Path, tmp_path: Path, sections: dict,
                                 message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    good = yaml.safe_load(tiny_config(tiny_corpus, tmp_path).read_text())
    for key, value in sections.items():
        good.setdefault(key, {}).update(value)
    cfg.write_text(yaml.safe_dump(good))
    res = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", " ")
    assert "Traceback" not in res.output


def test_unknown_strategy_lists_valid_ones(tiny_corpus: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(tiny_config(tiny_corpus, tmp_path)), "--strategy",
                              "magic"])
    assert res.exit_code == 2 and "naive" in res.output and "dfwf" in res.output


def test_nan_loss_is_a_clear_error() -> None:
    from types import SimpleNamespace

    from cl_spoof.workflows.events import RunEvents
    from cl_spoof.workflows.trainer import ProgressPlugin, TrainingError

    strategy = SimpleNamespace(
        loss=torch.tensor(float("nan")),
        experience=SimpleNamespace(attack="T2"),
        clock=SimpleNamespace(train_exp_epochs=1, train_epoch_iterations=4),
    )
    with pytest.raises(TrainingError, match="attack T2 .*epoch 2, iteration 5.*train.lr"):
        ProgressPlugin(RunEvents()).before_backward(strategy)


@pytest.mark.parametrize("train", [{"amp": "bf16"}, {"compile": True,
                                                     "compile_backend": "eager"}],
                         ids=["bf16-autocast", "compile"])
def test_speed_switches_run(tiny_corpus: Path, tmp_path: Path, train: dict) -> None:
    from cl_spoof.config import load_config, with_overrides
    from cl_spoof.workflows.run import run_experiment

    cfg = with_overrides(load_config(tiny_config(tiny_corpus, tmp_path)), train=train,
                         strategy={"name": "dfwf"})
    summary = run_experiment(cfg, tmp_path / "run")
    assert summary.matrix[["T1", "T2"]].notna().all().all()
    state = torch.load(tmp_path / "run" / "checkpoints" / "stage_2.pt",
                       weights_only=True)["model_state"]
    assert not any(k.startswith("_orig_mod") for k in state)  # plain keys, loadable anywhere


def test_error_text_with_brackets_is_printed_verbatim(tmp_path: Path) -> None:
    # Rich markup must not swallow or choke on "[/...]" in paths and library messages.
    missing = tmp_path / "a[/b]" / "cfg.yaml"
    res = runner.invoke(app, ["run", str(missing)])
    assert res.exit_code == 2, res.output
    assert "a[/b]" in res.output and "cfg.yaml" in res.output
