"""The real-set studies' ``--collect`` (``real_sequence``, ``real_sets_screen``,
``leave_one_family_out``) on hand-written finished runs: the tables say what the runs hold.

Each fake run has two sources whose bona fide scores differ (``one`` high, ``two`` low),
so a system's matched EER (against its own source's bona fide) and its pooled EER
differ in known ways; every EER is 0, 50 or 100 %.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks is a package run from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import _real_sets as rs  # noqa: E402
from benchmarks.studies import leave_one_family_out, real_sequence, real_sets_screen  # noqa: E402

BONA = {"one": [5.0, 6.0], "two": [-5.0, -6.0]}
# spoof scores of a system of each source for a matched EER of 0 or 100 %
SPOOF = {("one", 0): [0.0, 1.0], ("one", 100): [10.0, 11.0],
         ("two", 0): [-10.0, -9.0], ("two", 100): [0.0, 1.0]}
# the pooled EER (against every bona fide) the same scores give
POOLED = {("one", 0): 50.0, ("one", 100): 100.0, ("two", 0): 0.0, ("two", 100): 50.0}
SYSTEMS = ["one.v1", "two.t1"]
FAMILIES = {"f1": ["one.v1"], "f2": ["two.t1"]}


def _source(system: str) -> str:
    return system.split(".")[0]


def write_run(path: Path, strategy: str, seed: int, stages: list[tuple[str, dict[str, int]]],
              families: dict[str, list[str]] | None = FAMILIES, seconds: float = 60.0) -> None:
    """A finished run: ``stages`` = (trained_on, {system: matched EER 0 or 100}) in order."""
    (path / "scores").mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"strategy": {"name": strategy},
                                                      "seed": seed}))
    rows = []
    for k, (trained_on, matched) in enumerate(stages):
        lines = [f"{src}/b{i} - bonafide {s}" for src, scores in BONA.items()
                 for i, s in enumerate(scores)]
        for system, eer in matched.items():
            lines += [f"{_source(system)}/{system}-{i} {system} spoof {s}"
                      for i, s in enumerate(SPOOF[(_source(system), eer)])]
        (path / "scores" / f"stage_{k + 1}.txt").write_text("\n".join(lines) + "\n")
        rows.append({"stage": k + 1, "trained_on": trained_on,  # trained stages: 1..N
                     **{s: POOLED[(_source(s), e)] for s, e in matched.items()}})
    header = ["stage", "trained_on", *SYSTEMS]
    (path / "eer_matrix.csv").write_text("\n".join(
        [",".join(header)] + [",".join(str(r[c]) for c in header) for r in rows]) + "\n")
    final = [rows[-1][s] for s in SYSTEMS]
    metrics: dict[str, Any] = {"final_avg_eer": sum(final) / len(final), "bwt": None,
                               "max_forgetting": None, "strategy": strategy, "seed": seed}
    if families is not None:
        metrics["families"] = families
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "run.json").write_text(json.dumps({"completed_stages": len(stages),
                                               "finished": True, "seconds": seconds,
                                               "stage_base": 1}))


def write_groups(out: Path) -> None:
    utts = [f"{src}/b{i}" for src in BONA for i in range(2)] + [
        f"{_source(s)}/{s}-{i}" for s in SYSTEMS for i in range(2)]
    rs.write_groups(out, utts, [u.split("/")[0] for u in utts])


def write_yardsticks(folder: Path, matched: dict[str, dict[str, float]]) -> None:
    folder.mkdir(parents=True)
    ys = {n: {"what": n, "per_attack": m, "mean": sum(m.values()) / len(m), "pooled": 25.0,
              "matched": m, "matched_mean": sum(m.values()) / len(m)}
          for n, m in matched.items()}
    (folder / "yardstick.json").write_text(json.dumps({"yardsticks": ys}))


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Results go to a temporary folder, never into benchmarks/results."""
    folder = tmp_path / "results"
    monkeypatch.setattr(rs, "RESULTS", folder)
    return folder


