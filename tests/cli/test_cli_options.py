"""The command line before any training: overrides and config files, shipped configs, errors
with suggestions, --debug and --version, run/compare folder mistakes, partial downloads,
manifests of own data. Every test asserts the exit code and the exact message line."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config, shipped_configs

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
LA_SAMPLE = REPO.parent / "shared" / "data" / "asvspoof2019_la_sample"


def invoke(*args: object) -> tuple[int, str]:
    """Exit code and output (one line per message: wide terminal) of ``cl-spoof ARGS``."""
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return res.exit_code, res.output


def error_line(output: str) -> str:
    """The ``error: ...`` line of an output."""
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


def write_config(path: Path, **sections: object) -> Path:
    """A tiny-run config (tiny model, 1 epoch) with ``sections`` merged in."""
    cfg: dict = {"data": {"num_samples": 4000}, "model": {"preset": "tiny"},
                 "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "threads": 1}}
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def fake_run(path: Path, finished: bool, stages: int = 2) -> Path:
    """A run directory as far as its status goes: config, run.json, checkpoint files."""
    from cl_spoof.config import config_digest, to_dict, to_yaml

    cfg = load_config(None)
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.yaml").write_text(to_yaml(cfg))
    stored = to_dict(cfg)
    (path / "run.json").write_text(json.dumps({
        "completed_stages": stages, "total_stages": stages if finished else None,
        "finished": finished, "seconds": 1.0, "strategy": "naive", "seed": 0,
        "stage_base": 1, "stage_0": False,
        "config_digest": config_digest(stored), "config": stored}))
    for k in range(1, stages + 1):
        (path / "checkpoints" / f"stage_{k}.pt").write_bytes(b"")
    return path


def fake_compare(path: Path) -> Path:
    """A compare directory with one run folder."""
    path.mkdir(parents=True)
    (path / "compare.json").write_text(json.dumps({"strategies": ["naive"], "seeds": [0]}))
    (path / "config.yaml").write_text("seed: 0\n")
    (path / "naive" / "seed0").mkdir(parents=True)
    return path


# ------------------------------------------------------------------ version, debug


def test_version() -> None:
    from cl_spoof import __version__

    assert invoke("--version") == (0, f"cl-spoof {__version__}\n")


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    code, out = invoke("run", tmp_path / "nope.yaml", "--debug")
    assert code == 2 and "Traceback (most recent call last)" in out
    assert error_line(out).startswith(f"error: {tmp_path / 'nope.yaml'}: config file not found")
    code, out = invoke("run", tmp_path / "nope.yaml")
    assert code == 2 and "Traceback" not in out


def test_a_bug_names_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    import cl_spoof.cli as cli

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_config_summary", lambda path: broken())
    code, out = invoke("config", "list")
    assert code == 1
    assert error_line(out) == ("error: unexpected RuntimeError: boom (rerun with --debug for "
                               "the traceback, and please report it)")


# ------------------------------------------------------------------ shipped configs


def test_every_config_is_shipped_in_the_package() -> None:
    names = set(shipped_configs())
    assert {"demo", "asvspoof2019_la", "asvspoof2019_la_a01_a19", "custom_manifest",
            "dataset_sequence", "real_vocoders"} <= names
    for name in names:  # the repository's configs/ is the package's folder
        assert (REPO / "configs" / f"{name}.yaml").resolve() == shipped_configs()[name]


def test_shipped_config_by_name_and_its_typo() -> None:
    assert load_config("asvspoof2019_la").data.attacks[0] == "A01"
    assert load_config("asvspoof2019_la.yaml") == load_config("asvspoof2019_la")
    code, out = invoke("run", "asvspoof2019_lla")
    assert code == 2
    assert error_line(out) == (
        "error: asvspoof2019_lla: config file not found (shipped configs, usable by name: "
        f"{', '.join(shipped_configs())}); did you mean 'asvspoof2019_la'?")


def test_config_list_show_and_defaults() -> None:
    code, out = invoke("config", "list")
    assert code == 0 and "asvspoof2019_la" in out and "ASVspoof 2019 LA" in out
    code, out = invoke("config", "show", "asvspoof2019_la")
    assert code == 0 and out == shipped_configs()["asvspoof2019_la"].read_text()
    code, out = invoke("config", "show", "dem")
    assert code == 2 and error_line(out).endswith("did you mean 'demo'?")
    code, out = invoke("config", "defaults")
    assert code == 0
    assert "# epochs of every experience\n  epochs: 4\n" in out
    assert "  # the strategy (naive" in out and "\n  kd_weight: " in out
    from cl_spoof.config import config_from_dict, parse_yaml, to_dict

    defaults = config_from_dict(parse_yaml(out))  # the text is a valid config
    assert to_dict(defaults)["train"] == to_dict(config_from_dict({}))["train"]


def test_every_config_key_is_documented() -> None:
    import dataclasses

    from cl_spoof.config import field_doc, schema

    for cls in (schema.RunConfig, schema.DataConfig, schema.SourceConfig, schema.ModelSpec,
                schema.SelfDistillationConfig, schema.TrainConfig, schema.AugmentConfig,
                schema.MetricsConfig):
        for f in dataclasses.fields(cls):
            assert field_doc(f), f"{cls.__name__}.{f.name} has no doc="


# ------------------------------------------------------------------ overrides


@pytest.mark.parametrize(("args", "line"), [
    (["--set", "train.epoch=1"],
     "error: --set 'train.epoch=1': unknown config key 'train.epoch' (valid keys here: amp, "
     "augment, balance, batch_size, class_weighted_loss, compile, compile_backend, device, "
     "dist_timeout, "
     "epochs, eval_batch_size, feature_cache, feature_cache_crops, feature_cache_dir, "
         "feature_cache_mb, "
     "first_epochs, loggers, lr, lr_final, lr_gamma, lr_schedule, threads, trainable, "
     "warmup_epochs, weight_decay, workers); did you mean 'train.epochs'?"),
    (["--set", "train.epochs"], "error: --set 'train.epochs': expected KEY=VALUE (e.g. "
                                "train.epochs=1)"),
    (["--set", "train.loggers=[tensorbord]"],
     "error: --set 'train.loggers=[tensorbord]' (given with CFG): train.loggers must be one "
     "of tensorboard, got ['tensorbord']"),
    (["--set", "strategy.kd_wieght=1"],
     "error: --set 'strategy.kd_wieght=1' (given with CFG): unknown config key "
     "'strategy.kd_wieght' (valid keys here: name, KEYS); did you mean 'strategy.kd_weight'?"),
    (["--strategy", "dfwff"], "error: unknown strategy 'dfwff'; valid: NAMES; did you mean "
                              "'dfwf'?"),
])
def test_set_errors_name_the_key_and_the_option(tmp_path: Path, args: list[str],
                                                line: str) -> None:
    from cl_spoof.strategies.registry import STRATEGIES, hyperparameters

    cfg = write_config(tmp_path / "cfg.yaml")
    code, out = invoke("run", cfg, *args, "--out", tmp_path / "r")
    assert code == 2
    expected = (line.replace("CFG", str(cfg)).replace("NAMES", ", ".join(STRATEGIES))
                .replace("KEYS", ", ".join(sorted(hyperparameters()))))
    assert error_line(out) == expected


@pytest.mark.parametrize("command", ["compare", "yardstick"])
def test_set_on_compare_and_yardstick(tmp_path: Path, command: str) -> None:
    cfg = write_config(tmp_path / "cfg.yaml")
    code, out = invoke(command, cfg, "--set", "train.lr=-1", "--out", tmp_path / "r")
    assert code == 2
    assert error_line(out) == (f"error: --set 'train.lr=-1' (given with {cfg}): train.lr must "
                               "be positive, got -1")
    assert not (tmp_path / "r").exists()


def test_set_out_of_range_names_the_file_and_the_option(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml")
    code, out = invoke("run", "--config", cfg, "--set", "train.epochs=0")
    assert code == 2
    assert error_line(out) == (f"error: --set 'train.epochs=0' (given with {cfg}): "
                               "train.epochs must be at least 1, got 0")


def test_config_given_twice(tmp_path: Path) -> None:
    a, b = write_config(tmp_path / "a.yaml"), write_config(tmp_path / "b.yaml")
    code, out = invoke("run", a, "--config", b)
    assert code == 2
    assert error_line(out) == f"error: two configs given ({a} and --config {b}); give one"


def test_a_preset_typo_is_named_before_any_audio_is_read(tmp_path: Path) -> None:
    # The manifest's files do not exist: reading the data would fail differently.
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,attack,speaker,split\nnone.wav,spoof,X,,train\n")
    cfg = write_config(tmp_path / "cfg.yaml", data={"source": "m.csv"})
    code, out = invoke("run", cfg, "--set", "model.preset=smal", "--out", tmp_path / "r")
    assert code == 2
    assert error_line(out).startswith("error: --set 'model.preset=smal': unknown model preset "
                                      "'smal' (model.preset); valid presets: tiny, small")
    assert error_line(out).endswith("; did you mean 'small'?")
    assert not (tmp_path / "r").exists() and "━" not in out  # no run folder, no bar


def test_a_layer_typo_is_named_before_any_audio_is_read(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,attack,speaker,split\nnone.wav,spoof,X,,train\n")
    cfg = write_config(tmp_path / "cfg.yaml", data={"source": "m.csv"})
    code, out = invoke("run", cfg, "--set", "train.trainable=[nolayer]", "--out", tmp_path / "r")
    assert code == 2
    assert error_line(out).startswith("error: --set 'train.trainable=[nolayer]': "
                                      "train.trainable: pattern 'nolayer' matches no layer")


def test_attack_typo_suggests_the_attack(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", data={"source": str(tiny_corpus)})
    code, out = invoke("run", cfg, "--set", "data.attacks=[T1,t2]", "--out", tmp_path / "r")
    assert code == 2
    assert error_line(out) == ("error: attack(s) t2 not in the data (it has: T1, T2); did you "
                               "mean 'T2'?")


def test_layout_typo_suggests_the_layout(tmp_path: Path) -> None:
    code, out = invoke("data", "check", tmp_path, "--layout", "asvspoof2019_l")
    assert code == 2
    assert error_line(out).endswith("; did you mean 'asvspoof2019_la'?")


def test_missing_tensorboard_names_the_key_and_the_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import cl_spoof.workflows.loggers as loggers

    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    cfg = write_config(tmp_path / "cfg.yaml", data={"source": "nowhere.csv"})
    code, out = invoke("run", cfg, "--set", "train.loggers=[tensorboard]", "--out",
                       tmp_path / "r")
    assert code == 2
    assert error_line(out) == (
        "error: --set 'train.loggers=[tensorboard]': train.loggers: tensorboard needs the "
        "tensorboard package; install it (pip install 'cl-spoof[tensorboard]') or remove it "
        "from train.loggers")


# ------------------------------------------------------------------ relative paths


def test_relative_paths_follow_the_config_file_and_overrides_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path / "exp" / "cfg.yaml",
                       data={"source": "../data/m.csv", "cache_dir": "cache"},
                       metrics={"asv_scores": "asv.txt"})
    monkeypatch.chdir(tmp_path / "exp" / "..")
    loaded = load_config(cfg)
    assert loaded.data.source == str(tmp_path / "data" / "m.csv")
    assert loaded.data.cache_dir == str(tmp_path / "exp" / "cache")
    assert loaded.metrics.asv_scores == str(tmp_path / "exp" / "asv.txt")
    monkeypatch.chdir(tmp_path / "exp")
    again = load_config(Path("cfg.yaml"), ["data.source=mine.csv"])
    assert again.data.source == str(tmp_path / "exp" / "mine.csv")
    assert load_config(None).data.source == "demo"


def test_sources_paths_follow_the_config_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "exp" / "cfg.yaml", data={
        "experience_by": "source", "sources": [{"name": "a", "path": "a.csv"},
                                               {"name": "b", "path": "/abs/b"}]})
    loaded = load_config(cfg)
    assert [s.path for s in loaded.data.sources] == [str(tmp_path / "exp" / "a.csv"), "/abs/b"]


def test_shipped_configs_with_a_relative_source_still_find_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cl_spoof.config import loader

    package = tmp_path / "pkg" / "configs"  # configs/ links to the package's configs
    write_config(package / "mine.yaml", data={"source": "../data/m.csv"})
    (tmp_path / "configs").symlink_to(package, target_is_directory=True)
    monkeypatch.setattr(loader, "SHIPPED_DIR", package)
    monkeypatch.chdir(tmp_path)
    expected = str(package.resolve().parent / "data" / "m.csv")
    assert load_config(Path("configs") / "mine.yaml").data.source == expected
    assert load_config("mine").data.source == expected


def test_a_missing_source_names_data_source(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml")
    code, out = invoke("run", cfg, "--data", tmp_path / "LA", "--out", tmp_path / "r")
    assert code == 2
    assert error_line(out) == (f"error: data.source: {tmp_path / 'LA'}: no such file or folder; "
                               "point it at your corpus root or manifest (--data PATH, or edit "
                               "the config)")


# ------------------------------------------------------------------ folders


def test_resume_of_a_finished_run_answers_before_heavy_imports(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", finished=True)
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom cl_spoof.cli import app\n"
            f"res = CliRunner().invoke(app, ['run', '--resume', {str(run)!r}])\n"
            "print(res.exit_code, res.output.strip())\n"
            "print(sorted(m for m in ('torch', 'pandas', 'avalanche') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=120).stdout.splitlines()
    assert out == [f"2 error: {run}: the run already finished; nothing to resume (report it: "
                   f"`cl-spoof report {run}`)", "[]"]


def test_resume_of_a_compare_folder_says_compare(tmp_path: Path) -> None:
    compare = fake_compare(tmp_path / "cmp")
    code, out = invoke("run", "--resume", compare)
    assert code == 2
    assert error_line(out) == (f"error: {compare}: a compare folder, not a run; continue it "
                               f"with `cl-spoof compare --resume {compare}`")
    run = fake_run(tmp_path / "run", finished=False)
    code, out = invoke("compare", "--resume", run)
    assert code == 2
    assert error_line(out) == (f"error: {run}: a run directory, not a comparison; continue it "
                               f"with `cl-spoof run --resume {run}`")


def test_add_attack_on_a_compare_folder_names_its_runs(tmp_path: Path) -> None:
    compare = fake_compare(tmp_path / "cmp")
    code, out = invoke("add-attack", compare, "--name", "NEW", "--spoof", tmp_path)
    assert code == 2
    assert error_line(out) == (f"error: {compare}: a compare folder, not a run; add the attack "
                               f"to one of its runs: {compare / 'naive' / 'seed0'}")


def test_add_attack_refuses_overrides_it_cannot_honour(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", finished=True)
    code, out = invoke("add-attack", run, "--name", "NEW", "--spoof", tmp_path,
                       "--set", "model.preset=base")
    assert code == 2
    assert error_line(out) == (
        "error: --set 'model.preset=base': add-attack continues the run's own model, data and "
        "metrics; it may change train.*, strategy hyper-parameters, seed, data.source (when the "
        "run's data moved), data.cache_dir and data.allow_missing")


@pytest.mark.parametrize("command", ["score", "evaluate"])
def test_a_missing_stage_lists_the_stages_present(tmp_path: Path, command: str) -> None:
    run = fake_run(tmp_path / "run", finished=True, stages=2)
    code, out = invoke(command, run, tmp_path, "--stage", "5")
    assert code == 2
    assert error_line(out) == (f"error: {run / 'checkpoints' / 'stage_5.pt'}: checkpoint not "
                               f"found; stages present in {run}: 1, 2")
    code, out = invoke(command, run / "checkpoints" / "stage_7.pt", tmp_path)
    assert code == 2
    assert error_line(out) == (f"error: {run / 'checkpoints' / 'stage_7.pt'}: checkpoint not "
                               f"found; stages present in {run}: 1, 2")


def test_score_of_a_run_directory_means_its_last_stage(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", finished=True, stages=2)
    code, out = invoke("score", run, tmp_path)  # stage_2.pt (the last) is an empty file
    assert code == 2
    assert error_line(out).startswith(f"error: {run / 'checkpoints' / 'stage_2.pt'}: ")
    assert "━" not in out and "scoring" not in out  # no bar before the first unit of work


def test_evaluate_refuses_before_any_work(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", finished=True)
    code, out = invoke("evaluate", run, tmp_path, "--format", "asvspoof19")
    assert code == 2
    assert error_line(out) == ("error: --format 'asvspoof19': use asvspoof2019 or asvspoof5; "
                               "did you mean 'asvspoof2019'?")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code, out = invoke("evaluate", run, tmp_path, "--out", tmp_path / "out")
    assert code == 2
    assert error_line(out) == (f"error: {tmp_path / 'out'}: exists and is not an empty folder; "
                               "choose another --out (nothing was overwritten)")


# ------------------------------------------------------------------ partial downloads


def _partial_copy(tiny_corpus: Path, tmp_path: Path, drop: str) -> Path:
    """The tiny corpus' manifest with the files of split ``drop`` listed but absent."""
    rows = list(csv.DictReader(tiny_corpus.open()))
    for r in rows:
        r["path"] = str(tiny_corpus.parent / r["path"]) if r["split"] != drop \
            else str(tmp_path / "gone" / r["path"])
    out = tmp_path / "partial.csv"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_partial_download_counts_missing_files_by_split(tiny_corpus: Path,
                                                         tmp_path: Path) -> None:
    manifest = _partial_copy(tiny_corpus, tmp_path, drop="eval")
    code, out = invoke("data", "check", manifest)
    assert code == 1
    assert ("  missing files by split: train 0 of 30, dev 0 of 30, eval 30 of 30; a partial "
            "download? --allow-missing (data.allow_missing: true) uses the files present") in out
    # A config that never reads eval runs on the copy; its check says so.
    cfg = write_config(tmp_path / "cfg.yaml", data={"source": str(manifest)})
    code, out = invoke("data", "check", cfg)
    assert code == 0, out
    assert ("note: missing files by split: train 0 of 30, dev 0 of 30, eval 30 of 30 (not "
            "read); the config reads dev, train: those files are never opened") in out


