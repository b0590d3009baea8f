"""``add-attack`` refuses new audio that is already in the run under another label: a new
spoof file that is one of the run's own bona fide files (by a symlink, a hard link or
another spelling of its path) would be evaluated as both bona fide and spoof."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config
from cl_spoof.workflows.run import run_experiment
from tests.helpers.checks import tree
from tests.helpers.configs import tiny_config

runner = CliRunner()






@pytest.fixture(scope="module")
def finished(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("add_identity")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CL_SPOOF_CACHE_DIR", str(tmp / "cache"))
        run_experiment(load_config(tiny_config(tiny_corpus, tmp)), tmp / "run")
    return tmp / "run"


def _new_spoof(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(8):
        sf.write(folder / f"clip_{i}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32),
                 16000)
    return folder


def _a_run_bonafide_file(tiny_corpus: Path) -> Path:
    table = pd.read_csv(tiny_corpus, dtype=str, keep_default_na=False)
    rel = table.loc[table["label"] == "bonafide", "path"].iloc[0]
    return tiny_corpus.parent / rel


@pytest.mark.parametrize("how", ["symlink", "hardlink", "manifest"])
def test_a_new_spoof_file_that_is_a_run_bonafide_file_is_refused(
        finished: Path, tiny_corpus: Path, tmp_path: Path, how: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    spoof = _new_spoof(tmp_path / "new")
    own = _a_run_bonafide_file(tiny_corpus)
    if how == "symlink":
        (spoof / "sneaky.wav").symlink_to(own)
    elif how == "hardlink":
        try:
            os.link(own, spoof / "sneaky.wav")
        except OSError:
            pytest.skip("no hard links across these folders")
    else:  # a manifest naming the run's file by another spelling of its path
        paths = [*sorted(spoof.iterdir()), Path(str(own.parent) + "/./" + own.name)]
        spoof = tmp_path / "new.csv"
        pd.DataFrame({"path": [str(p) for p in paths], "label": "spoof", "attack": "NEW",
                      "speaker": "", "split": "train"}).to_csv(spoof, index=False)
    before = tree(run)
    res = runner.invoke(app, ["add-attack", str(run), "--name", "NEW", "--spoof", str(spoof)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "bona fide" in line and own.name in line, line
    assert tree(run) == before


def test_the_same_file_as_new_spoof_and_new_bonafide_is_refused(finished: Path,
                                                                tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    spoof = _new_spoof(tmp_path / "new")
    bona = tmp_path / "bona"
    shutil.copytree(spoof, bona)
    (bona / "clip_0.wav").unlink()
    (bona / "clip_0.wav").symlink_to(spoof / "clip_0.wav")
    res = runner.invoke(app, ["add-attack", str(run), "--name", "NEW", "--spoof", str(spoof),
                              "--bonafide", str(bona)])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "clip_0.wav" in line and "bona fide" in line, line


def test_odd_entries_of_the_new_audio_are_named_among_the_skipped(tmp_path: Path) -> None:
    """A FIFO, a device, a folder or a dangling link under an audio name in --spoof is
    skipped and said what it is (never opened), like an unreadable file."""
    from cl_spoof.workflows.add_attack import _collect

    spoof = _new_spoof(tmp_path / "new")
    os.mkfifo(spoof / "fifo.wav")
    (spoof / "zero.wav").symlink_to("/dev/zero")
    (spoof / "dir.wav").mkdir()
    (spoof / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    rows, problems = _collect(spoof, "spoof", "NEW", ("train", "dev"), 0.3, 0)
    assert len(rows) == 8
    said = {Path(line.split(": ")[0]).name: line for line in problems}
    for name, words in [("fifo.wav", "named pipe"), ("zero.wav", "device"),
                        ("dir.wav", "folder"), ("gone.wav", "symbolic link")]:
        assert words in said[name], problems
