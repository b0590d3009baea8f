"""The command line on real tiny runs: overrides shown in the config a run writes, the
console's loss, conventions and warnings, the training logs, `evaluate` across corpora
(the same clips as the run's test clips), `score RUN_DIR`, and `compare --report`."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.rundir import RunDir

runner = CliRunner()


def invoke(*args: object) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return res.exit_code, res.output


def other_corpus(root: Path, per_split: int = 8) -> Path:
    """A second synthetic corpus (another recording chain: 22.05 kHz, louder, a low hum; its
    own artefacts T1 = noise, T2 = clipping), as a manifest with relative paths."""
    rng = np.random.default_rng(7)
    sr, n = 22_050, 11_025
    t = np.arange(n) / sr
    rows = []
    for split in ("train", "dev", "eval"):
        for i in range(per_split):
            f0 = rng.uniform(90, 220)
            voice = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h
                        for h in range(1, 6))
            voice = 0.4 * voice / np.abs(voice).max() + 0.02 * np.sin(2 * np.pi * 50 * t)
            clips = {"bona": voice,
                     "T1": voice + 0.1 * rng.standard_normal(n),
                     "T2": np.clip(voice * 4, -0.2, 0.2)}
            for kind, wave in clips.items():
                path = root / split / f"{kind}_{i}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, wave.astype(np.float32), sr)
                rows.append([path.relative_to(root).as_posix(),
                             "bonafide" if kind == "bona" else "spoof",
                             "-" if kind == "bona" else kind, f"{split}{i % 3}", split])
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "attack", "speaker", "split"])
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, str, Path]:
    """A tiny naive run on the tiny corpus, every setting given on the command line: the
    run directory, the command's output and the config file (whose data.source is a
    placeholder that --data replaces)."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = tmp / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": "not/there.csv"},
                                   "model": {"preset": "tiny"}}))
    out = tmp / "run"
    code, output = invoke(
        "run", "--config", cfg, "--data", tiny_corpus, "--set", "data.num_samples=4000",
        "--set", "train.epochs=2", "--set", "train.batch_size=8", "--set", "train.threads=1",
        "--set", "train.lr=0.003", "--set", "data.calibration_split=eval",
        "--set", "metrics.undertrained_eer=0", "--set", "train.loggers=[tensorboard]",
        "--out", out)
    assert code == 0, output
    return out, output, cfg


def test_overrides_are_in_the_config_the_run_writes(trained: tuple[Path, str, Path],
                                                    tiny_corpus: Path) -> None:
    out, _, _ = trained
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["data"]["source"] == str(tiny_corpus)  # absolute
    assert written["train"]["epochs"] == 2 and written["data"]["num_samples"] == 4000
    assert written["train"]["loggers"] == ["tensorboard"]


def test_console_shows_loss_conventions_and_warnings(trained: tuple[Path, str, Path]) -> None:
    out, output, _ = trained
    lines = output.splitlines()
    losses = [x for x in lines if x.startswith("  training loss per epoch (")]
    assert [x.split(":")[0] for x in losses] == ["  training loss per epoch (T1)",
                                                  "  training loss per epoch (T2)"]
    assert all(len(x.split(": ")[1].split()) == 2 for x in losses)  # one value per epoch
    assert any(x.startswith(("warning: T1 is at ", "warning: T2 is at ")) and x.endswith(
        " % EER right after learning it (above metrics.undertrained_eer = 0 %): under-trained? "
        "more train.epochs, another train.lr or more data") for x in lines), output
    summary = next(x for x in lines if x.startswith("final average EER"))
    assert "forgetting" in summary and "BWT" not in summary  # one sign on the console
    assert ("forgetting in EER points: larger = more forgetting (↑ worse); BWT, in the tables, "
            "is the other way: BWT < 0 means the detector forgot") in lines
    assert lines[-1] == f"next: cl-spoof report {out}"