def test_a_run_on_a_partial_download_suggests_allow_missing(tiny_corpus: Path,
                                                            tmp_path: Path) -> None:
    manifest = _partial_copy(tiny_corpus, tmp_path, drop="dev")
    cfg = write_config(tmp_path / "cfg.yaml", data={"source": str(manifest)})
    code, out = invoke("run", cfg, "--out", tmp_path / "r")
    assert code == 2
    assert ("  missing files by split: train 0 of 30, dev 30 of 30, eval 0 of 30 (not read); "
            "the config reads dev, train; a partial download? --allow-missing "
            "(data.allow_missing: true) uses the files present") in out


@pytest.mark.skipif(not LA_SAMPLE.is_dir(), reason="shared ASVspoof 2019 LA sample absent")
def test_la_partial_copy_names_the_partitions_the_config_reads(tmp_path: Path) -> None:
    code, out = invoke("run", "asvspoof2019_la", "--data", LA_SAMPLE, "--set",
                       "model.preset=tiny", "--out", tmp_path / "r")
    assert code == 2
    line = next(x for x in out.splitlines() if "missing files by split" in x)
    assert re.fullmatch(r"  missing files by split: train [\d,]+ of 25,380, dev [\d,]+ of "
                        r"24,844, eval 71,23\d of 71,237 \(not read\); the config reads dev, "
                        r"train; a partial download\? --allow-missing \(data.allow_missing: "
                        r"true\) uses the files present", line), line


