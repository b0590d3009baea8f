"""One stage numbering in a run directory: trained stages 1..N, stage 0 the starting model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cl_spoof.config import config_from_dict
from cl_spoof.infra.checkpoints import CHECKPOINT_FORMAT
from cl_spoof.infra.runtime import stage_seed
from cl_spoof.rundir import STAGE_BASE, RunDir, RunDirError, RunProgress

ATTACKS = ["A", "B"]


@pytest.fixture
def cfg():  # noqa: ANN201
    return config_from_dict({"data": {"source": "x.csv", "attacks": ATTACKS},
                             "model": {"preset": "tiny"}, "strategy": {"name": "naive"},
                             "seed": 3})


def _scores() -> pd.DataFrame:
    return pd.DataFrame({"utt_id": ["u1", "u2"], "attack": ["-", "A"],
                         "key": ["bonafide", "spoof"], "score": [1.0, -1.0]})


def _record(run_dir: RunDir, progress: RunProgress, finished: bool) -> dict:
    stage = progress.last_stage
    assert stage is not None
    run_dir.write_stage_outputs(stage, _scores(), {"format": CHECKPOINT_FORMAT, "stage": stage})
    return run_dir.write_stage(progress, ATTACKS, finished, seconds=1.0)[1]


def _row(stage: int, trained_on: str, a: float, b: float, **extra: float) -> dict:
    return {"stage": stage, "trained_on": trained_on, "A": a, "B": b, **extra}


def test_the_first_trained_stage_keeps_the_old_first_seed() -> None:
    """Only names changed: trained stage 1 trains from the seed stage 0 had before."""
    assert STAGE_BASE == 1
    assert [stage_seed(7, k) for k in (1, 2, 3)] == [7000, 7001, 7002]
    with pytest.raises(ValueError, match="only trained stages"):
        stage_seed(7, 0)


def test_stage_0_is_the_starting_model_and_the_metrics_summarise_trained_stages(
        cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    run_dir.create()
    zero = RunProgress().with_stage(_row(0, "pretrained", 30.0, 50.0, **{"pretrained:A01": 1.0}),
                                    {"stage": 0, "trained_on": "pretrained"})
    assert zero.completed == 0 and zero.has_stage_0 and zero.last_stage == 0
    metrics = _record(run_dir, zero, finished=False)
    status = run_dir.status()
    assert status is not None and status["completed_stages"] == 0 and status["stage_0"] is True
    assert run_dir.last_stage() == 0 and run_dir.last_checkpoint() == run_dir.checkpoint_path(0)
    assert run_dir.completed_stages() == 0 and run_dir.recorded_stages() == 1  # Ctrl-C: kept
    assert metrics["zero_shot"] == {"avg_eer": 40.0, "eer": {"A": 30.0, "B": 50.0}}
    assert RunDir(tmp_path / "run", cfg).open_existing() == zero  # resumable after stage 0

    one = zero.with_stage(_row(1, "A", 5.0, 45.0, **{"pretrained:A01": 3.0}), {"stage": 1})
    _record(run_dir, one, finished=False)
    done = one.with_stage(_row(2, "B", 9.0, 4.0, **{"pretrained:A01": 6.0}), {"stage": 2})
    metrics = _record(run_dir, done, finished=True)
    # The continual metrics are those of the trained stages alone (as a run from scratch).
    scratch = RunDir(tmp_path / "scratch", cfg)
    scratch.create()
    trained = RunProgress(rows=done.rows[1:], official=done.official[1:])
    alone = _record(scratch, trained, finished=True)
    for key in ("final_avg_eer", "bwt", "max_forgetting", "avg_forgetting", "avg_eer_learned",
                "stages", "learned"):
        assert metrics[key] == alone[key], key
    assert metrics["stages"] == 2 and metrics["bwt"] == pytest.approx(-4.0)
    assert metrics["pretrained_eval"] == {
        "columns": ["pretrained:A01"], "stages": [0, 1, 2], "avg_eer": [1.0, 3.0, 6.0],
        "final_avg_eer": 6.0, "forgetting": 5.0}
    matrix = pd.read_csv(run_dir.matrix_file)
    assert list(matrix.columns) == ["stage", "trained_on", "A", "B", "pretrained:A01"]
    assert matrix["stage"].tolist() == [0, 1, 2]
    status = run_dir.status()
    assert status is not None and status["completed_stages"] == status["total_stages"] == 2
    record = run_dir.read_record()
    assert record.stages == (0, 1, 2) and record.learned == ("pretrained", "A", "B")
    assert run_dir.stages_present() == [0, 1, 2]


def test_a_run_of_stage_0_alone_is_summarised_by_it(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    run_dir.create()
    zero = RunProgress().with_stage(_row(0, "pretrained", 30.0, 50.0), {"stage": 0})
    metrics = _record(run_dir, zero, finished=True)
    assert metrics["final_avg_eer"] == 40.0 and metrics["bwt"] is None
    assert run_dir.read_record().stages == (0,)


def _old_run(run_dir: RunDir) -> None:
    """``run_dir`` as an older cl-spoof wrote it: stages from 0, no ``stage_base``."""
    progress = RunProgress().with_stage(_row(0, "A", 5.0, 40.0), {"stage": 0})
    _record(run_dir, progress, finished=False)
    status = json.loads(run_dir.status_file.read_text())
    del status["stage_base"], status["stage_0"]
    run_dir.status_file.write_text(json.dumps(status))


def test_an_older_run_folder_is_refused_for_resume_in_one_line(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    run_dir.create()
    _old_run(run_dir)
    with pytest.raises(RunDirError, match="numbered stages from 0; it cannot be continued"):
        RunDir(tmp_path / "run", cfg).open_existing()
    from cl_spoof.workflows.add_attack import add_attack

    status = json.loads(run_dir.status_file.read_text())
    status.update(finished=True)
    run_dir.status_file.write_text(json.dumps(status))
    with pytest.raises(RunDirError, match="numbered stages from 0; it cannot be continued"):
        add_attack(tmp_path / "run", "NEW", tmp_path)


def test_an_older_finished_run_is_reported_with_the_new_numbers(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    run_dir.create()
    _old_run(run_dir)
    progress = RunProgress().with_stage(_row(0, "A", 5.0, 40.0), {}).with_stage(
        _row(1, "B", 9.0, 4.0), {})
    run_dir.write_stage(progress, ATTACKS, True, 1.0)
    status = json.loads(run_dir.status_file.read_text())
    del status["stage_base"], status["stage_0"]
    status.update(completed_stages=2, total_stages=2)  # an older run counted every row
    run_dir.status_file.write_text(json.dumps(status))
    record = run_dir.read_record()
    assert record.stages == (1, 2)
    np.testing.assert_allclose(record.eer, [[5.0, 40.0], [9.0, 4.0]])


def test_an_older_checkpoint_scores_under_its_new_stage_number(tmp_path: Path) -> None:
    from cl_spoof.models import build_model
    from cl_spoof.models.loading import load_checkpoint

    cfg = {"model": {"preset": "tiny"}, "data": {"num_samples": 4000}}
    state = build_model("tiny").state_dict()
    old = {"format": CHECKPOINT_FORMAT, "stage": 0, "config": cfg, "model_state": state,
           "num_samples": 4000}
    torch.save(old, tmp_path / "old.pt")
    torch.save({**old, "stage": 1, "stage_base": 1}, tmp_path / "new.pt")
    assert load_checkpoint(tmp_path / "old.pt").stage == 1
    assert load_checkpoint(tmp_path / "new.pt").stage == 1