def two_sources(path: Path, folder: Path | None = None) -> Path:
    """A config at ``path`` whose sequence is the fake runs': sources ``one`` and ``two``
    (manifests ``one.csv`` / ``two.csv``, under ``folder`` if given), families f1 then f2."""
    where = (lambda name: str(folder / name)) if folder is not None else (lambda name: name)
    path.write_text(yaml.safe_dump({"data": {
        "sources": [{"name": "one", "path": where("one.csv")},
                    {"name": "two", "path": where("two.csv")}],
        "train_split": "train", "test_split": "eval", "experience_by": "family",
        "families": FAMILIES}, "metrics": {"matched_by": "source"}}))
    return path


def _manifests(tmp_path: Path) -> list[str]:
    """Options pointing every set at a tiny manifest (collect reads only its rows)."""
    args = []
    for name in rs.SETS:
        path = tmp_path / "sets" / name / "manifest.csv"
        path.parent.mkdir(parents=True)
        path.write_text("path,label,attack,speaker,split\n"
                        "a.wav,bonafide,-,s1,train\nb.wav,spoof,x1,s1,train\n"
                        "c.wav,bonafide,-,s2,eval\nd.wav,spoof,x1,s2,eval\n"
                        "e.wav,spoof,x2,s1,train\n")
        args += [f"--{name.replace('_', '-')}", str(path)]
    return args


def test_real_sequence_collects_matched_eer_forgetting_and_welch_tests(
        tmp_path: Path, results: Path) -> None:
    out = tmp_path / "runs"
    compare = out / "compare"
    finals = {("naive", 0): {"one.v1": 100, "two.t1": 0},
              ("naive", 1): {"one.v1": 100, "two.t1": 100},
              ("dfwf", 0): {"one.v1": 0, "two.t1": 0},
              ("dfwf", 1): {"one.v1": 0, "two.t1": 100}}
    for (strategy, seed), final in finals.items():
        write_run(compare / strategy / f"seed{seed}", strategy, seed,
                  [("f1", {"one.v1": 0, "two.t1": 100}), ("f2", final)], seconds=120.0)
    write_groups(out)
    write_yardsticks(out / "yardstick", {"ltas": {"one.v1": 10.0, "two.t1": 30.0}})

    real_sequence.main(["--collect", "--out", str(out), "--name", "seq",
                        "--strategies", "naive,dfwf,joint", "--seeds", "0,1",
                        *_manifests(tmp_path)])
    payload = json.loads((results / "seq.json").read_text())  # strict JSON: no NaN
    s = payload["strategies"]
    assert list(s) == ["naive", "dfwf"]  # joint has no finished run: left out
    assert s["naive"]["final_avg_eer_matched"] == [50.0, 100.0]
    assert s["dfwf"]["final_avg_eer_matched"] == [0.0, 50.0]
    # pooled: the runs' own matrices (one.v1 at 100 % matched is 100 % pooled, ...)
    assert s["naive"]["final_avg_eer_pooled"] == [50.0, 75.0]
    # one.v1 was learned at 0 % and ended at 100 % (naive): forgetting 100, BWT -100
    assert s["naive"]["max_forgetting_matched"] == [100.0, 100.0]
    assert s["naive"]["bwt_matched"] == [-100.0, -100.0]
    assert s["dfwf"]["bwt_matched"] == [0.0, 0.0]
    # Welch, df = 2 with equal variances: p = 1 - t / sqrt(2 + t^2), t = 50 / sqrt(1250)
    welch = s["dfwf"]["welch_vs_naive"]["final_avg_eer_matched"]
    assert welch["p"] == pytest.approx(1 - 2 ** 0.5 / 2, abs=1e-9)
    assert s["naive"]["welch_vs_naive"] is None
    assert s["naive"]["per_family_matched"] == {"f1": [100.0, 100.0], "f2": [0.0, 100.0]}
    assert s["dfwf"]["per_system_matched"]["two.t1"] == [0.0, 100.0]
    assert s["naive"]["seconds"] == [120.0, 120.0]
    assert payload["families"] == FAMILIES and payload["systems"] == SYSTEMS
    assert payload["yardsticks"]["ltas"]["per_family_matched"] == {"f1": 10.0, "f2": 30.0}
    # self-describing: title, data, columns, the command, ready-made tables
    assert payload["title"] and payload["columns"]["final_avg_eer_matched"]
    assert payload["command"].startswith("python -m benchmarks.studies.real_sequence --collect")
    assert set(payload["data"]["sources"]) == {"vocoders_tts", "yourtts", "vctk_vc"}
    head = payload["tables"][0]
    assert head["columns"][:4] == ["strategy", "seeds", "final avg EER % matched",
                                   "p vs naive (matched)"]
    assert head["rows"][0][:3] == ["naive", "2", "75.0 ± 35.4"]
    assert head["rows"][1][3] == "0.293"
    assert head["rows"][2][0] == "yardstick ltas"
    md = (results / "seq.md").read_text()
    assert "| dfwf | 2 | 25.0 ± 35.4 | 0.293 |" in md


