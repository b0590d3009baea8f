"""add-attack: a trained run learns one more attack and re-evaluates the old ones."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config
from cl_spoof.errors import CLSpoofError
from cl_spoof.workflows.add_attack import add_attack
from cl_spoof.workflows.run import run_experiment
from tests.helpers.configs import tiny_config


def _new_attack_folder(root: Path, n: int = 12, bad: int = 0) -> Path:
    rng = np.random.default_rng(7)
    folder = root / "new_tts"
    folder.mkdir(parents=True)
    t = np.arange(8000) / 16000
    for i in range(n):  # a chirpy "new synthesizer"
        wave = 0.2 * np.sin(2 * np.pi * (300 + 2000 * t) * t) + 0.02 * rng.standard_normal(8000)
        sf.write(folder / f"clip_{i}.wav", wave.astype(np.float32), 16000)
    for i in range(bad):
        (folder / f"broken_{i}.wav").write_bytes(b"RIFF nonsense")
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def trained_run(tiny_corpus: Path, tmp_path: Path) -> Path:
    run_experiment(load_config(tiny_config(tiny_corpus, tmp_path)), tmp_path / "run")
    return tmp_path / "run"


def test_add_attack_appends_a_stage(trained_run: Path, tmp_path: Path) -> None:
    folder = _new_attack_folder(tmp_path, bad=1)
    res = CliRunner().invoke(app, ["add-attack", str(trained_run), "--name", "NEW", "--spoof",
                                   str(folder)])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "broken_0.wav" in res.output
    matrix = pd.read_csv(trained_run / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", "T1", "T2", "NEW"]
    assert matrix.trained_on.tolist() == ["T1", "T2", "NEW"]
    assert matrix.stage.tolist() == [1, 2, 3]
    assert matrix[["T1", "T2", "NEW"]].notna().all().all()  # old attacks re-evaluated
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == [
        "stage_1.pt", "stage_2.pt", "stage_3.pt"]
    assert torch.load(trained_run / "checkpoints" / "stage_3.pt",
                      weights_only=True)["stage"] == 3
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["learned"] == ["T1", "T2", "NEW"] and "NEW" in metrics["final_eer"]
    assert "NEW" in (trained_run / "report" / "report.html").read_text()
    assert json.loads((trained_run / "run.json").read_text())["completed_stages"] == 3
    added_index = json.loads((trained_run / "added" / "added.json").read_text())
    assert [a["stage"] for a in added_index["attacks"]] == [3]
    assert "(stage 3)" in res.output
    added = pd.read_csv(trained_run / "added" / "NEW.csv")
    assert set(added.split) == {"train", "dev"} and len(added) == 12


def test_add_attack_refusals_leave_the_run_untouched(trained_run: Path, tmp_path: Path) -> None:
    before = _digest(trained_run)
    (tmp_path / "empty").mkdir()
    few = tmp_path / "few"
    _new_attack_folder(few, n=3)
    cases = [((tmp_path / "empty",), "no audio files"), ((few / "new_tts",), "at least 6"),
             ((_new_attack_folder(tmp_path / "ok"),), None)]
    for (path,), message in cases[:2]:
        with pytest.raises(CLSpoofError, match=message):
            add_attack(trained_run, "NEW", path)
    with pytest.raises(CLSpoofError, match="already in the run"):
        add_attack(trained_run, "T1", cases[2][0][0])
    res = CliRunner().invoke(app, ["add-attack", str(trained_run), "--name", "T2", "--spoof",
                                   str(cases[2][0][0])])
    assert res.exit_code == 2 and "already in the run" in res.output
    assert _digest(trained_run) == before


def test_add_attack_without_the_runs_data_needs_bonafide(tmp_path: Path) -> None:
    from tests.helpers.corpora import make_tiny_corpus

    manifest = make_tiny_corpus(tmp_path / "corpus", per_split=8)
    run_experiment(load_config(tiny_config(manifest, tmp_path)), tmp_path / "run")
    manifest.unlink()  # the training data is gone (a deployed detector)
    spoof = _new_attack_folder(tmp_path / "s")
    with pytest.raises(CLSpoofError, match="--bonafide"):
        add_attack(tmp_path / "run", "NEW", spoof)
    bona = tmp_path / "bona"
    bona.mkdir()
    rng = np.random.default_rng(3)
    for i in range(10):
        t = np.arange(8000) / 16000
        wave = 0.2 * np.sin(2 * np.pi * 150 * t) * (1 + 0.3 * rng.standard_normal(8000) * 0.1)
        sf.write(bona / f"b{i}.wav", wave.astype(np.float32), 16000)
    add_attack(tmp_path / "run", "NEW", spoof, bonafide=bona)
    matrix = pd.read_csv(tmp_path / "run" / "eer_matrix.csv")
    assert matrix.trained_on.tolist()[-1] == "NEW"
    assert matrix["NEW"].notna().all()
    assert matrix.iloc[-1][["T1", "T2"]].isna().all()  # old attacks cannot be re-evaluated


def test_add_attack_refuses_strategies_that_need_their_own_run(trained_run: Path,
                                                               tmp_path: Path) -> None:
    folder = _new_attack_folder(tmp_path)
    before = _digest(trained_run)
    with pytest.raises(CLSpoofError, match=r"ewc needs the state of a ewc run.*'naive'.*"
                                           r"naive, lwf, dfwf"):
        add_attack(trained_run, "NEW", folder, strategy="ewc")
    with pytest.raises(CLSpoofError, match="joint trains once on every attack"):
        add_attack(trained_run, "NEW", folder, strategy="joint")
    assert _digest(trained_run) == before


def test_dfwf_on_a_run_of_another_strategy_distils_from_its_last_model() -> None:
    import torch

    from cl_spoof.config import config_from_dict
    from cl_spoof.infra.context import RunContext
    from cl_spoof.workflows.trainer import Trainer

    cfg = config_from_dict({"model": {"preset": "tiny"}, "strategy": {"name": "dfwf"}})
    trainer = Trainer.build(cfg, RunContext.local("cpu"))
    trainer.restore_state({}, 2, None)  # a naive run's checkpoint holds no teacher
    teacher = trainer.strategy.dfwf.state_dict()["teacher"]
    model = trainer.strategy.model.state_dict()
    assert teacher.keys() == model.keys()
    assert all(torch.equal(teacher[k], model[k]) for k in model)
    trainer.restore_state({}, 0, None)  # before any stage: no teacher
    assert trainer.strategy.dfwf.state_dict()["teacher"] is None
