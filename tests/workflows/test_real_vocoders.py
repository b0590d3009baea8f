"""configs/real_vocoders.yaml: it needs ``--data``, and runs end to end on the shared real
set given with it (a tiny part of it: one attack, a tiny model, one epoch).

The runs skip where ``../shared/data/real_vocoders_tts`` is absent (it is development data,
never shipped with cl-spoof).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config, to_yaml, with_overrides
from cl_spoof.metrics.score_files import read_asvspoof2019_scores
from cl_spoof.workflows.yardstick import run_yardstick
from tests.helpers.checks import eers_from_scores, one_line_error
from tests.helpers.paths import ROOT, SHARED

REAL = SHARED / "real_vocoders_tts" / "manifest.csv"
runner = CliRunner()


@pytest.fixture
def real_subset(tmp_path: Path) -> Path:
    """A manifest of a few real files: two attacks (a GAN vocoder, a zero-shot TTS) and the
    bona fide of both sub-corpora, train and eval; absolute paths into ../shared."""
    if not REAL.is_file():
        pytest.skip(f"shared real vocoder / TTS set not found at {REAL} (only present in the "
                    "project's development checkout)")
    table = pd.read_csv(REAL)
    picks = []
    for split, n_spoof, n_bona in (("train", 3, 2), ("eval", 3, 3)):
        rows = table[table["split"] == split]
        for attack in ("is21-hifigan", "styletts2"):
            picks.append(rows[rows["attack"] == attack].head(n_spoof))
        for folder in ("univnet-is2021/", "tts-icassp2026/"):
            bona = rows[(rows["label"] == "bonafide") & rows["path"].str.startswith(folder)]
            picks.append(bona.head(n_bona))
    subset = pd.concat(picks)
    subset["path"] = [str(REAL.parent / p) for p in subset["path"]]
    out = tmp_path / "manifest.csv"
    subset.to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
    return out


def test_shipped_config_needs_data_and_runs_on_the_shared_set_given_with_it(
        tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "real_vocoders.yaml")
    assert (cfg.data.sample_rate, cfg.data.level, cfg.metrics.matched_by) == (24_000, "rms",
                                                                              "folder")
    assert len(cfg.data.attacks) == 12 and cfg.model.preset == "small"
    res = runner.invoke(app, ["run", "real_vocoders", "--out", str(tmp_path / "none")],
                        env={"COLUMNS": "400"})
    assert res.exit_code == 2
    assert one_line_error(res.output) == (
        f"error: data.source: {cfg.data.source}: no such file or folder; point it at your "
        "corpus root or manifest (--data PATH, or edit the config)")
    if not REAL.is_file():
        pytest.skip(f"shared real vocoder / TTS set not found at {REAL} (only present in the "
                    "project's development checkout)")
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "real_vocoders", "--data", str(REAL), "--strategy", "joint",
                              "--set", "data.attacks=[is21-hifigan]",
                              "--set", "data.num_samples=4800", "--set", "model.preset=tiny",
                              "--set", "train.first_epochs=1", "--set", "train.augment=null",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(out / "eer_matrix.csv").columns) == ["stage", "trained_on",
                                                                  "is21-hifigan"]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["source"] == str(REAL)


def test_real_config_end_to_end_on_a_tiny_subset(real_subset: Path, tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "real_vocoders.yaml")
    cfg = with_overrides(cfg, data={"source": str(real_subset),
                                    "attacks": ["is21-hifigan", "styletts2"]},
                         train={"epochs": 1, "first_epochs": 1, "batch_size": 4,
                                "eval_batch_size": 8})
    config = tmp_path / "real.yaml"
    config.write_text(to_yaml(cfg))
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(config), "--strategy", "naive", "--out", str(out)])
    assert res.exit_code == 0, res.output
    matrix = pd.read_csv(out / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", "is21-hifigan", "styletts2"]
    assert len(matrix) == 2 and matrix.iloc[:, 2:].notna().all().all()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["sample_rate"] == 24_000 and saved["train"]["augment"]["rawboost"] == 5

    # Scoring the checkpoint decodes at 24 kHz and sets the level as the run did: files
    # no longer than the 2-s input score exactly as in the run's own evaluation.
    stage = read_asvspoof2019_scores(out / "scores" / "stage_2.txt")
    table = pd.read_csv(real_subset)
    short = [p for p in table.loc[table["split"] == "eval", "path"]
             if sf.info(p).duration <= 2.0]
    assert short, "the subset should hold eval files of at most 2 s"
    scored = tmp_path / "scores.txt"
    res = runner.invoke(app, ["score", str(out / "checkpoints" / "stage_2.pt"), *short,
                              "--out", str(scored)])
    assert res.exit_code == 0, res.output
    got = {line.rsplit(maxsplit=2)[0]: float(line.rsplit(maxsplit=2)[1])
           for line in scored.read_text().splitlines()}
    by_id = dict(zip(stage["utt_id"], stage["score"], strict=True))  # absolute paths: ids
    for path in short:
        assert got[path] == pytest.approx(by_id[str(Path(path).with_suffix(""))], abs=2e-3)

    result = run_yardstick(cfg, ["lfcc"], tmp_path / "ys")
    lfcc = result.results["lfcc"]
    assert set(lfcc["per_attack"]) == {"is21-hifigan", "styletts2"}
    assert set(lfcc["matched"]) == {"is21-hifigan", "styletts2"}
    eers = eers_from_scores(tmp_path / "ys" / "scores" / "lfcc.txt")
    assert lfcc["pooled"] == pytest.approx(eers["pooled"], abs=1e-3)
    assert lfcc["per_attack"] == pytest.approx({a: eers[a] for a in lfcc["per_attack"]},
                                               abs=1e-3)
    assert np.isfinite(lfcc["matched_mean"])
