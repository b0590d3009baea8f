"""The run directory is one transaction with one owner, end to end: real processes
started as a user starts them (``python -m cl_spoof``), stopped with signals at named
points (the ``CL_SPOOF_TEST_PAUSE`` test hook, :mod:`cl_spoof.infra.testhook`)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import config_from_dict, load_config
from cl_spoof.rundir import CompareDir
from cl_spoof.workflows.run import run_experiment

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def tiny_config(manifest: Path, tmp: Path, **sections) -> Path:
    """A tiny-run config (tiny model, one epoch, its own cache) for ``manifest``."""
    cfg = {"data": {"source": str(manifest), "num_samples": 4000, "test_split": "dev",
                    "cache_dir": str(tmp / "cache")},
           "model": {"preset": "tiny"},
           "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "lr": 0.003,
                     "threads": 1},
           "seed": 0}
    for key, value in sections.items():
        cfg[key].update(value)
    config_from_dict(cfg)
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def new_audio(folder: Path, seed: int = 5) -> Path:
    """Eight clips of a chirpy "new synthesizer"."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16000
    for i in range(8):
        wave = 0.2 * np.sin(2 * np.pi * (300 + 1500 * t) * t) + 0.02 * rng.standard_normal(8000)
        sf.write(folder / f"clip_{i}.wav", wave.astype(np.float32), 16000)
    return folder


