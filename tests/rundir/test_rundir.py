"""RunDir and CompareDir: what is written is read back, and the questions commands ask."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cl_spoof.config import config_from_dict, to_dict, with_overrides
from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.checkpoints import CHECKPOINT_FORMAT, read_checkpoint
from cl_spoof.rundir import (
    RUN_FILES,
    CompareDir,
    RunDir,
    RunDirError,
    RunProgress,
    run_dir_name,
)

ATTACKS = ["A", "B"]


@pytest.fixture
def cfg():  # noqa: ANN201
    return config_from_dict({"data": {"source": "x.csv", "attacks": ATTACKS},
                             "model": {"preset": "tiny"}, "strategy": {"name": "naive"},
                             "seed": 3})


def _scores(stage: int) -> pd.DataFrame:
    return pd.DataFrame({"utt_id": ["u1", "u2", "u3"], "attack": ["-", "A", "B"],
                         "key": ["bonafide", "spoof", "spoof"],
                         "score": [1.5 + stage, -0.25, -2.0]})


def _row(stage: int, trained_on: str, a: float, b: float) -> dict:
    return {"stage": stage, "trained_on": trained_on, "A": a, "B": b}


def _record(run_dir: RunDir, progress: RunProgress, stage: int, finished: bool
            ) -> tuple[pd.DataFrame, dict]:
    run_dir.write_stage_outputs(stage, _scores(stage), {"format": CHECKPOINT_FORMAT,
                                                         "stage": stage,
                                                         "weights": torch.ones(2) * stage})
    return run_dir.write_stage(progress, ATTACKS, finished, seconds=1.25)


def test_a_stage_written_is_read_back(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    assert run_dir.create() == RunProgress()
    assert run_dir.read_config() == cfg  # stored paths read as written
    first = RunProgress().with_stage(_row(1, "A", 10.0, 40.0), {"trained_on": "A",
                                                                "pooled_eer": 20.0})
    matrix, metrics = _record(run_dir, first, 1, finished=False)
    status = run_dir.status()
    assert status is not None and status["completed_stages"] == 1
    assert status["finished"] is False and status["config"] == to_dict(cfg)
    assert status["stage_base"] == 1 and status["stage_0"] is False
    assert metrics["strategy"] == "naive" and metrics["seed"] == 3
    assert metrics["final_pooled_eer"] == 20.0

    reopened = RunDir(tmp_path / "run", cfg).open_existing()  # as --resume does
    assert reopened == first
    assert reopened.learned == ["A"] and reopened.completed == 1
    assert json.loads(run_dir.metrics_file.read_text()) == metrics
    assert read_checkpoint(run_dir.checkpoint_path(1))["stage"] == 1
    lines = run_dir.score_file(1, "asvspoof2019").read_text().splitlines()
    assert lines[0].split() == ["u1", "-", "bonafide", "2.500000"]

    second = reopened.with_stage(_row(2, "B", 12.0, 8.0), {"trained_on": "B",
                                                           "pooled_eer": 9.0})
    assert first.completed == 1  # progress is never changed in place
    matrix, metrics = _record(run_dir, second, 2, finished=True)
    assert list(matrix.index) == [1, 2]
    assert list(matrix.columns) == ["trained_on", *ATTACKS]
    record = run_dir.read_record()
    assert (record.strategy, record.seed, record.attacks) == ("naive", 3, ("A", "B"))
    assert record.learned == ("A", "B") and record.stages == (1, 2)
    np.testing.assert_allclose(record.eer, [[10.0, 40.0], [12.0, 8.0]])
    assert record.metrics == metrics and record.metrics["bwt"] == pytest.approx(-2.0)
    assert record.data_config["attacks"] == ATTACKS
    with pytest.raises(CLSpoofError, match="already finished"):
        RunDir(tmp_path / "run", cfg).open_existing()


def test_the_questions_commands_ask(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    assert not run_dir.is_run() and not run_dir.started() and not run_dir.has_run_files()
    assert run_dir.completed_stages() == 0 and run_dir.status() is None
    with pytest.raises(RunDirError, match="not a run directory \\(no config.yaml\\)"):
        run_dir.read_config()
    run_dir.create()
    assert run_dir.is_run() and run_dir.started() and not run_dir.finished()
    assert run_dir.read_config() == cfg
    assert run_dir.last_checkpoint() is None and run_dir.stages_present() == []
    progress = RunProgress()
    for stage, attack in enumerate(ATTACKS, start=1):
        progress = progress.with_stage(_row(stage, attack, 1.0, 2.0), {"trained_on": attack})
        _record(run_dir, progress, stage, finished=stage == 2)
    assert run_dir.finished() and run_dir.completed_stages() == 2
    assert run_dir.last_stage() == 2
    assert run_dir.last_checkpoint() == tmp_path / "run" / "checkpoints" / "stage_2.pt"
    assert run_dir.checkpoint_path(0) == tmp_path / "run" / "checkpoints" / "stage_0.pt"
    assert run_dir.stages_present() == [1, 2]
    assert run_dir.read_checkpoint(2)["stage"] == 2
    assert run_dir.score_file(2, "asvspoof5").name == "stage_2.tsv"
    assert run_dir.log_dir() == tmp_path / "run" / "logs"
    assert run_dir.log_dir(resumed_at=1).name == "resumed_at_stage_1"
    with run_dir.open_log(resumed_at=1) as log:
        log.write("resumed\n")
    assert (run_dir.log_dir(1) / "log.txt").read_text() == "resumed\n"
    assert run_dir.report_dir == tmp_path / "run" / "report"
    assert all((tmp_path / "run" / name).is_file() for name in RUN_FILES)

    run_dir.status_file.write_text("{ damaged")
    assert run_dir.completed_stages() == 0  # what to say after Ctrl-C: never a traceback
    with pytest.raises(RunDirError, match="run.json: damaged"):
        run_dir.status()
    with pytest.raises(RunDirError, match="exists and is not empty"):
        RunDir(tmp_path / "run", cfg).create()


def test_added_attacks_are_read_back(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = RunDir(tmp_path / "run", cfg)
    run_dir.create()
    assert run_dir.added_entries() == [] and run_dir.added_rows() is None
    rows = pd.DataFrame({"utt_id": ["NEW/spoof/a_0"], "path": ["/x y/a.wav"],
                         "label": ["spoof"], "attack": ["NEW"], "speaker": [""],
                         "split": ["train"]})
    entry = {"name": "NEW", "stage": 2, "strategy": "dfwf", "spoof": "/x y",
             "bonafide": None, "skipped_files": []}
    run_dir.write_added("NEW", rows, [entry])
    run_dir.write_added_log("NEW", "trained\n")
    assert run_dir.added_entries() == [entry]
    pd.testing.assert_frame_equal(run_dir.added_rows(), rows)
    assert (tmp_path / "run" / "logs" / "added_NEW" / "log.txt").read_text() == "trained\n"
    run_dir.added_index.write_text(json.dumps({"attacks": [{"name": "../evil"}]}))
    with pytest.raises(CLSpoofError, match="added.json: attack name '../evil' is not allowed"):
        run_dir.added_entries()
    run_dir.added_index.write_text(json.dumps({"attacks": 3}))
    with pytest.raises(RunDirError, match="added.json: damaged"):
        run_dir.added_entries()


def test_compare_directory(cfg, tmp_path: Path) -> None:  # noqa: ANN001
    compare = CompareDir(tmp_path / "cmp")
    assert not compare.is_compare() and not compare.any_stage_completed()
    spec = {"strategies": ["naive", "dfwf+replay"], "seeds": [0, 1]}
    compare.check_new()
    compare.create(cfg, spec)
    assert compare.is_compare() and compare.read_spec() == spec
    assert compare.read_config() == cfg
    assert run_dir_name("dfwf+replay") == "dfwf_replay"
    assert compare.run_dir("dfwf+replay", 1).path == tmp_path / "cmp" / "dfwf_replay" / "seed1"
    with pytest.raises(RunDirError, match="lacks the run of naive, seed 0"):
        list(compare.listed_runs())
    for name in spec["strategies"]:
        for seed in spec["seeds"]:
            run = RunDir(compare.run_dir(name, seed).path,
                         with_overrides(cfg, strategy={"name": name}, seed=seed))
            run.create()
    assert [r.path.relative_to(compare.path).as_posix() for r in compare.listed_runs()] == [
        "naive/seed0", "naive/seed1", "dfwf_replay/seed0", "dfwf_replay/seed1"]
    assert not compare.any_stage_completed()
    with pytest.raises(RunDirError, match="missing \\(the run did not finish\\)"):
        compare.run_metrics("naive", 1)
    run = RunDir(compare.run_dir("naive", 1).path, with_overrides(cfg, seed=1))
    _record(run, RunProgress().with_stage(_row(1, "A", 5.0, math.nan), {}), 1, finished=False)
    assert compare.any_stage_completed()
    assert compare.run_metrics("naive", 1)["seed"] == 1
    table = pd.DataFrame({"strategy": ["naive"], "final_avg_eer": [1.0 / 3]})
    compare.write_comparison(table, "# table\n")
    assert (compare.path / "comparison.csv").read_text() == "strategy,final_avg_eer\n" \
                                                            "naive,0.3333\n"
    assert (compare.path / "comparison.md").read_text() == "# table\n"
    with pytest.raises(RunDirError, match="compare directory exists and is not empty"):
        compare.check_new()
    compare.spec_file.write_text(json.dumps({"strategies": ["naive"], "seeds": ["0"]}))
    with pytest.raises(RunDirError, match="damaged \\(expected lists"):
        compare.read_spec()