# ------------------------------------------------------------------ own data


def _audio(folder: Path, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.1 * rng.standard_normal(1600)).astype(np.float32), 16_000)


def test_manifest_of_several_folders_split_by_speaker(tmp_path: Path) -> None:
    for folder in ("tts_a", "tts_b"):
        _audio(tmp_path / folder, [f"spk{s}/{i}.wav" for s in range(5) for i in range(2)])
    out = tmp_path / "m.csv"
    code, text = invoke("data", "manifest", tmp_path / "tts_a", tmp_path / "tts_b", "--attack",
                        "MYTTS", "--speaker-from", "parent", "--split-by", "speaker",
                        "--fractions", "train=0.6,dev=0.2,eval=0.2", "--seed", "3", "--out", out)
    assert code == 0, text
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 20 and {r["attack"] for r in rows} == {"MYTTS"}
    assert rows[0]["path"] == "tts_a/spk0/0.wav"  # relative to the manifest
    split_of: dict[str, set[str]] = {}
    for r in rows:
        split_of.setdefault(r["speaker"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())  # a speaker's files share a split
    assert {r["split"] for r in rows} == {"train", "dev", "eval"}
    assert f"wrote 20 rows to {out} (" in text
    again = tmp_path / "again.csv"
    invoke("data", "manifest", tmp_path / "tts_a", tmp_path / "tts_b", "--attack", "MYTTS",
           "--speaker-from", "parent", "--split-by", "speaker", "--fractions",
           "train=0.6,dev=0.2,eval=0.2", "--seed", "3", "--out", again)
    assert again.read_text() == out.read_text()  # seeded


def test_manifest_append_and_duplicates(tmp_path: Path) -> None:
    _audio(tmp_path / "bona", ["1-a.wav", "1-b.wav", "2-a.wav", "2-b.wav"])
    _audio(tmp_path / "fake", ["x.wav", "y.wav"])
    out = tmp_path / "m.csv"
    code, _ = invoke("data", "manifest", tmp_path / "bona", "--label", "bonafide",
                     "--speaker-from", r"^(\d+)-", "--split-by", "file", "--out", out)
    assert code == 0
    assert {r["speaker"] for r in csv.DictReader(out.open())} == {"1", "2"}
    code, text = invoke("data", "manifest", tmp_path / "fake", "--attack", "F", "--out", out,
                        "--append")
    assert code == 0 and f"added 2 rows to {out} (train 2)" in text
    assert len(list(csv.DictReader(out.open()))) == 6
    before = out.read_text()
    code, text = invoke("data", "manifest", tmp_path / "fake", "--attack", "F", "--out", out,
                        "--append")
    assert code == 2
    assert error_line(text) == (f"error: {out}: already lists {tmp_path / 'fake' / 'x.wav'} and "
                                "1 more of the new files; nothing was written")
    assert out.read_text() == before


def test_manifest_option_errors(tmp_path: Path) -> None:
    _audio(tmp_path / "a", ["x.wav", "y.wav"])
    code, out = invoke("data", "manifest", tmp_path / "a", "--attack", "A", "--split-by",
                       "speaker")
    assert code == 2
    assert error_line(out) == ("error: --split-by speaker needs a speaker for every file: "
                               "--speaker-from parent, or --speaker-from REGEX")
    code, out = invoke("data", "manifest", tmp_path / "a", "--attack", "A", "--split-by",
                       "file", "--fractions", "train=0.5,dev=0.2")
    assert code == 2 and error_line(out).startswith("error: --fractions: fractions must sum to "
                                                    "1, got 0.7")
    code, out = invoke("data", "manifest", tmp_path / "a", "--attack", "A", "--speaker-from",
                       "^z(.)")
    assert code == 2
    assert error_line(out) == (f"error: {tmp_path / 'a' / 'x.wav'}: --speaker-from '^z(.)' does "
                               f"not match its path below {tmp_path / 'a'} (x.wav)")
    code, out = invoke("data", "manifest", tmp_path / "a", "--attack", "A", "--append")
    assert code == 2
    assert error_line(out) == ("error: --append adds to the manifest named by --out; give "
                               "--out")