def tree(folder: Path) -> dict[str, str]:
    """Every folder and file under ``folder`` with a digest of its content (cl-spoof's own
    lock file and undo folders aside)."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else
            hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if not any(q.startswith(".cl-spoof-") for q in p.relative_to(folder).parts)}


def start(args: list[str], tmp: Path, pause: str = "", flag: Path | None = None
          ) -> subprocess.Popen:
    """``python -m cl_spoof ARGS`` in a new process, pausing at the points ``pause``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "CL_SPOOF_TEST_PAUSE": pause, "CL_SPOOF_TEST_PAUSE_FILE": str(flag or "")}
    # SIGINT as a terminal delivers it: a process started with SIGINT ignored (as
    # pytest-xdist's workers start their children) rightly keeps ignoring it
    return subprocess.Popen([sys.executable, "-m", "cl_spoof", *args], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def paused_at(proc: subprocess.Popen, flag: Path, name: str, timeout: float = 240) -> None:
    """Wait until ``proc`` pauses at point ``name`` (it waits until ``flag`` is removed; a
    process stopped there leaves ``flag`` behind, which the next one overwrites)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if flag.is_file() and flag.read_text().split() == [name, str(proc.pid)]:
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended before {name}: {out[-1500:]}{err[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the command did not reach {name}")


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Exit status and standard error of ``proc``, once it ends."""
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def one_line_error(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture(scope="module")
def built(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (2 stages) and two folders of new audio, built once."""
    tmp = tmp_path_factory.mktemp("owner")
    run_experiment(load_config(tiny_config(tiny_corpus, tmp)), tmp / "run")
    new_audio(tmp / "audio_a", 5)
    new_audio(tmp / "audio_b", 6)
    return tmp


@pytest.fixture
def run(built: Path, tmp_path: Path) -> Path:
    """A copy of the finished run for one test."""
    shutil.copytree(built / "run", tmp_path / "run")
    return tmp_path / "run"


def _add(run: Path, name: str, audio: Path, *extra: str) -> list[str]:
    return ["add-attack", str(run), "--name", name, "--spoof", str(audio), *extra]


# ------------------------------------------------------------------ one owner


def test_two_add_attacks_at_once_one_is_refused_or_waits_and_both_attacks_stay(
        built: Path, run: Path, tmp_path: Path) -> None:
    flag_a, flag_c = tmp_path / "pause_a", tmp_path / "pause_c"
    first = start(_add(run, "NEWA", built / "audio_a"), tmp_path, "add-attack:owned", flag_a)
    paused_at(first, flag_a, "add-attack:owned")
    second = start(_add(run, "NEWB", built / "audio_b"), tmp_path)
    code, err = finish(second)
    line = one_line_error(err)
    assert code == 2, err
    assert line.startswith(f"error: {run}: in use by `cl-spoof add-attack`, pid {first.pid} ")
    assert "add --wait to wait for it" in line
    waiting = start(_add(run, "NEWB", built / "audio_b", "--wait"), tmp_path, "owner:waiting",
                    flag_c)
    paused_at(waiting, flag_c, "owner:waiting")  # found the run owned: it waits
    flag_c.unlink()
    time.sleep(1.0)
    flag_a.unlink()
    assert finish(first)[0] == 0
    code, err = finish(waiting)
    assert code == 0, err
    matrix = pd.read_csv(run / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", "T1", "T2", "NEWA", "NEWB"]
    assert matrix.trained_on.tolist() == ["T1", "T2", "NEWA", "NEWB"]
    assert matrix[["T1", "T2", "NEWA", "NEWB"]].notna().all().all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["learned"] == ["T1", "T2", "NEWA", "NEWB"]
    status = json.loads((run / "run.json").read_text())
    assert status["completed_stages"] == 4 and status["finished"]
    added = json.loads((run / "added" / "added.json").read_text())["attacks"]
    assert [a["name"] for a in added] == ["NEWA", "NEWB"] and added[1]["stage"] == 4
    assert sorted(p.name for p in (run / "added").iterdir()) == ["NEWA.csv", "NEWB.csv",
                                                                  "added.json"]
    assert sorted(p.name for p in (run / "logs").glob("added_*")) == ["added_NEWA",
                                                                      "added_NEWB"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        f"stage_{k}.pt" for k in range(1, 5)]


def _holder(lock_file: Path, command: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom cl_spoof.infra.files import owner_lock\n"
        "with owner_lock(sys.argv[1], sys.argv[2]):\n"
        "    print('held', flush=True)\n    time.sleep(300)\n"), str(lock_file), command],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_every_command_that_changes_a_run_is_refused_while_another_owns_it(
        built: Path, run: Path, tmp_path: Path) -> None:
    """Whatever owns a run or compare directory, every command that would change it is
    refused at once, naming the holder, and changes nothing; readers still read."""
    compare = CompareDir(tmp_path / "cmp")
    compare.create(load_config(built / "cfg.yaml"), {"strategies": ["naive"], "seeds": [0]})
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    stopped = tmp_path / "stopped"  # a run stopped after its first stage: resumable
    shutil.copytree(run, stopped)
    status = json.loads((stopped / "run.json").read_text())
    status.update(completed_stages=1, finished=False, total_stages=None)
    (stopped / "run.json").write_text(json.dumps(status))
    changers = [(stopped, ["run", "--resume", str(stopped)]),
                (run, _add(run, "NEW", built / "audio_a")),
                (run, ["report", str(run)]),
                (run, ["report", str(run), "--out", str(run / "report" / "sub")]),
                (compare.path, ["compare", "--resume", str(compare.path)]),
                (fresh, ["run", str(built / "cfg.yaml"), "--out", str(fresh)])]
    for holder_command in ("add-attack", "run --resume", "report"):
        for folder, args in changers:
            holder = _holder(folder / ".cl-spoof-lock", holder_command)
            try:
                before = tree(tmp_path)
                res = runner.invoke(app, args)
                assert res.exit_code == 2, (args, res.output)
                line = one_line_error(res.output)
                assert line.startswith(f"error: {folder}: in use by `cl-spoof "
                                       f"{holder_command}`, pid {holder.pid} "), line
                assert tree(tmp_path) == before, args
                if folder == run:  # readers are not refused
                    res = runner.invoke(app, ["score", str(run / "checkpoints" / "stage_1.pt"),
                                              str(built / "audio_a")])
                    assert res.exit_code == 0, res.output
                    res = runner.invoke(app, ["report", str(run), "--out",
                                              str(tmp_path / f"r{holder.pid}")])
                    assert res.exit_code == 0, res.output
            finally:
                holder.kill()
                holder.wait()


# ------------------------------------------------------------------ interrupted changes


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_add_attack_is_never_scored_or_reported(built: Path, run: Path,
                                                          tmp_path: Path, sig: int) -> None:
    """Stopped in its write phase, add-attack leaves the run as it was for everyone:
    SIGTERM rolls it back at once (exit 143, with how to continue); after ``kill -9`` the
    next command of any kind, a reader included, rolls it back before reading."""
    before = tree(run)
    flag = tmp_path / "pause"
    proc = start(_add(run, "NEW", built / "audio_a"), tmp_path, "add-attack:writing", flag)
    paused_at(proc, flag, "add-attack:writing")
    assert (run / "checkpoints" / "stage_3.pt").is_file()  # half-added
    proc.send_signal(sig)
    code, err = finish(proc)
    if sig == signal.SIGTERM:
        assert code == 143 and "Traceback" not in err, err
        assert [line for line in err.splitlines() if line.startswith("interrupted")] == [
            f"interrupted (SIGTERM): {run} is unchanged"]
        assert tree(run) == before
        return
    assert code == -signal.SIGKILL
    assert tree(run) != before
    res = runner.invoke(app, ["score", str(run / "checkpoints" / "stage_3.pt"),
                              str(built / "audio_a")])
    assert res.exit_code == 2
    assert "stage 3 is not part of the run" in one_line_error(res.output)
    assert tree(run) == before  # rolled back by the reader
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    (table,) = (run / "report").glob("eer_matrix_*.csv")
    report = pd.read_csv(table)
    assert report.trained_on.tolist() == ["T1", "T2"] and "NEW" not in report.columns


def test_a_second_signal_cannot_cut_the_rollback_short_nor_can_kill_9(
        built: Path, run: Path, tmp_path: Path) -> None:
    """Ctrl-C in the write phase rolls back; more Ctrl-C and SIGTERM during the rollback
    are ignored (one line, exit 130, no traceback). A rollback killed half-way is finished
    by the next command."""
    before = tree(run)
    flag = tmp_path / "pause"
    proc = start(_add(run, "NEW", built / "audio_a"), tmp_path,
                 "add-attack:writing,restoring", flag)
    paused_at(proc, flag, "add-attack:writing")
    proc.send_signal(signal.SIGINT)
    paused_at(proc, flag, "restoring")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        proc.send_signal(sig)
        time.sleep(0.1)
    flag.unlink()
    code, err = finish(proc)
    assert code == 130 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("interrupted")] == [
        f"interrupted: {run} is unchanged"]
    assert tree(run) == before

    proc = start(_add(run, "NEW", built / "audio_a"), tmp_path,
                 "add-attack:writing,restoring", flag)
    paused_at(proc, flag, "add-attack:writing")
    proc.send_signal(signal.SIGINT)
    paused_at(proc, flag, "restoring")
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    flag.unlink()
    assert tree(run) != before  # half put back
    res = runner.invoke(app, ["score", str(run / "checkpoints" / "stage_1.pt"),
                              str(built / "audio_a")])
    assert res.exit_code == 0, res.output
    assert tree(run) == before


def test_sigterm_stops_a_run_cleanly(built: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """SIGTERM (timeout, Slurm, docker stop) stops a run as Ctrl-C does: exit 143, the line
    saying how to continue, nothing half-written; before a stage completed the same --out
    can be used again."""
    cfg = built / "cfg.yaml"
    out, flag = tmp_path / "out", tmp_path / "pause"
    proc = start(["run", str(cfg), "--out", str(out)], tmp_path, "run:stage", flag)
    paused_at(proc, flag, "run:stage")
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("interrupted")] == [
        "interrupted (SIGTERM): no stage had completed, so nothing was kept; run the command "
        "again to start over"]
    assert not out.exists()

    proc = start(["run", str(cfg), "--out", str(out)], tmp_path, "run:stage", flag)
    paused_at(proc, flag, "run:stage")
    flag.unlink()
    paused_at(proc, flag, "run:stage")  # the second stage: the first is recorded
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    flag.unlink()
    assert code == 143 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("interrupted")] == [
        f"interrupted (SIGTERM): 1 completed stage(s) kept in {out}; continue with "
        f"`cl-spoof run --resume {out}`"]
    assert json.loads((out / "run.json").read_text())["completed_stages"] == 1
    res = runner.invoke(app, ["run", "--resume", str(out)])
    assert res.exit_code == 0, res.output
    full = run_experiment(load_config(cfg), tmp_path / "full")
    pd.testing.assert_frame_equal(pd.read_csv(out / "eer_matrix.csv"), full.matrix.reset_index(),
                                  atol=1e-3, rtol=0)


# ------------------------------------------------------------------ checked before any work


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def train_stage(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("trained before the run's folders were checked")

    monkeypatch.setattr("cl_spoof.workflows.trainer.Trainer.train_stage", train_stage)


def test_add_attack_on_a_read_only_run_is_refused_before_it_trains(
        built: Path, run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = tree(run)
    real_temporary, real_open = tempfile.TemporaryFile, os.open

    def read_only_temporary(*args, dir=None, **kwargs):  # noqa: ANN002, ANN003, ANN202, A002
        if dir is not None and Path(dir).resolve().is_relative_to(run.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real_temporary(*args, dir=dir, **kwargs)

    def read_only_open(path, flags, *args):  # noqa: ANN001, ANN002, ANN202
        if flags & os.O_CREAT and Path(path).resolve().is_relative_to(run.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    _no_training(monkeypatch)
    for patch in ("probe", "lock"):
        with monkeypatch.context() as m:
            if patch == "probe":
                m.setattr(tempfile, "TemporaryFile", read_only_temporary)
            else:
                (run / ".cl-spoof-lock").unlink()
                m.setattr(os, "open", read_only_open)
            res = runner.invoke(app, _add(run, "NEW", built / "audio_a"))
        assert res.exit_code == 2, res.output
        line = one_line_error(res.output)
        assert line.startswith("error: cannot ") and str(run) in line
        assert "read-only" in line
        assert tree(run) == before


def test_a_report_folder_that_links_outside_the_run_is_refused(
        built: Path, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "report").symlink_to(outside, target_is_directory=True)
    before = tree(run)
    _no_training(monkeypatch)
    res = runner.invoke(app, _add(run, "NEW", built / "audio_a"))
    assert res.exit_code == 2, res.output
    assert f"{run / 'report'}: a symbolic link (to {outside})" in one_line_error(res.output)
    assert list(outside.iterdir()) == [] and tree(run) == before


# ------------------------------------------------------------------ the data of a run


def test_a_resume_on_other_data_is_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    """Drop four training files of one attack from the manifest of an interrupted run:
    --resume refuses, naming what changed; with the data back it resumes."""
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.parent, corpus)
    manifest = corpus / tiny_corpus.name
    cfg = load_config(tiny_config(manifest, tmp_path))
    out = tmp_path / "run"
    run_experiment(cfg, out)
    status = json.loads((out / "run.json").read_text())  # as if stopped after stage 1
    status.update(completed_stages=1, finished=False, total_stages=None)
    (out / "run.json").write_text(json.dumps(status))
    (out / "checkpoints" / "stage_2.pt").unlink()
    text = manifest.read_text()
    rows = text.splitlines()
    dropped = [r for r in rows if r.startswith("audio/train/T1_")][:4]
    manifest.write_text("\n".join(r for r in rows if r not in dropped) + "\n")
    res = runner.invoke(app, ["run", "--resume", str(out)])
    assert res.exit_code == 2, res.output
    line = one_line_error(res.output)
    assert "the run was started on other data (train/T1/spoof: 6 utterance(s), 10 at the " \
           "start)" in line, line
    manifest.write_text(text)
    res = runner.invoke(app, ["run", "--resume", str(out)])
    assert res.exit_code == 0, res.output
