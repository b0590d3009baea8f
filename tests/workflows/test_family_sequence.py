"""Families of attacks over several sources, end to end: two tiny generated manifests at
16 and 24 kHz, speakers shared across them through ``speaker_map``, one speaker-disjoint
split re-drawn over both, one experience per family, a column per system."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import config_from_dict
from cl_spoof.metrics.continual import summarize
from cl_spoof.rundir import RunDir

SPEAKERS = [f"s{i}" for i in range(8)]


def _clip(path: Path, sr: int, spoof: int, seed: int) -> None:
    """0.3 s: a harmonic tone (bona fide), with noise (attack kind 1) or clipping (2)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * sr)) / sr
    f0 = rng.uniform(100, 250)
    wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 5))
    wave = 0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(len(t))
    if spoof == 1:
        wave = wave + 0.08 * rng.standard_normal(len(t))
    elif spoof == 2:
        wave = np.clip(wave * 4, -0.15, 0.15)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr)


def make_source(root: Path, sr: int, attacks: dict[str, int], speaker_prefix: str = "",
                per_speaker: int = 2, seed: int = 0) -> Path:
    """A manifest: every speaker has bona fide and spoofs of every attack; the source's own
    split puts the first half of the speakers in train (a resplit redraws it)."""
    rows = []
    for s, spk in enumerate(SPEAKERS):
        split = "train" if s < len(SPEAKERS) // 2 else "eval"
        for i in range(per_speaker):
            for attack, kind in [("-", 0), *attacks.items()]:
                name = f"{attack if kind else 'bona'}_{spk}_{i}.wav"
                _clip(root / "audio" / name, sr, kind, seed + 1000 * s + 10 * i + kind)
                rows.append({"path": f"audio/{name}",
                             "label": "spoof" if kind else "bonafide", "attack": attack,
                             "speaker": speaker_prefix + spk, "split": split})
    path = root / "manifest.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family_sources")
    return {"one": make_source(root / "one", 16_000, {"v1": 1, "v2": 2}),
            "two": make_source(root / "two", 24_000, {"t1": 1, "t2": 2}, "corpus_", seed=7)}


def family_config(manifests: dict[str, Path], strategy: str = "naive", **data) -> dict:
    """Two sources, three families (one spanning both sources), tiny model, one epoch."""
    return {
        "data": {"sources": [{"name": "one", "path": str(manifests["one"])},
                             {"name": "two", "path": str(manifests["two"]),
                              "speaker_map": {"^corpus_": ""}}],
                 "train_split": "train", "test_split": "eval",
                 "resplit_by_speaker": {"seed": 3, "test_fraction": 0.4},
                 "experience_by": "family",
                 "families": {"noisy": ["*.v1", "two.t1"], "clipped": ["one.v2"],
                              "late": ["two.t2"]},
                 "sample_rate": 16_000, "num_samples": 3200, **data},
        "model": {"preset": "tiny"},
        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "lr": 0.003,
                  "threads": 1, "workers": 0, "device": "cpu", "augment": None},
        "strategy": {"name": strategy},
        "metrics": {"matched_by": "source"},
    }


