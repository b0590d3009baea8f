"""A run directory read and resumed by content: committed stages only, the data a run was
started on, and a status that cannot silently go missing."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from cl_spoof.config import config_from_dict
from cl_spoof.data.table import data_differences, data_record, make_table
from cl_spoof.infra.checkpoints import CHECKPOINT_FORMAT
from cl_spoof.infra.transaction import _snapshot
from cl_spoof.rundir import RunDir, RunDirError, RunProgress

ROOT = Path(__file__).resolve().parents[2]
ATTACKS = ["A", "B"]


@pytest.fixture
def cfg():  # noqa: ANN201
    return config_from_dict({"data": {"source": "x.csv", "attacks": ATTACKS},
                             "model": {"preset": "tiny"}, "strategy": {"name": "naive"}})


def _stage(run_dir: RunDir, progress: RunProgress, stage: int, finished: bool) -> RunProgress:
    """Record stage ``stage`` as a run does (scores, checkpoint, matrix, metrics, status)."""
    progress = progress.with_stage({"stage": stage, "trained_on": ATTACKS[stage % 2],
                                    "A": 10.0 + stage, "B": 30.0 - stage},
                                   {"trained_on": ATTACKS[stage % 2], "pooled_eer": 20.0})
    scores = pd.DataFrame({"utt_id": ["u1", "u2"], "attack": ["-", "A"],
                           "key": ["bonafide", "spoof"], "score": [1.0 + stage, -1.0]})
    run_dir.write_stage_outputs(stage, scores, {"format": CHECKPOINT_FORMAT, "stage": stage,
                                                "weights": torch.full((3,), float(stage))})
    run_dir.write_stage(progress, ATTACKS, finished, seconds=1.0)
    return progress


def _finished_run(path: Path, cfg, stages: int = 2) -> RunDir:  # noqa: ANN001
    run_dir = RunDir(path, cfg)
    progress = run_dir.create()
    for k in range(1, stages + 1):  # trained stages are numbered from 1
        progress = _stage(run_dir, progress, k, finished=k == stages)
    return run_dir


def _half_added_stage(run_dir: RunDir) -> None:
    """What ``add-attack`` killed in its write phase leaves: an undo folder of a process
    that is gone, and a third stage recorded in the matrix, metrics, status and
    checkpoints."""
    undo = _snapshot(run_dir.path)
    assert undo is not None
    undo.rename(undo.with_name(".cl-spoof-undo-999999999"))
    progress = RunProgress()
    for k in (1, 2):
        progress = progress.with_stage({"stage": k, "trained_on": ATTACKS[k % 2],
                                        "A": 10.0 + k, "B": 30.0 - k},
                                       {"trained_on": ATTACKS[k % 2], "pooled_eer": 20.0})
    _stage(run_dir, progress, 3, finished=True)


HOLDER = """
import sys, time
from cl_spoof.infra.files import owner_lock
with owner_lock(sys.argv[1], "add-attack"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("owned_by_another", [False, True])
def test_readers_never_see_a_half_added_stage(cfg, tmp_path: Path,  # noqa: ANN001
                                              owned_by_another: bool) -> None:
    """The report's reading and a stage's checkpoint see the run as committed: rolled back
    by the reader when nobody owns the run, read from what the undo folder remembers while
    another command owns it (that command rolls it back)."""
    run_dir = _finished_run(tmp_path / "run", cfg)
    record = run_dir.read_record()
    committed = {p: p.read_bytes() for p in run_dir.path.rglob("*") if p.is_file()
                 and not p.name.startswith(".cl-spoof")}
    _half_added_stage(run_dir)
    assert len(pd.read_csv(run_dir.matrix_file)) == 3
    holder = None
    if owned_by_another:
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir.path /
                                                                     ".cl-spoof-lock")],
                                  env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        reader = RunDir(run_dir.path)
        again = reader.read_record()
        assert again.learned == record.learned and again.metrics == record.metrics
        assert (again.eer == record.eer).all()
        with reader.reading("score"):
            for stage in (0, 3):  # no stage 0 in a run from scratch; stage 3 half-added
                with pytest.raises(RunDirError, match=fr"stage {stage} is not part of the run: "
                                                      r"run.json records 2 completed stage\(s\)"):
                    reader.committed_checkpoint(stage)
            path = reader.committed_checkpoint(2)
            assert torch.load(path, weights_only=True)["weights"].tolist() == [2.0] * 3
        assert RunDir(run_dir.path).read_metrics() == record.metrics
        now = {p: p.read_bytes() for p in run_dir.path.rglob("*") if p.is_file()
               and not any(q.startswith(".cl-spoof") for q in p.relative_to(
                   run_dir.path).parts)}
        if owned_by_another:
            assert now != committed  # the change is its owner's to roll back
        else:
            assert now == committed  # rolled back by the reader
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()


