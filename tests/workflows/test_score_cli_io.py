"""``cl-spoof score`` never overwrites what it must not (the checkpoint, an input, a file of a
run directory; an existing file only with ``--force``), and names every input it cannot
score: a file cut short, NaN samples (counted as decoded), FIFOs, devices, folders and
dangling links under audio names (each counted among the failures); a file name that is
not UTF-8 is scored and written back byte for byte."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config
from cl_spoof.infra.formats import split_fields
from cl_spoof.workflows.run import run_experiment
from tests.helpers.checks import one_line_error, tree_with_links
from tests.helpers.configs import tiny_config

runner = CliRunner()
SR = 16_000








def noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-stage tiny run (its checkpoint scores)."""
    tmp = tmp_path_factory.mktemp("score_io_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CL_SPOOF_CACHE_DIR", str(tmp / "cache"))
        cfg = load_config(tiny_config(tiny_corpus, tmp, strategy={"name": "joint"}))
        run_experiment(cfg, tmp / "run")
    return tmp / "run"


@pytest.fixture
def work(run: Path, tmp_path: Path) -> dict[str, Path]:
    """A private copy of the run, and a folder of audio next to it."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"clip_{i}.wav", noise(SR // 2, i), SR)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,attack,speaker,split\n"
                        f"{audio / 'clip_0.wav'},bonafide,-,,eval\n")
    return {"run": copy, "ckpt": sorted(copy.glob("checkpoints/stage_*.pt"))[-1], "audio": audio,
            "manifest": manifest, "root": tmp_path}


def test_score_out_never_overwrites_an_input_or_a_run_file(work: dict[str, Path]) -> None:
    root, ckpt, audio, run = work["root"], work["ckpt"], work["audio"], work["run"]
    (root / "to_ckpt.pt").symlink_to(ckpt)
    os.link(audio / "clip_1.wav", root / "hard.wav")
    inputs = [str(audio), str(work["manifest"])]
    never = [ckpt, root / "to_ckpt.pt", audio / "clip_1.wav", root / "hard.wav",
             work["manifest"], run / "eer_matrix.csv", run / "run.json",
             run / "scores" / "new.txt", run / "notes.txt"]
    before = tree_with_links(root)
    for out in never:
        for force in ([], ["--force"]):
            res = runner.invoke(app, ["score", str(ckpt), *inputs, "--out", str(out), *force])
            assert res.exit_code == 2, (out, force, res.output)
            line = one_line_error(res.output)
            assert "input of this command" in line or "run directory" in line, line
            assert "scoring" not in res.output  # refused before any work
            assert tree_with_links(root) == before, out


def test_score_out_replaces_an_existing_file_only_with_force(work: dict[str, Path]) -> None:
    out = work["root"] / "scores.txt"
    out.write_text("precious\n")
    args = ["score", str(work["ckpt"]), str(work["audio"]), "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--force" in one_line_error(res.output)
    assert out.read_text() == "precious\n"
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 3


def test_a_folder_counts_and_names_every_entry_it_cannot_score(work: dict[str, Path]) -> None:
    audio = work["audio"]
    os.mkfifo(audio / "fifo.wav")
    (audio / "zero.wav").symlink_to("/dev/zero")
    (audio / "dir.wav").mkdir()
    (audio / "dangling.wav").symlink_to(work["root"] / "gone.wav")
    sf.write(audio / "cut.wav", noise(SR), SR, subtype="PCM_16")
    (audio / "cut.wav").write_bytes((audio / "cut.wav").read_bytes()[:50])
    res = runner.invoke(app, ["score", str(work["ckpt"]), str(audio)])
    assert res.exit_code == 0, res.output
    skipped = {line.split(": ")[0].split("/")[-1]: line for line in res.output.splitlines()
               if line.startswith("skipped")}
    for name, words in [("fifo.wav", "named pipe"), ("zero.wav", "device"),
                        ("dir.wav", "folder"), ("dangling.wav", "symbolic link"),
                        ("cut.wav", "cut short")]:
        assert words in skipped[name], (name, res.output)
    assert "5 failed" in res.output
    scored = [split_fields(line)[0] for line in res.stdout.splitlines() if "clip_" in line]
    assert len(scored) == 3
    # Given by name, a FIFO is said to be one (never opened), not "no such file".
    res = runner.invoke(app, ["score", str(work["ckpt"]), str(audio / "fifo.wav"),
                              str(audio / "clip_0.wav")])
    assert res.exit_code == 0 and "named pipe" in res.output and "1 failed" in res.output


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_samples_are_counted_before_the_level_and_no_warning_leaks(
        work: dict[str, Path], value: float) -> None:
    wave = noise(SR)
    wave[3000:3100] = value
    path = work["root"] / "nan.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = runner.invoke(app, ["score", str(work["ckpt"]), str(path),
                                  str(work["audio"] / "clip_0.wav")])
    assert res.exit_code == 0, res.output
    assert "nan.wav: 100 NaN/Inf sample(s)" in res.output
    assert "RuntimeWarning" not in res.output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_file_name_that_is_not_utf8_is_scored_and_written_back_exactly(
        work: dict[str, Path]) -> None:
    raw = os.fsencode(work["audio"]) + b"/x\xff y.wav"
    os.rename(os.fsencode(work["audio"] / "clip_2.wav"), raw)
    out = work["root"] / "scores.txt"
    res = runner.invoke(app, ["score", str(work["ckpt"]), str(work["audio"]), "--out",
                              str(out)])
    assert res.exit_code == 0, res.output
    assert "0 failed" in res.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert raw in [os.fsencode(split_fields(line)[0]) for line in lines]