COLUMNS = ["one.v1", "two.t1", "one.v2", "two.t2"]
FAMILIES = {"noisy": ["one.v1", "two.t1"], "clipped": ["one.v2"], "late": ["two.t2"]}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_family_sequence_keeps_a_column_per_system(manifests: dict[str, Path],
                                                     tmp_path: Path) -> None:
    from cl_spoof.reporting import build_report
    from cl_spoof.workflows.run import run_experiment

    summary = run_experiment(config_from_dict(family_config(manifests)), tmp_path / "run")
    matrix = pd.read_csv(tmp_path / "run" / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", *COLUMNS]
    assert matrix["trained_on"].tolist() == ["noisy", "clipped", "late"]
    assert matrix[COLUMNS].notna().all().all()  # every system measured after every stage
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["families"] == FAMILIES
    # the metrics are the family-aware summary of the matrix the run wrote
    expected = summarize(matrix.set_index("stage")[COLUMNS], list(matrix["trained_on"]),
                         FAMILIES)
    assert metrics["avg_eer_learned"] == pytest.approx(expected["avg_eer_learned"])
    assert metrics["bwt"] == pytest.approx(expected["bwt"])
    assert set(metrics["forgetting"]) == {"one.v1", "two.t1", "one.v2"}
    assert summary.metrics["final_avg_eer"] == pytest.approx(expected["final_avg_eer"])

    scores = (tmp_path / "run" / "scores" / "stage_3.txt").read_text().split("\n")
    utts = {line.split()[0] for line in scores if line}
    assert {u.split("/")[0] for u in utts} == {"one", "two"}  # both sources scored

    record = RunDir(tmp_path / "run").read_record()
    assert record.families == {k: tuple(v) for k, v in FAMILIES.items()}
    build_report([tmp_path / "run"], tmp_path / "report")  # framed cells: family stages
    table = pd.read_csv(tmp_path / "report" / "forgetting_naive.csv")
    learned_at = table.drop_duplicates("attack").set_index("attack")["learned_at_stage"]
    assert learned_at.to_dict() == {"one.v1": 1, "two.t1": 1, "one.v2": 2, "two.t2": 3}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_resplit_is_speaker_disjoint_across_sources_and_rates(manifests: dict[str, Path]
                                                             ) -> None:
    from cl_spoof.benchmark import load_benchmark_data

    cfg = config_from_dict(family_config(manifests))
    data = load_benchmark_data(cfg.data, seed=0)
    table = data.table
    assert set(table["speaker"]) <= set(SPEAKERS)  # "corpus_s0" is "s0" of source one
    train = set(table.loc[table["split"] == "train", "speaker"])
    test = set(table.loc[table["split"] == "eval", "speaker"])
    assert train and test and not train & test
    assert [p.attack for p in data.plans] == COLUMNS
    assert [p.attack for p in data.training_plans] == ["noisy", "clipped", "late"]
    # one family spans both sources; each clip was decoded at 16 kHz whatever its rate
    noisy = table.iloc[data.training_plans[0].train_rows]
    assert set(noisy.loc[noisy["label"] == "spoof", "attack"]) == {"one.v1", "two.t1"}
    assert set(noisy["source"]) == {"one", "two"}
    lengths = {data.waveforms.raw(int(r)).shape[0] for r in range(len(table))}
    assert lengths == {4800}  # 0.3 s at 16 kHz, from 16 and 24 kHz files


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_joint_and_held_out_family(manifests: dict[str, Path], tmp_path: Path) -> None:
    from cl_spoof.benchmark import joint_plan, load_benchmark_data
    from cl_spoof.workflows.run import run_experiment
    from cl_spoof.workflows.yardstick import run_yardstick

    cfg = config_from_dict(family_config(manifests, "joint", held_out_families=["late"]))
    run_experiment(cfg, tmp_path / "joint")
    matrix = pd.read_csv(tmp_path / "joint" / "eer_matrix.csv")
    assert matrix["trained_on"].tolist() == ["joint"]
    assert list(matrix.columns[2:]) == COLUMNS  # the held-out system is still tested
    metrics = json.loads((tmp_path / "joint" / "metrics.json").read_text())
    assert metrics["families"] == {"joint": ["one.v1", "two.t1", "one.v2"]}
    learned = [matrix.loc[0, a] for a in COLUMNS[:3]]
    assert metrics["avg_eer_learned"][0] == pytest.approx(np.mean(learned), abs=1e-3)

    ys = run_yardstick(cfg, ["ltas", "ltas_bl"], tmp_path / "ys")
    assert ys.attacks == COLUMNS
    for name in ("ltas", "ltas_bl"):
        assert set(ys.results[name]["matched"]) == set(COLUMNS)
    # fitted on the learned families only: the held-out family's training spoofs are out
    data = load_benchmark_data(cfg.data, seed=0)
    train = data.table.iloc[joint_plan(data.training_plans).train_rows]
    assert "two.t2" not in set(train["attack"])
    assert set(train.loc[train["label"] == "spoof", "attack"]) == set(COLUMNS[:3])
    assert f": {len(train)} training utterances" in ys.data


@pytest.mark.parametrize("strategy", ["replay", "dfwf", "ewc", "lwf", "rego", "dfwf+replay"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_kind_of_strategy_learns_families(manifests: dict[str, Path], tmp_path: Path,
                                                strategy: str) -> None:
    from cl_spoof.workflows.run import run_experiment

    cfg = config_from_dict(family_config(manifests, strategy))
    summary = run_experiment(cfg, tmp_path / "run")
    assert summary.matrix["trained_on"].tolist() == ["noisy", "clipped", "late"]
    assert summary.metrics["families"] == FAMILIES
    assert summary.metrics["bwt"] is not None


runner = CliRunner()


def test_data_check_names_a_speaker_on_both_sides_of_two_sources(
        manifests: dict[str, Path], tmp_path: Path) -> None:
    import yaml

    raw = family_config(manifests)
    raw["data"]["resplit_by_speaker"] = None
    # source two tests on its train split: its speakers s0-s3 are then trained in one
    # and tested in two
    raw["data"]["sources"][1].update(train_split="eval", test_split="train")
    leaking = tmp_path / "leaking.yaml"
    leaking.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["data", "check", str(leaking)])
    assert result.exit_code == 1, result.output
    named = [f"speaker s{i}" for i in range(8)]
    assert all(n in result.output for n in named), result.output
    assert "train in one" in result.output and "eval in two" in result.output
    from cl_spoof.benchmark import load_benchmark_data

    said: list[str] = []  # a run goes ahead, saying so
    load_benchmark_data(config_from_dict(raw).data, on_stage=said.append)
    assert any(m.startswith("warning: 8 speaker(s) in the train split of one source and the "
                            "test split of another (speaker s0,") for m in said), said

    raw["data"]["resplit_by_speaker"] = {"seed": 3, "test_fraction": 0.4}
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["data", "check", str(fixed)])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_add_attack_refuses_a_family_run(manifests: dict[str, Path], tmp_path: Path) -> None:
    from cl_spoof.errors import CLSpoofError
    from cl_spoof.workflows.add_attack import add_attack
    from cl_spoof.workflows.run import run_experiment

    raw = family_config(manifests)
    raw["data"].update(sources=[], source=str(manifests["one"]),
                       families={"noisy": ["v1"], "clipped": ["v2"]})
    run_experiment(config_from_dict(raw), tmp_path / "run")
    with pytest.raises(CLSpoofError, match="learns families of attacks"):
        add_attack(tmp_path / "run", "new", manifests["two"].parent / "audio")