def test_real_sets_screen_collects_every_set_and_says_which_is_missing(
        tmp_path: Path, results: Path) -> None:
    args = _manifests(tmp_path)
    missing = tmp_path / "nowhere" / "manifest.csv"
    args[args.index("--vctk-vc") + 1] = str(missing)
    out = tmp_path / "screen"
    for name in ("vocoders_tts", "yourtts"):
        folder = out / "default" / name
        for seed in (0, 1):
            write_run(folder / "compare" / "joint" / f"seed{seed}", "joint", seed,
                      [("joint", {"one.v1": 100 * seed, "two.t1": 0})], families=None)
        write_yardsticks(folder / "yardstick", {"ltas": {"one.v1": 20.0, "two.t1": 10.0},
                                                "lfcc": {"one.v1": 40.0, "two.t1": 30.0}})
    write_groups(out / "default" / "vocoders_tts")  # its sub-corpora: matched EER too

    real_sets_screen.main(["--collect", "--out", str(out), "--name", "screen",
                           "--seeds", "0,1", *args])
    payload = json.loads((results / "screen.json").read_text())
    sets = payload["variants"]["default"]
    assert sets["vctk_vc"] == {"missing": str(missing), "rebuild": rs.SETS["vctk_vc"].rebuild}
    assert sets["yourtts"]["mean"] == [25.0, 50.0] and sets["yourtts"]["matched"] == []
    assert sets["vocoders_tts"]["matched"] == [0.0, 50.0]
    assert sets["yourtts"]["per_system"]["one.v1"] == [50.0, 100.0]
    rows = {r[0]: r for r in payload["tables"][0]["rows"]}
    assert rows["yourtts"][3:8] == ["37.5 ± 17.7", "–", "–", "15.0", "35.0"]
    assert rows["yourtts"][-1] == "+22.5"  # 22.5 points worse than the LTAS yardstick
    assert rows["vctk_vc"][3].startswith("not found")
    # the built sets' config: their own rate, only the systems with rows in both splits
    cfg = payload["configs"]["default/yourtts"]["data"]
    assert (cfg["sample_rate"], cfg["num_samples"], cfg["attacks"]) == (16000, 32000, ["x1"])
    assert payload["data"]["yourtts"]["spoof_per_attack"] == {"x1": 2, "x2": 1}