def test_a_missing_run_json_with_completed_stages_is_not_a_fresh_start(
        cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = _finished_run(tmp_path / "run", cfg)
    status = json.loads(run_dir.status_file.read_text())
    status.update(completed_stages=1, finished=False)
    run_dir.status_file.write_text(json.dumps(status))
    assert RunDir(run_dir.path, cfg).open_existing().completed == 1
    run_dir.status_file.unlink()
    with pytest.raises(RunDirError, match=r"run.json: missing although the run completed "
                                          r"stages.*put run.json back, or start a new run"):
        RunDir(run_dir.path, cfg).open_existing()
    for name in ("eer_matrix.csv", "checkpoints/stage_1.pt"):  # any trace of a stage
        other = tmp_path / f"other_{name.replace('/', '_')}"
        shutil.copytree(run_dir.path, other)
        for gone in {"eer_matrix.csv", "checkpoints/stage_1.pt", "checkpoints/stage_2.pt"} \
                - {name}:
            (other / gone).unlink()
        with pytest.raises(RunDirError, match="missing although"):
            RunDir(other, cfg).open_existing()
    fresh = RunDir(tmp_path / "fresh", cfg)
    fresh.create()
    fresh.status_file.unlink()  # killed right after it made the folder: nothing to lose
    assert fresh.open_existing() == RunProgress()


def test_run_folders_that_are_links_are_refused_before_any_work(
        cfg, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir = _finished_run(tmp_path / "run", cfg)
    run_dir.check_writable()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("report", "added", "logs", "scores"):
        target = run_dir.path / name
        if target.exists():
            target.rename(tmp_path / f"{name}.saved")
        target.symlink_to(elsewhere, target_is_directory=True)
        with pytest.raises(RunDirError, match=rf"{name}: a symbolic link \(to {elsewhere}\); "
                                              "cl-spoof writes only inside the run"):
            run_dir.check_writable()
        target.unlink()
        if (tmp_path / f"{name}.saved").exists():
            (tmp_path / f"{name}.saved").rename(target)
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------ the data of a run


def _table(n_per: int = 6) -> tuple[pd.DataFrame, list[str]]:
    rows, identities = [], []
    for split in ("train", "dev"):
        for label, attack in (("bonafide", "-"), ("spoof", "T1"), ("spoof", "T2")):
            for i in range(n_per):
                rows.append({"utt_id": f"{split}_{attack}_{i}",
                             "path": f"/data/{split}/{attack}_{i}.wav", "label": label,
                             "attack": attack, "speaker": f"s{i % 2}", "split": split})
                identities.append(f"{1000 + i}:{i:08x}")
    return make_table(rows), identities


def _changes() -> list[tuple[str, object, str]]:
    """(what, change of (table, identities), the group the refusal must name)."""

    def drop(t, ids):  # noqa: ANN001, ANN202  four training files of one attack gone
        keep = ~((t.split == "train") & (t.attack == "T1") & t.utt_id.str.endswith(
            ("_0", "_1", "_2", "_3")))
        return t[keep].reset_index(drop=True), [i for i, k in zip(ids, keep, strict=True)
                                                if k]

    def relabel(t, ids):  # noqa: ANN001, ANN202
        t = t.copy()
        t.loc[7, ["label", "attack"]] = ["bonafide", "-"]
        return t, ids

    def resplit(t, ids):  # noqa: ANN001, ANN202
        t = t.copy()
        t.loc[13, "split"] = "dev"
        return t, ids

    def repath(t, ids):  # noqa: ANN001, ANN202
        t = t.copy()
        t.loc[20, "path"] = "/elsewhere/x.wav"
        return t, ids

    def reaudio(t, ids):  # noqa: ANN001, ANN202
        ids = list(ids)
        ids[30] = "1000:deadbeef"
        return t, ids

    def respeak(t, ids):  # noqa: ANN001, ANN202
        t = t.copy()
        t.loc[2, "speaker"] = "s9"
        return t, ids

    def add(t, ids):  # noqa: ANN001, ANN202
        extra = t.iloc[[8]].assign(utt_id="new", split="dev")
        return make_table(pd.concat([t, extra], ignore_index=True)), [*ids, "5:0"]

    def reorder(t, ids):  # noqa: ANN001, ANN202
        order = [1, 0, *range(2, len(t))]
        return t.iloc[order].reset_index(drop=True), [ids[i] for i in order]

    return [("4 training files of T1 dropped", drop, "train/T1/spoof: 2 utterance(s), 6 at "
                                                    "the start"),
            ("a spoof relabelled bona fide", relabel, "train/-/bonafide: 7 utterance(s)"),
            ("a file moved to another split", resplit, "dev/T2/spoof: 7 utterance(s)"),
            ("another path", repath, "dev/-/bonafide: other utterance ids, paths or speakers"),
            ("other audio in a file", reaudio, "dev/T2/spoof: files that hold other audio"),
            ("another speaker", respeak, "train/-/bonafide: other utterance ids"),
            ("an utterance more", add, "dev/T1/spoof: 7 utterance(s), 6 at the start"),
            ("another order", reorder, "the utterances are in another order")]


@pytest.mark.parametrize(("what", "change", "named"), _changes(),
                         ids=[c[0] for c in _changes()])
def test_a_resume_on_other_data_is_refused_naming_what_changed(
        cfg, tmp_path: Path, what: str, change, named: str) -> None:  # noqa: ANN001
    table, ids = _table()
    run_dir = RunDir(tmp_path / "run", cfg)
    run_dir.create()
    run_dir.record_start_data(data_record(table, ids))
    _stage(run_dir, RunProgress(), 1, finished=False)  # the record survives the stages
    resumed = RunDir(run_dir.path, cfg)
    resumed.check_data(data_record(table, ids))  # the same data: accepted
    with pytest.raises(RunDirError) as info:
        RunDir(run_dir.path, cfg).check_data(data_record(*change(table, ids)))
    message = str(info.value)
    assert message.startswith(f"{run_dir.status_file}: the run was started on other data (")
    assert named in message and "put the data back, or start a new run" in message
    assert "\n" not in message


def test_every_single_change_of_the_data_is_noticed() -> None:
    """Change one field of one row (or one file's identity) at random, many times: the
    record always differs, and the difference is named."""
    rng = random.Random(31)
    table, ids = _table()
    base = data_record(table, ids)
    assert data_differences(base, data_record(table, list(ids))) == []
    for _ in range(200):
        t, i = table.copy(), list(ids)
        row = rng.randrange(len(t))
        column = rng.choice(["utt_id", "path", "label", "attack", "speaker", "split", None])
        if column is None:
            i[row] = i[row] + "x"
        else:
            t.loc[row, column] = t.loc[row, column] + "x"
        diff = data_differences(base, data_record(t, i))
        assert diff and all(isinstance(d, str) and "\n" not in d for d in diff)
