"""Sequences of datasets (``data.sources``) and the official metrics, end to end.

``configs/dataset_sequence.yaml`` runs on tiny generated fixtures in each
publisher's layout (tests/helpers/corpora.py) with the tiny model, one epoch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cl_spoof.benchmark import load_benchmark_data
from cl_spoof.benchmark.planning import SourcePlanSpec, cap_sources, plan_sources
from cl_spoof.cli import app
from cl_spoof.config import config_from_dict
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.metrics.eer import compute_eer
from cl_spoof.workflows.official_inputs import official_inputs
from cl_spoof.workflows.setup import resolve
from tests.helpers.corpora import (
    make_asvspoof2019_la,
    make_every_corpus,
    make_in_the_wild,
    write_asv_scores,
)
from tests.helpers.paths import ROOT

EVAL_ATTACKS = tuple(f"A{i:02d}" for i in range(7, 20))
DEV_ATTACKS = tuple(f"A{i:02d}" for i in range(1, 7))
SOURCES = ["la19", "itw", "df21", "wavefake", "for"]


def shipped_config(corpora: dict[str, Path], **metrics) -> dict:
    """``configs/dataset_sequence.yaml`` pointed at the fixtures, tiny model, one epoch."""
    cfg = yaml.safe_load((ROOT / "configs" / "dataset_sequence.yaml").read_text())
    assert [s["name"] for s in cfg["data"]["sources"]] == SOURCES
    for src in cfg["data"]["sources"]:
        assert src["max_train"] == 2000 and src["max_test"] == 5000  # RegO's caps
        src["path"] = str(corpora[src["name"]])
        src["max_train"], src["max_test"] = 16, 9
    cfg["data"]["num_samples"] = 4000
    cfg["model"] = {"preset": "tiny"}
    cfg["train"] = {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "lr": 0.003,
                    "threads": 1, "workers": 0, "device": "cpu"}
    cfg["strategy"] = {"name": "naive"}
    cfg["metrics"].update(metrics)
    return cfg


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_every_corpus(tmp_path_factory.mktemp("corpora"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dataset_sequence_config_runs_end_to_end(corpora: dict[str, Path], tmp_path: Path
                                                 ) -> None:
    from cl_spoof.reporting import build_report
    from cl_spoof.workflows.compare import run_compare

    asv = write_asv_scores(tmp_path / "asv.eval.txt", EVAL_ATTACKS)
    cfg = config_from_dict(shipped_config(corpora, asv_scores=str(asv), tdcf_source="la19",
                                          score_format="asvspoof5"))
    out = tmp_path / "cmp"
    table = run_compare(cfg, ["naive"], [0], out)
    run = out / "naive" / "seed0"

    matrix = pd.read_csv(run / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", *SOURCES]
    assert matrix["trained_on"].tolist() == SOURCES
    metrics = json.loads((run / "metrics.json").read_text())
    official = metrics["official"]
    assert [o["stage"] for o in official] == list(range(1, 6))
    assert [o["trained_on"] for o in official] == SOURCES
    for o in official:
        for key in ("pooled_eer", "min_dcf", "act_dcf", "cllr", "min_tdcf"):
            assert isinstance(o[key], float) and np.isfinite(o[key]), (key, o)
        assert o["min_dcf"] <= 1.0  # normalised: never worse than a fixed decision
        scores = pd.read_csv(run / "scores" / f"stage_{o['stage']}.tsv", sep="\t")
        keys = pd.read_csv(run / "scores" / f"stage_{o['stage']}.keys.tsv", sep="\t")
        bona = (keys["cm-label"] == "bonafide").to_numpy()
        pooled = 100 * compute_eer(scores["cm-score"][bona], scores["cm-score"][~bona])[0]
        assert o["pooled_eer"] == pytest.approx(pooled, abs=1e-3)
        assert "'dev' split after stage" in o["calibration"]["fitted_on"]
        assert o["tdcf"]["asv_scores"] == str(asv)
        assert o["tdcf"]["trials"] == "the test trials of source la19"
    for key in ("pooled_eer", "min_dcf", "act_dcf", "cllr", "min_tdcf"):
        assert metrics[f"final_{key}"] == official[-1][key]
    assert metrics["avg_forgetting"] is not None and metrics["bwt"] is not None

    # ASVspoof 5 score files: header, one line per test utterance, ids prefixed by source
    scores = pd.read_csv(run / "scores" / "stage_5.tsv", sep="\t")
    assert list(scores.columns) == ["filename", "cm-score"]
    keys = pd.read_csv(run / "scores" / "stage_5.keys.tsv", sep="\t")
    assert list(keys.columns) == ["filename", "cm-label"]
    assert keys["filename"].tolist() == scores["filename"].tolist()
    prefixes = scores["filename"].str.split("/").str[0]
    assert set(prefixes) == set(SOURCES)
    assert prefixes.value_counts().max() <= 9  # max_test per source
    assert not (run / "scores" / "stage_5.txt").exists()

    # compare table and the report show the new metrics
    for col in ("avg_forgetting_mean", "final_pooled_eer_mean", "final_min_dcf_mean",
                "final_act_dcf_mean", "final_cllr_mean", "final_min_tdcf_mean"):
        assert table[col].iloc[0] == pytest.approx(metrics[col[:-5]])
    md = (out / "comparison.md").read_text()
    for header in ("avg forgetting (pts)", "pooled EER %", "minDCF", "actDCF", "Cllr (bits)",
                   "min t-DCF"):
        assert header in md
    report = build_report([out], tmp_path / "report")
    page = report.html.read_text()
    assert "<th>minDCF</th>" in page and "<th>min t-DCF</th>" in page
    assert f"{metrics['final_min_dcf']:.3f}" in page
    per_stage = pd.read_csv(tmp_path / "report" / "official_naive.csv")
    assert per_stage["trained_on"].tolist() == SOURCES
    assert per_stage["min_tdcf"].tolist() == pytest.approx([o["min_tdcf"] for o in official],
                                                           abs=1e-4)
    assert "<h2>Official metrics per stage</h2>" in page
    assert "## Official metrics per stage" in report.markdown.read_text()


def test_data_check_reads_every_source_of_a_config(corpora: dict[str, Path],
                                                   tmp_path: Path) -> None:
    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(shipped_config(corpora)))
    res = CliRunner().invoke(app, ["data", "check", str(path)], env={"COLUMNS": "200"})
    # every source is read and checked; la19 and df21 share ASVspoof speakers (df21's
    # speaker split trains on some that la19 tests on): each is a named problem
    assert res.exit_code == 1, res.output
    assert "188 utterances" in res.output and "2 problem(s)" in res.output
    assert ("speaker LA_0000: speaker in train of one source and test of another (train in "
            "la19; eval/dev in df21)") in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["data", "check", str(corpora["itw"])])
    assert res.exit_code == 0 and "in_the_wild" in res.output


# ------------------------------------------------------------------------ bad input


def test_bad_configs_are_refused_naming_the_key(corpora: dict[str, Path]) -> None:
    cfg = shipped_config(corpora)
    twice = json.loads(json.dumps(cfg))
    twice["data"]["sources"][3]["name"] = "itw"
    with pytest.raises(ConfigError, match=r"data.sources\[3\].name: source name 'itw' is used "
                                          "twice"):
        config_from_dict(twice)
    for official, match in ((["min_tdcf"], "asks for min_tdcf.*set metrics.asv_scores"),
                            (["act_dcf"], "asks for act_dcf.*set data.calibration_split")):
        bad = json.loads(json.dumps(cfg))
        bad["metrics"]["official"] = official
        if official == ["act_dcf"]:
            bad["data"]["calibration_split"] = None
            for src in bad["data"]["sources"]:
                src.pop("calibration_split", None)
        with pytest.raises(ConfigError, match=match):
            resolve(config_from_dict(bad))
    bad = json.loads(json.dumps(cfg))
    bad["metrics"]["official"] = ["eer"]
    with pytest.raises(ConfigError, match="metrics.official: unknown metric"):
        resolve(config_from_dict(bad))
    bad = json.loads(json.dumps(cfg))
    bad["metrics"]["asv_scores"] = "asv.txt"
    with pytest.raises(ConfigError, match="metrics.tdcf_source: name the ASVspoof 2019 LA"):
        config_from_dict(bad)
    with pytest.raises(ConfigError, match="experience_by: source needs data.sources"):
        config_from_dict({"data": {"experience_by": "source"}})
    with pytest.raises(ConfigError, match="data.source or data.sources, not both"):
        config_from_dict({"data": {"source": "x.csv", "sources": [{"name": "a", "path": "b"}]}})
    with pytest.raises(ConfigError,
                       match=r"data.sources\[0\].name: source name 'a b' is not allowed"):
        config_from_dict({"data": {"sources": [{"name": "a b", "path": "b"}]}})
    with pytest.raises(ConfigError, match=r"unknown config key 'data.sources\[0\].cap'"):
        config_from_dict({"data": {"sources": [{"name": "a", "path": "b", "cap": 3}]}})
    with pytest.raises(ConfigError, match="metrics.score_format must be one of"):
        config_from_dict({"metrics": {"score_format": "csv"}})


def test_cli_refuses_a_source_named_twice_with_exit_2(corpora: dict[str, Path],
                                                       tmp_path: Path) -> None:
    cfg = shipped_config(corpora)
    cfg["data"]["sources"][1]["name"] = "la19"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2
    assert "'la19' is used twice" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()


def _two_source_config(la: Path, itw: Path, **metrics) -> dict:
    return {"data": {"experience_by": "source", "test_split": "eval",
                     "num_samples": 4000,
                     "sources": [{"name": "la19", "path": str(la)},
                                 {"name": "itw", "path": str(itw)}]},
            "model": {"preset": "tiny"},
            "train": {"epochs": 1, "batch_size": 8, "threads": 1, "device": "cpu"},
            "metrics": metrics}


def test_asv_file_of_another_partition_stops_the_run_before_training(
        corpora: dict[str, Path], tmp_path: Path) -> None:
    from cl_spoof.workflows.run import run_experiment

    dev_file = write_asv_scores(tmp_path / "asv.dev.txt", DEV_ATTACKS)
    cfg = config_from_dict(_two_source_config(corpora["la19"], corpora["itw"],
                                              asv_scores=str(dev_file), tdcf_source="la19"))
    out = tmp_path / "run"
    with pytest.raises(DataError, match=rf"{dev_file}: ASV score file of another partition.*"
                                        r"A01, A02, A03, A04, A05, A06.*A07, A08"):
        run_experiment(cfg, out)
    assert not out.exists()  # refused before training: the run left nothing behind
    missing = config_from_dict(_two_source_config(corpora["la19"], corpora["itw"],
                                                  asv_scores=str(tmp_path / "nope.txt"),
                                                  tdcf_source="la19"))
    data = load_benchmark_data(missing.data)
    with pytest.raises(DataError, match="nope.txt: cannot read the ASV score file"):
        official_inputs(missing, data)
    good = write_asv_scores(tmp_path / "asv.eval.txt", EVAL_ATTACKS)
    ok = config_from_dict(_two_source_config(corpora["la19"], corpora["itw"],
                                             asv_scores=str(good), tdcf_source="la19"))
    inputs = official_inputs(ok, data)
    assert inputs.tdcf_utts is not None and {u.split("/")[0] for u in inputs.tdcf_utts} == {
        "la19"}


def test_half_present_and_mismatched_sources_name_the_source(tmp_path: Path) -> None:
    la = make_asvspoof2019_la(tmp_path / "LA", per_split=2)
    itw = make_in_the_wild(tmp_path / "itw", speakers=3, per_speaker=1)
    (itw / "release_in_the_wild" / "meta.csv").unlink()
    cfg = config_from_dict(_two_source_config(la, itw))
    with pytest.raises(DataError, match=r"data.sources 'itw': .*in_the_wild layout but is "
                                        r"incomplete; missing: .*meta.csv"):
        load_benchmark_data(cfg.data)
    other = make_in_the_wild(tmp_path / "itw2", speakers=3, per_speaker=1)
    meta = other / "release_in_the_wild" / "meta.csv"
    meta.write_text("file,speaker,label\n900.wav,A,spoof\n901.wav,A,bona-fide\n")
    cfg = config_from_dict(_two_source_config(la, other))
    with pytest.raises(DataError, match=r"data.sources 'itw': .*meta.csv: does not match the "
                                        "audio"):
        load_benchmark_data(cfg.data)


def test_source_without_both_labels_in_a_split_is_refused(tmp_path: Path) -> None:
    la = make_asvspoof2019_la(tmp_path / "LA", per_split=2)
    itw = make_in_the_wild(tmp_path / "itw", speakers=10, per_speaker=1)
    cfg = config_from_dict(_two_source_config(la, itw))
    cfg_dict = _two_source_config(la, itw)
    cfg_dict["data"]["sources"][1]["options"] = {"fractions": {"train": 1.0}}
    with pytest.raises(DataError, match=r"source itw: its test split \('eval' after the split "
                                        r"mapping\) has 0 bona fide and 0 spoof"):
        load_benchmark_data(config_from_dict(cfg_dict).data)
    assert [p.attack for p in load_benchmark_data(cfg.data).plans] == ["la19", "itw"]


# ------------------------------------------------------------------ planning units


def _table(sources: dict[str, tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for name, (n_bona, n_spoof) in sources.items():
        for split in ("train", "eval"):
            rows += [{"utt_id": f"{name}/{split}{i}", "label": "bonafide", "attack": "-",
                      "split": split, "source": name} for i in range(n_bona)]
            rows += [{"utt_id": f"{name}/{split}s{i}", "label": "spoof", "attack": "X",
                      "split": split, "source": name} for i in range(n_spoof)]
    return pd.DataFrame(rows)


def test_plan_sources_caps_keep_the_label_ratio_and_are_seeded() -> None:
    table = _table({"a": (20, 80), "b": (5, 5)})
    specs = [SourcePlanSpec("a", max_train=10, max_test=50), SourcePlanSpec("b")]
    plans = plan_sources(table, specs, "train", "eval", seed=3)
    a, b = plans
    assert a.attack == "a" and len(a.train_rows) == 10 and len(a.test_rows) == 50
    labels = table["label"].to_numpy()
    assert (labels[a.train_rows] == "bonafide").sum() == 2  # 20 % of 10
    assert (labels[a.test_rows] == "bonafide").sum() == 10
    assert set(table.source.iloc[a.train_rows]) == {"a"}
    assert set(table.split.iloc[a.test_rows]) == {"eval"}
    assert len(b.train_rows) == 10 and len(b.calibration_rows) == 0
    again = plan_sources(table, specs, "train", "eval", seed=3)
    assert np.array_equal(again[0].train_rows, a.train_rows)
    other = plan_sources(table, specs, "train", "eval", seed=4)
    assert not np.array_equal(other[0].train_rows, a.train_rows)
    tiny = plan_sources(_table({"a": (1, 99)}), [SourcePlanSpec("a", max_train=2)], "train",
                        "eval")
    assert sorted(labels_of(_table({"a": (1, 99)}), tiny[0].train_rows)) == ["bonafide", "spoof"]
    capped = cap_sources(table, specs, ["train", "eval"], seed=3)
    assert len(capped[capped.source == "a"]) == 60 and len(capped[capped.source == "b"]) == 20


def labels_of(table: pd.DataFrame, rows: np.ndarray) -> list[str]:
    return table["label"].to_numpy()[rows].tolist()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sources_learned_attack_by_attack_with_calibration(tmp_path: Path,
                                                            tiny_corpus: Path) -> None:
    from cl_spoof.workflows.run import run_experiment

    second = tmp_path / "copy"
    shutil.copytree(tiny_corpus.parent, second)
    cfg = config_from_dict({
        "data": {"num_samples": 4000, "calibration_split": "eval",
                 "sources": [{"name": "two", "path": str(second / "manifest.csv")},
                             {"name": "one", "path": str(tiny_corpus), "max_train": 16}]},
        "model": {"preset": "tiny"},
        "train": {"epochs": 1, "batch_size": 8, "threads": 1, "device": "cpu"},
        "metrics": {"official": ["min_dcf", "act_dcf", "cllr"]}})
    data = load_benchmark_data(cfg.data)
    # source by source in list order, not sorted across sources
    assert [p.attack for p in data.plans] == ["two.T1", "two.T2", "one.T1", "one.T2"]
    assert data.table["utt_id"].str.match(r"^(one|two)/audio/").all()
    one_train = data.table.iloc[np.unique(np.concatenate([p.train_rows for p in data.plans]))]
    assert (one_train["source"] == "one").sum() == 16  # its cap, bona fide included
    assert all(len(p.calibration_rows) for p in data.plans)
    assert set(data.table.iloc[data.plans[0].calibration_rows]["split"]) == {"eval"}
    summary = run_experiment(cfg, tmp_path / "run", data=data)
    official = summary.metrics["official"]
    assert len(official) == 4 and all(o["act_dcf"] is not None for o in official)
    assert "min_tdcf" not in official[0]
    lines = (tmp_path / "run" / "scores" / "stage_1.txt").read_text().splitlines()
    assert lines[0].split()[0].startswith(("one/", "two/"))


def test_score_formats_of_the_config_are_the_writers() -> None:
    from cl_spoof.config import SCORE_FORMATS
    from cl_spoof.metrics.score_files import SCORE_WRITERS

    assert set(SCORE_FORMATS) == set(SCORE_WRITERS)


def test_ids_with_whitespace_are_refused_before_training() -> None:
    from types import SimpleNamespace

    from cl_spoof.workflows.official_inputs import check_score_ids

    table = pd.DataFrame({"utt_id": ["a/1", "my clip"], "attack": ["-", "X"]})
    with pytest.raises(DataError, match=r"m.csv: 1 utt_id value\(s\) contain whitespace "
                                        r"\(e.g. 'my clip'\)"):
        check_score_ids(SimpleNamespace(table=table, source="m.csv"))  # type: ignore[arg-type]
    table = pd.DataFrame({"utt_id": ["a/1", "b"], "attack": ["-", "my tts"]})
    with pytest.raises(DataError, match="attack value"):
        check_score_ids(SimpleNamespace(table=table, source="m.csv"))  # type: ignore[arg-type]


def test_partial_download_of_a_source_with_allow_missing(tmp_path: Path) -> None:
    la = make_asvspoof2019_la(tmp_path / "LA", per_split=3)
    itw = make_in_the_wild(tmp_path / "itw", speakers=10, per_speaker=1)
    from cl_spoof.data import read_source

    table = read_source(itw)
    gone = table[table.split == "train"].iloc[0]
    Path(gone.path).unlink()
    cfg = _two_source_config(la, itw)
    with pytest.raises(DataError, match=rf"{Path(gone.path).name}: listed but missing"):
        load_benchmark_data(config_from_dict(cfg).data)
    cfg["data"]["allow_missing"] = True
    data = load_benchmark_data(config_from_dict(cfg).data)
    assert f"itw/{gone.utt_id}" not in set(data.table["utt_id"])
    assert (data.table["source"] == "itw").sum() == (table.split != "dev").sum() - 1