def test_leave_one_family_out_collects_the_zero_shot_family(tmp_path: Path,
                                                            results: Path) -> None:
    out = tmp_path / "lofo"
    write_groups(out)
    (out / rs.DATA_FILE).write_text(json.dumps({"families": FAMILIES, "split": "test"}))
    for family, (held, seen) in {"f1": ("one.v1", "two.t1"),
                                 "f2": ("two.t1", "one.v1")}.items():
        for seed in (0, 1):
            write_run(out / family / "detector" / "joint" / f"seed{seed}", "joint", seed,
                      [("joint", {held: 100 if family == "f1" else 0, seen: 0})],
                      families={"joint": [seen]})
        write_yardsticks(out / family / "yardstick", {"ltas": {held: 40.0, seen: 5.0},
                                                      "lfcc": {held: 60.0, seen: 5.0}})
    config = two_sources(tmp_path / "two_sources.yaml")
    leave_one_family_out.main(["--collect", "--config", str(config), "--out", str(out),
                               "--name", "lofo", "--seeds", "0,1",
                               "--init", str(tmp_path / "w.pt"), *_manifests(tmp_path)])
    payload = json.loads((results / "lofo.json").read_text())
    folds = payload["folds"]
    assert folds["f1"]["detector"]["held_out_matched"] == [100.0, 100.0]
    assert folds["f1"]["detector"]["seen_matched"] == [0.0, 0.0]
    assert folds["f1"]["better_yardstick"] == 40.0 and folds["f1"]["detector_no_worse"] is False
    assert folds["f2"]["detector_no_worse"] is True
    assert "pretrained" not in folds["f1"]  # nothing trained from --init here
    assert folds["f1"]["pretrained_no_worse"] is None
    rows = {r[0]: r for r in payload["tables"][0]["rows"]}
    assert rows["f1"][7] == "no" and rows["f2"][7] == "yes"
    assert not any("pretrained" in c for c in payload["tables"][0]["columns"])
    if not leave_one_family_out.has_init():
        assert "--init skipped" in payload["description"]


def test_leave_one_family_out_collects_a_pretrained_start_alone(tmp_path: Path,
                                                                results: Path) -> None:
    """Runs from pretrained weights only (``--init-only``): their own verdict against the
    yardsticks, no detector column."""
    out = tmp_path / "lofo"
    write_groups(out)
    (out / rs.DATA_FILE).write_text(json.dumps({"families": FAMILIES, "split": "test"}))
    write_run(out / "f1" / "pretrained" / "joint" / "seed0", "joint", 0,
              [("joint", {"one.v1": 0, "two.t1": 100})], families={"joint": ["two.t1"]})
    write_yardsticks(out / "f1" / "yardstick", {"ltas": {"one.v1": 40.0, "two.t1": 5.0},
                                                "lfcc": {"one.v1": 60.0, "two.t1": 5.0}})
    config = two_sources(tmp_path / "two_sources.yaml")
    leave_one_family_out.main(["--collect", "--config", str(config), "--out", str(out),
                               "--name", "lofo", "--seeds", "0", "--families", "f1",
                               *_manifests(tmp_path)])
    fold = json.loads((results / "lofo.json").read_text())["folds"]["f1"]
    assert "detector" not in fold and fold["detector_no_worse"] is None
    assert fold["pretrained"]["held_out_matched"] == [0.0]
    assert fold["pretrained"]["seen_matched"] == [100.0]
    assert fold["pretrained_no_worse"] is True  # 0 % against LTAS's 40 %
    table = json.loads((results / "lofo.json").read_text())["tables"][0]
    assert table["columns"][2] == "pretrained start" and table["rows"][0][2] == "0.0"
    assert not any(c.startswith("detector") for c in table["columns"])


