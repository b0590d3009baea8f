"""Regression tests, one per failure once seen: hostile names, forged score lines, resume
after an edited config, reserved names, relative paths, nonsensical settings, and every
user-caused failure as one named line (exit 2) that leaves the run directory as it was."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config, to_yaml, with_overrides
from cl_spoof.errors import CLSpoofError, ConfigError, DataError
from cl_spoof.infra.checkpoints import save_checkpoint
from cl_spoof.infra.formats import split_fields
from cl_spoof.workflows.add_attack import add_attack
from cl_spoof.workflows.run import run_experiment
from tests.helpers.checks import one_line_error, tree
from tests.helpers.configs import tiny_config
from tests.helpers.corpora import make_tiny_corpus
from tests.helpers.paths import ROOT

runner = CliRunner()


@pytest.fixture(scope="module")
def done_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("failures")
    run_experiment(load_config(tiny_config(tiny_corpus, tmp)), tmp / "run")
    return tmp / "run"


@pytest.fixture
def run(done_run: Path, tmp_path: Path) -> Path:
    """A private copy of a finished 2-stage run."""
    shutil.copytree(done_run, tmp_path / "run")
    return tmp_path / "run"


def _interrupted(run_dir: Path) -> Path:
    """``run_dir`` as a run interrupted after its first stage."""
    status = json.loads((run_dir / "run.json").read_text())
    status.update(completed_stages=1, finished=False, total_stages=None)
    (run_dir / "run.json").write_text(json.dumps(status))
    (run_dir / "checkpoints" / "stage_2.pt").unlink()
    return run_dir


def _audio_folder(folder: Path, n: int = 8, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for i, name in enumerate(names or [f"clip_{k}.wav" for k in range(n)]):
        wave = 0.2 * np.sin(np.arange(8000) * (0.05 + 0.01 * i)) + 0.02 * rng.standard_normal(8000)
        sf.write(folder / name, wave.astype(np.float32), 16000)
    return folder


# ------------------------------------------------------------------ bugs


def test_bug1_add_attack_name_cannot_escape_the_run(run: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "manifest.csv").write_text("precious\n")
    new = _audio_folder(tmp_path / "new")
    before = tree(tmp_path)
    res = runner.invoke(app, ["add-attack", str(run), "--name", "../../../victim/manifest",
                              "--spoof", str(new)])
    assert res.exit_code == 2
    assert "is not allowed" in one_line_error(res.output)
    assert tree(tmp_path) == before


def test_bug5_file_names_cannot_forge_score_lines(run: Path, tmp_path: Path) -> None:
    folder = _audio_folder(tmp_path / "audio", names=[
        "x\nforged.wav 99.000000 bonafide\ny.wav", "plain.wav", "with space.wav"])
    checkpoint = run / "checkpoints" / "stage_2.pt"
    res = runner.invoke(app, ["score", str(checkpoint), str(folder), "--threshold", "0"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line and not line[0].isdigit()]
    assert len(lines) == 3 and not any(line.startswith("forged.wav") for line in lines)
    assert sorted(Path(split_fields(line)[0]).name for line in lines) == sorted(
        p.name for p in folder.iterdir())
    out = tmp_path / "scores.txt"
    assert runner.invoke(app, ["score", str(checkpoint), str(folder), "--out", str(out)]
                         ).exit_code == 0
    written = out.read_text().splitlines()
    assert len(written) == 3 and all(len(line.split(" ")) == 3 for line in written)


def test_bug5_utterance_ids_cannot_forge_run_score_lines(tmp_path: Path) -> None:
    manifest = make_tiny_corpus(tmp_path / "corpus", per_split=6)
    odd = manifest.parent / "audio" / "dev" / "bona_0.wav"
    forged = odd.with_name("b\nT1 spoof 99.0 x.wav")
    odd.rename(forged)
    text = manifest.read_text().replace("audio/dev/bona_0.wav", '"audio/dev/b\nT1 spoof 99.0 '
                                                                 'x.wav"')
    manifest.write_text(text)
    run_experiment(load_config(tiny_config(manifest, tmp_path)), tmp_path / "run")
    lines = (tmp_path / "run" / "scores" / "stage_1.txt").read_text().splitlines()
    assert all(len(line.split(" ")) == 4 for line in lines)
    # The id derived from the path has its white space as "_": one field, no forged line.
    assert "audio/dev/b_T1_spoof_99.0_x" in [line.split(" ")[0] for line in lines]
    assert not any(line.startswith("T1 ") for line in lines)
    # An id the manifest gives with white space is refused before training, naming it.
    given = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    given["utt_id"] = [f"id {k}" for k in range(len(given))]
    given.to_csv(manifest, index=False)
    with pytest.raises(DataError, match="utt_id value.*whitespace.*'id 0'"):
        run_experiment(load_config(tiny_config(manifest, tmp_path)), tmp_path / "run2")
    assert not (tmp_path / "run2").exists()


def test_bug6_resume_refuses_an_edited_config(run: Path) -> None:
    _interrupted(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["attacks"] = ["T2", "T1"]  # the order reversed
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = tree(run)
    res = runner.invoke(app, ["run", "--resume", str(run)])
    assert res.exit_code == 2
    assert "differs in data.attacks" in one_line_error(res.output)
    assert tree(run) == before
    # The programmatic API checks the config it is given too.
    (run / "config.yaml").write_text(to_yaml(load_config(run / "config.yaml")))
    cfg_obj = load_config(run / "config.yaml")
    with pytest.raises(CLSpoofError, match="differs in"):
        run_experiment(with_overrides(cfg_obj, train={"lr": 0.5}), run, resume=True)


def test_bug6_resume_refuses_a_checkpoint_of_another_config(run: Path) -> None:
    _interrupted(run)
    ckpt = torch.load(run / "checkpoints" / "stage_1.pt", weights_only=True)
    ckpt["config"]["train"]["lr"] = 0.5
    save_checkpoint(run / "checkpoints" / "stage_1.pt", ckpt)  # a whole checkpoint, not damage
    with pytest.raises(CLSpoofError, match=r"stage_1\.pt: the run was started with another "
                                           r"config \(it differs in train\.lr\)"):
        run_experiment(load_config(run / "config.yaml"), run, resume=True)


@pytest.mark.parametrize("name", ["trained_on", "stage", "joint", "pretrained", "-", ".hidden",
                                  "STAGE"])
def test_bug7_reserved_attack_names_are_refused(run: Path, tmp_path: Path, name: str) -> None:
    before = tree(run)
    with pytest.raises(CLSpoofError, match="reserved|not allowed"):
        add_attack(run, name, _audio_folder(tmp_path / "new"))
    assert tree(run) == before


def test_bug8_added_paths_are_absolute(run: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here").mkdir()
    _audio_folder(tmp_path / "here" / "first")
    monkeypatch.chdir(tmp_path / "here")
    add_attack(run, "FIRST", Path("first"))
    entry = json.loads((run / "added" / "added.json").read_text())["attacks"][0]
    assert Path(entry["spoof"]).is_absolute()
    assert all(Path(p).is_absolute() for p in pd.read_csv(run / "added" / "FIRST.csv").path)
    monkeypatch.chdir(tmp_path)  # elsewhere: the first attack's files are still found
    add_attack(run, "SECOND", _audio_folder(tmp_path / "second"))
    matrix = pd.read_csv(run / "eer_matrix.csv")
    assert matrix.trained_on.tolist()[-2:] == ["FIRST", "SECOND"]
    assert matrix["FIRST"].notna().all()


@pytest.mark.parametrize("key", ["max_train_per_attack", "max_test_per_attack",
                                 "max_bonafide_test"])
@pytest.mark.parametrize("value", [0, -3])
def test_bug9_nonsensical_caps_are_config_errors(key: str, value: int) -> None:
    from cl_spoof.config import config_from_dict

    with pytest.raises(ConfigError, match=rf"data\.{key} must be at least 1"):
        config_from_dict({"data": {key: value}})


# ------------------------------------------------------------------ weak items


def _limited_run(cfg: Path, out: Path, limit: int) -> subprocess.CompletedProcess:
    """``cl-spoof run`` with files limited to ``limit`` bytes (like a full disk)."""
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
              "from cl_spoof.cli import main\n"
              "sys.argv = ['cl-spoof', 'run', sys.argv[1], '--out', sys.argv[2]]\n"
              "main()\n")
    return subprocess.run([sys.executable, "-c", script, str(cfg), str(out)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)


def test_a_full_disk_during_run_is_one_line_and_leaves_nothing(tiny_corpus: Path,
                                                              tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    run_experiment(load_config(cfg), tmp_path / "warm")  # the cache exists: only the run writes
    proc = _limited_run(cfg, tmp_path / "out", 12_000)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_line_error(proc.stderr)
    assert "out/checkpoints/stage_1.pt" in line and "free space" in line
    assert not (tmp_path / "out").exists()


def test_a_read_only_output_folder_is_named(tiny_corpus: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    real = Path.mkdir

    def read_only(self: Path, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        if tmp_path / "ro" in (self, *self.parents):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    res = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "ro" / "run")])
    assert res.exit_code == 2
    assert "Read-only file system; the file system is read-only: choose another folder" in \
        one_line_error(res.output)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_named_for_real(tiny_corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    res = runner.invoke(app, ["run", str(tiny_config(tiny_corpus, tmp_path)), "--out",
                              str(tmp_path / "ro" / "run")])
    assert res.exit_code == 2 and "Permission denied" in one_line_error(res.output)


def test_score_out_is_checked_before_the_work_and_never_loses_scores(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = run / "checkpoints" / "stage_2.pt"
    audio = _audio_folder(tmp_path / "audio", n=3)
    (tmp_path / "file").write_text("x")
    for out, words in [(tmp_path, "is a folder"), (tmp_path / "file" / "s.txt", "not a folder")]:
        res = runner.invoke(app, ["score", str(checkpoint), str(audio), "--out", str(out)])
        assert res.exit_code == 2 and words in one_line_error(res.output)
        assert "scoring" not in res.output  # refused before any work
    import tempfile

    real_temporary_file = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):  # noqa: ANN002, ANN003, ANN202, A002
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real_temporary_file(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    res = runner.invoke(app, ["score", str(checkpoint), str(audio), "--out",
                              str(tmp_path / "ro" / "s.txt")])
    assert res.exit_code == 2 and "Read-only file system" in one_line_error(res.output)
    assert "scoring" not in res.output
    monkeypatch.undo()

    import cl_spoof.infra.files as files

    def full(path, text):  # noqa: ANN001, ANN202
        raise files.FileSystemError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr("cl_spoof.workflows.score.atomic_write_text", full)
    res = runner.invoke(app, ["score", str(checkpoint), str(audio), "--out",
                              str(tmp_path / "s.txt")])
    assert res.exit_code == 2
    assert "printed to standard output instead" in one_line_error(res.output)
    assert len([line for line in res.stdout.splitlines() if "clip_" in line]) == 3


@pytest.mark.parametrize(("edit", "words"), [
    ("lr: 0.003", "lr: 1e-3"),  # PyYAML alone reads 1e-3 as a string
])
def test_lr_in_exponent_notation_is_a_number(tiny_corpus: Path, tmp_path: Path, edit: str,
                                             words: str) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    cfg.write_text(cfg.read_text().replace(edit, words))
    assert load_config(cfg).train.lr == 0.001


@pytest.mark.parametrize(("change", "named"), [
    ({"seed": -1}, "seed must be between 0"),
    ({"seed": 2**63}, "seed must be between 0"),
    ({"data": {"num_samples": 1e11}}, "data.num_samples must be at most"),
    ({"train": {"workers": 1000}}, "train.workers must be between 0 and 64"),
    ({"train": {"batch_size": 10**9}}, "train.batch_size must be between"),
    ({"data": {"attacks": ["T1", "a b"]}}, "data.attacks: attack name 'a b'"),
    ({"train": {"lr": float("nan")}}, "train.lr: expected a finite number"),
])
def test_absurd_values_are_named(change: dict, named: str) -> None:
    from cl_spoof.config import config_from_dict

    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        config_from_dict(change)


@pytest.mark.parametrize(("content", "words"), [
    ("", "the config is empty"),
    (b"\x00\xff\xfe binary", "not a text file"),
    ("- a\n- b\n", "expected a mapping of sections"),
    ("data: [", "not valid YAML"),
    (None, "is a folder, not a config file"),
])
def test_unusable_config_files_are_named(tmp_path: Path, content: str | bytes | None,
                                         words: str) -> None:
    path = tmp_path / "cfg.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and words in one_line_error(res.output)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("damage", "words"), [
    ("run.json garbage", "run.json: damaged"),
    ("run.json list", "run.json: damaged"),
    ("no eer_matrix.csv", "eer_matrix.csv: missing"),
    ("random checkpoint", "not a PyTorch file"),
    ("NaN weights", "NaN or Inf"),
    ("resume a file", "not a run directory"),
])
def test_damaged_run_directories_are_named_on_resume(run: Path, damage: str,
                                                     words: str) -> None:
    _interrupted(run)
    target = run
    if damage == "run.json garbage":
        (run / "run.json").write_text("{ garbage")
    elif damage == "run.json list":
        (run / "run.json").write_text("[1, 2]")
    elif damage == "no eer_matrix.csv":
        (run / "eer_matrix.csv").unlink()
    elif damage == "random checkpoint":
        (run / "checkpoints" / "stage_1.pt").write_bytes(os.urandom(4096))
    elif damage == "NaN weights":
        ckpt = torch.load(run / "checkpoints" / "stage_1.pt", weights_only=True)
        first = next(iter(ckpt["model_state"]))
        ckpt["model_state"][first].fill_(float("nan"))
        save_checkpoint(run / "checkpoints" / "stage_1.pt", ckpt)  # a run that diverged
    else:
        target = run / "config.yaml"
    before = tree(run)
    res = runner.invoke(app, ["run", "--resume", str(target)])
    assert res.exit_code == 2
    line = one_line_error(res.output)
    assert words in line and "train.lr" not in line and "Python objects" not in line
    assert tree(run) == before


def test_add_attack_failing_in_the_report_changes_nothing(run: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    runner.invoke(app, ["report", str(run)])  # a report exists, as after any add-attack
    before = tree(run)

    def disk_full(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "report" / "x.png"))

    monkeypatch.setattr("cl_spoof.reporting.build.render_html", disk_full)
    res = runner.invoke(app, ["add-attack", str(run), "--name", "NEW", "--spoof",
                              str(_audio_folder(tmp_path / "new"))])
    assert res.exit_code == 2
    assert "No space left on device; free some space" in one_line_error(res.output)
    assert tree(run) == before


def test_add_attack_killed_half_way_is_put_back_by_the_next_command(run: Path,
                                                                     tmp_path: Path) -> None:
    from cl_spoof.infra.transaction import _snapshot

    before = tree(run)
    undo = _snapshot(run)  # as an add-attack killed (kill -9) while writing leaves it
    assert undo is not None
    undo.rename(undo.with_name(".cl-spoof-undo-999999999"))
    (run / "half").write_text("half-written")  # cl-spoof replaces files, never edits them
    os.replace(run / "half", run / "eer_matrix.csv")
    (run / "checkpoints" / "stage_3.pt").write_bytes(b"partial")
    with pytest.raises(CLSpoofError, match="reserved"):
        add_attack(run, "stage", tmp_path)  # refused: the name is checked first...
    add_attack(run, "NEW", _audio_folder(tmp_path / "new"), report=False)
    matrix = pd.read_csv(run / "eer_matrix.csv")  # ...then the run was put back, and extended
    assert matrix.trained_on.tolist() == ["T1", "T2", "NEW"]
    assert set(before) <= set(tree(run))


def test_a_refused_run_leaves_nothing_so_the_rerun_works(tiny_corpus: Path,
                                                         tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path, data={"attacks": ["T1", "NOPE"]})
    out = tmp_path / "nested" / "out"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 2 and "NOPE not in the data" in one_line_error(res.output)
    assert not (tmp_path / "nested").exists()
    good = tiny_config(tiny_corpus, tmp_path)
    assert runner.invoke(app, ["run", str(good), "--out", str(out)]).exit_code == 0


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--debug", "run", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "Traceback" in res.output and "config file not found" in \
        res.output
    res = runner.invoke(app, ["run", str(tmp_path / "missing.yaml")])
    assert "Traceback" not in res.output


def _interrupt(cfg: Path, out: Path, after_stages: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, "-m", "cl_spoof", "run", str(cfg), "--out",
                             str(out)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            status = json.loads((out / "run.json").read_text())
            if status["completed_stages"] >= after_stages:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    time.sleep(1.0)  # inside the next stage (it lasts far longer)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_ctrl_c_says_how_to_continue(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path, train={"epochs": 400, "first_epochs": 1})
    res = _interrupt(cfg, tmp_path / "run", after_stages=1)
    assert res.returncode == 130, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("interrupted:")]
    assert lines == [f"interrupted: 1 completed stage(s) kept in {tmp_path / 'run'}; continue "
                     f"with `cl-spoof run --resume {tmp_path / 'run'}`"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["completed_stages"] == 1


def test_atomic_dir_is_all_or_nothing(tmp_path: Path) -> None:
    from cl_spoof.errors import FileSystemError
    from cl_spoof.infra.files import atomic_dir

    out = tmp_path / "result"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("fault while writing")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary one
    out.mkdir()  # an empty folder is replaced
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a"
    with pytest.raises(FileSystemError, match="result"), atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("b")  # a full folder is never replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
    assert [p.name for p in out.iterdir()] == ["a.txt"]