def test_training_logs_have_no_accuracy_forgetting(trained: tuple[Path, str, Path]) -> None:
    out, _, _ = trained
    evals = pd.read_csv(out / "logs" / "eval_results.csv")
    assert list(evals.columns) == ["eval_exp", "training_exp", "eval_accuracy", "eval_loss"]
    assert len(evals) > 0
    assert any((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_evaluate_on_the_runs_own_test_split_reproduces_its_scores(
        trained: tuple[Path, str, Path], tiny_corpus: Path, tmp_path: Path) -> None:
    out, _, _ = trained
    code, output = invoke("evaluate", out, tiny_corpus, "--split", "dev", "--out",
                          tmp_path / "ev")
    assert code == 0, output
    ours = pd.read_csv(tmp_path / "ev" / "scores.txt", sep=" ",
                       names=["utt_id", "attack", "key", "score"]).set_index("utt_id")
    last = max(RunDir(out).stages_present())
    runs = pd.read_csv(RunDir(out).score_file(last, "asvspoof2019"), sep=" ",
                       names=["utt_id", "attack", "key", "score"]).set_index("utt_id")
    assert sorted(ours.index) == sorted(runs.index)
    np.testing.assert_allclose(ours.loc[runs.index, "score"], runs["score"], atol=1e-4)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    matrix = pd.read_csv(out / "eer_matrix.csv")
    for attack in ("T1", "T2"):
        assert metrics["eer_per_attack"][attack] == pytest.approx(matrix[attack].iloc[-1],
                                                                  abs=1e-3)
    official = json.loads((out / "metrics.json").read_text())["official"][-1]
    assert metrics["pooled_eer"] == pytest.approx(official["pooled_eer"], abs=1e-3)
    assert metrics["min_dcf"] == pytest.approx(official["min_dcf"], abs=1e-3)
    # the run's own calibration (data.calibration_split) gives actDCF and Cllr
    assert metrics["calibration"]["fitted_on"] == official["calibration"]["fitted_on"]
    assert metrics["act_dcf"] is not None and metrics["cllr"] is not None
    assert (tmp_path / "ev" / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_whole_file_scores_every_file_as_score_does(
        trained: tuple[Path, str, Path], tiny_corpus: Path, tmp_path: Path) -> None:
    from cl_spoof.data import read_source
    from cl_spoof.workflows.score import score_paths

    out, _, _ = trained
    code, output = invoke("evaluate", out, tiny_corpus, "--split", "dev", "--whole-file",
                          "--out", tmp_path / "ev")
    assert code == 0, output
    assert ("inputs: as the run's test clips: mono at 16000 Hz, level rms, the mean score of "
            "windows of 4000 samples every 2000 over the whole file (shorter files "
            "repeated)") in output.splitlines()
    ours = pd.read_csv(tmp_path / "ev" / "scores.txt", sep=" ",
                       names=["utt_id", "attack", "key", "score"]).set_index("utt_id")
    table = read_source(tiny_corpus)
    dev = table[table["split"] == "dev"]
    scored = score_paths(RunDir(out).checkpoint_path(max(RunDir(out).stages_present())),
                         [Path(p) for p in dev["path"]])
    assert max(f.num_windows for f in scored.files) > 1  # not just the start of each file
    by_path = {str(f.path): f.score for f in scored.files}
    np.testing.assert_allclose(ours.loc[dev["utt_id"], "score"],
                               [by_path[str(Path(p))] for p in dev["path"]], atol=1e-5)
    crop = pd.read_csv(RunDir(out).score_file(max(RunDir(out).stages_present()), "asvspoof2019"),
                       sep=" ", names=["utt_id", "attack", "key", "score"]).set_index("utt_id")
    assert not np.allclose(ours.loc[crop.index, "score"], crop["score"], atol=1e-4)


def test_evaluate_cross_corpus(trained: tuple[Path, str, Path], tmp_path: Path) -> None:
    out, _, _ = trained
    other = other_corpus(tmp_path / "other")
    first = min(RunDir(out).stages_present())
    code, output = invoke("evaluate", out, other, "--stage", first, "--out", tmp_path / "ev",
                          "--format", "asvspoof5")
    assert code == 0, output
    lines = output.splitlines()
    assert f"{RunDir(out).checkpoint_path(first)} on {other} (split eval)" in lines
    assert any(x.startswith("pooled EER ") and "; minDCF " in x and "actDCF" in x
               for x in lines), output
    assert ("min t-DCF: not available; it needs the organisers' ASV scores of the same "
            "partition: --asv-scores FILE") in lines
    assert ("inputs: as the run's test clips: mono at 16000 Hz, level rms, the first 4000 "
            "samples (shorter files repeated)") in lines
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(metrics["eer_per_attack"]) == {"T1", "T2"} and metrics["stage"] == first
    assert metrics["utterances"] == {"bonafide": 8, "T1": 8, "T2": 8}
    keys = (tmp_path / "ev" / "scores.keys.tsv").read_text().splitlines()
    assert keys[0] == "filename\tcm-label" and len(keys) == 25


def test_evaluate_with_asv_scores_gives_min_tdcf(trained: tuple[Path, str, Path],
                                                 tiny_corpus: Path, tmp_path: Path) -> None:
    out, _, _ = trained
    rng = np.random.default_rng(0)
    asv = tmp_path / "asv.txt"  # the organisers' format: SOURCE KEY SCORE
    asv.write_text("".join([f"bonafide target {v:.3f}\n" for v in rng.normal(3, 1, 40)]
                           + [f"bonafide nontarget {v:.3f}\n" for v in rng.normal(-3, 1, 40)]
                           + [f"{a} spoof {v:.3f}\n" for a in ("T1", "T2")
                              for v in rng.normal(1, 2, 20)]))
    code, output = invoke("evaluate", out, tiny_corpus, "--asv-scores", asv, "--out",
                          tmp_path / "ev")
    assert code == 0, output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["min_tdcf"] >= 0 and "min_tdcf" not in metrics["not_available"]
    assert any(x.startswith("pooled EER ") and "min t-DCF " in x for x in output.splitlines())


def test_add_attack_with_overrides(trained: tuple[Path, str, Path], tiny_corpus: Path,
                                   tmp_path: Path) -> None:
    out, _, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)  # the module's run stays as it is
    other = other_corpus(tmp_path / "other", per_split=3)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for path in other.parent.glob("*/T2_*.wav"):
        shutil.copy(path, fakes / f"{path.parent.name}_{path.name}")
    code, output = invoke("add-attack", run, "--name", "NEWTTS", "--spoof", fakes,
                          "--strategy", "naive", "--set", "train.epochs=1",
                          "--data", tiny_corpus)
    assert code == 0, output
    matrix = pd.read_csv(run / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", "T1", "T2", "NEWTTS"]
    assert "  training loss per epoch (NEWTTS): " in output  # one epoch, as --set asked
    assert len(next(x for x in output.splitlines()
                    if x.startswith("  training loss per epoch (NEWTTS)")).split()) == 6


def test_evaluate_without_the_runs_calibration(trained: tuple[Path, str, Path],
                                               tiny_corpus: Path, tmp_path: Path) -> None:
    out, _, _ = trained
    alone = tmp_path / "detector.pt"
    shutil.copy(RunDir(out).last_checkpoint(), alone)  # outside its run: no metrics.json
    code, output = invoke("evaluate", alone, tiny_corpus)
    assert code == 0, output
    assert ("actDCF: not available; the checkpoint's run fitted no score calibration; train "
            "with data.calibration_split set to get one") in output.splitlines()


def test_evaluate_a_config_uses_its_test_split(trained: tuple[Path, str, Path],
                                               tiny_corpus: Path) -> None:
    out, _, cfg = trained
    code, output = invoke("evaluate", out, cfg, "--set", f"data.source={tiny_corpus}")
    assert code == 0, output
    assert f"{RunDir(out).last_checkpoint()} on {cfg} (split dev)" in output.splitlines()
    code, output = invoke("evaluate", out, tiny_corpus, "--split", "test")
    assert code == 2
    assert output.splitlines()[-1] == (f"error: {tiny_corpus}: no rows of split 'test' (its "
                                       "splits: dev, eval, train); choose one with --split, or "
                                       "--split all")


def test_score_a_run_directory(trained: tuple[Path, str, Path], tiny_corpus: Path) -> None:
    out, _, _ = trained
    code, output = invoke("score", out, tiny_corpus.parent / "audio" / "eval")
    assert code == 0, output
    last = max(RunDir(out).stages_present())
    assert f"(EER threshold of the checkpoint (stage {last}, trained on T2" in output


def test_resume_of_the_finished_run(trained: tuple[Path, str, Path]) -> None:
    out, _, _ = trained
    code, output = invoke("run", "--resume", out)
    assert code == 2
    assert output.splitlines()[-1] == (f"error: {out}: the run already finished; nothing to "
                                       f"resume (report it: `cl-spoof report {out}`)")


def test_compare_shows_overall_progress_and_builds_the_report(tiny_corpus: Path,
                                                              tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"preset": "tiny"}, "train": {
        "epochs": 1, "batch_size": 8, "threads": 1}, "data": {"num_samples": 4000}}))
    code, output = invoke("compare", cfg, "--data", tiny_corpus, "--strategies",
                          "naive,joint", "--seeds", "1", "--report", "--out", tmp_path / "cmp")
    assert code == 0, output
    assert re.search(r"^runs +━+ 2/2 ", output, re.M), output  # the bar of the comparison
    assert output.splitlines()[-1] == f"report: {tmp_path / 'cmp' / 'report' / 'report.html'}"
    assert (tmp_path / "cmp" / "report" / "report.html").is_file()


def test_compare_resume_grows_with_more_strategies_and_seeds(tiny_corpus: Path,
                                                            tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"preset": "tiny"}, "train": {
        "epochs": 1, "batch_size": 8, "threads": 1}, "data": {"num_samples": 4000}}))
    cmp = tmp_path / "cmp"
    code, output = invoke("compare", cfg, "--data", tiny_corpus, "--strategies", "naive",
                          "--seeds", "1", "--out", cmp)
    assert code == 0, output
    first = (cmp / "naive" / "seed0" / "eer_matrix.csv").read_bytes()
    code, output = invoke("compare", "--resume", cmp, "--strategies", "joint", "--seeds", "2")
    assert code == 0, output
    assert "Comparison over 2 seed(s)" in output
    assert json.loads((cmp / "compare.json").read_text()) == {"strategies": ["naive", "joint"],
                                                              "seeds": [0, 1]}
    assert (cmp / "naive" / "seed0" / "eer_matrix.csv").read_bytes() == first  # kept
    assert all((cmp / s / f"seed{k}" / "run.json").is_file()
               for s in ("naive", "joint") for k in (0, 1))