def test_leave_one_family_out_init_only_trains_only_from_the_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fold trains the recipe from scratch and, with --init, from the weights too;
    --init-only leaves the recipe out; the yardsticks are fitted either way."""
    from cl_spoof.config import load_config
    from cl_spoof.workflows import compare, yardstick

    cfg = load_config(two_sources(tmp_path / "c.yaml", tmp_path))
    trained: list[tuple[str, Any]] = []
    monkeypatch.setattr(yardstick, "run_yardstick",
                        lambda c, names, folder, on_stage=None: trained.append(("yardstick",
                                                                                None)))
    monkeypatch.setattr(compare, "run_compare",
                        lambda c, strategies, seeds, folder, events, resume, jobs:
                        trained.append((folder.name, getattr(c.model, "init", None))))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    leave_one_family_out.train_fold(cfg, "f1", [0], tmp_path / "a", weights)
    kinds = [k for k, _ in trained]
    assert kinds == ["yardstick", "detector", "pretrained"]
    trained.clear()
    leave_one_family_out.train_fold(cfg, "f1", [0], tmp_path / "b", weights, init_only=True)
    assert [k for k, _ in trained] == ["yardstick", "pretrained"]
    if leave_one_family_out.has_init():
        assert trained[1][1] is not None and Path(trained[1][1]).name == "w.pt"


def test_leave_one_family_out_folds_side_by_side_report_every_failure(tmp_path: Path) -> None:
    """With --jobs 2 the folds run in their own processes; a failing fold does not stop the
    other, and every failure is named at the end."""
    from cl_spoof.config import load_config

    # sources that do not exist: every fold fails
    cfg = load_config(two_sources(tmp_path / "missing.yaml", tmp_path))
    with pytest.raises(RuntimeError, match="folds failed") as err:
        leave_one_family_out.train_folds(cfg, ["f1", "f2"], [0], tmp_path / "out", None, 2)
    assert "\n  f1: " in str(err.value) and "\n  f2: " in str(err.value)
    assert "one.csv" in str(err.value)


def test_whole_file_study_pairs_each_checkpoint_start_and_whole(tmp_path: Path) -> None:
    """The start-vs-whole table pairs the same runs: the run's own final matched EER, the
    whole-file one from its score file, their difference per seed, and the yardsticks on
    2-s and long inputs."""
    from benchmarks.studies import whole_file

    runs = tmp_path / "seq"
    write_groups(runs)
    (runs / rs.DATA_FILE).write_text(json.dumps({"families": FAMILIES}))
    for seed in (0, 1):  # the runs' own (start) final matched EER: one.v1 100, two.t1 0
        write_run(runs / "compare" / "joint" / f"seed{seed}", "joint", seed,
                  [("joint", {"one.v1": 100, "two.t1": 0})], families={"joint": SYSTEMS})
        lines = [f"{src}/b{i} - bonafide {s}" for src, sc in BONA.items()
                 for i, s in enumerate(sc)]
        lines += [f"one/one.v1-{i} one.v1 spoof {s}" for i, s in enumerate(SPOOF[("one", 0)])]
        lines += [f"two/two.t1-{i} two.t1 spoof {s}"
                  for i, s in enumerate(SPOOF[("two", 100 if seed else 0)])]
        path = whole_file.whole_file_path(runs, "joint", seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    write_yardsticks(runs / "yardstick", {"ltas": {"one.v1": 40.0, "two.t1": 20.0}})
    write_yardsticks(runs / "yardstick_128000", {"ltas": {"one.v1": 30.0, "two.t1": 10.0}})
    result = whole_file.collect(runs, ["joint", "naive"], [0, 1], 128000)
    joint = result["strategies"]["joint"]
    assert "naive" not in result["strategies"]  # no run, no row
    assert joint["start_matched"] == [50.0, 50.0]
    assert joint["whole_matched"] == [0.0, 50.0]
    assert joint["difference"] == [-50.0, 0.0]
    assert joint["per_family_whole"] == {"f1": [0.0, 0.0], "f2": [0.0, 100.0]}
    assert result["yardsticks"]["ltas"]["long"]["matched_mean"] == 20.0
    head, fam = whole_file.tables(result, 16000)
    assert head.rows[0][:5] == ["joint", "2", "50.0 ± 0.0", "25.0 ± 35.4", "-25.0 ± 35.4"]
    assert head.rows[1] == ["yardstick ltas", "–", "30.0", "20.0 (8 s)", "-10.0", "–"]
    assert fam.rows[0] == ["joint", "100.0 ± 0.0 / 0.0 ± 0.0", "0.0 ± 0.0 / 50.0 ± 70.7"]


def test_leave_one_family_out_refuses_init_only_without_weights(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        leave_one_family_out.main(["--init-only", "--collect"])
    assert exit_info.value.code == 2
    assert "--init-only needs --init PATH" in capsys.readouterr().err
