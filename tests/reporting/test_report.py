"""`build_report` on real tiny run and compare directories: figures, tables, Setup, labels,
the DET / average-EER / per-attack plots and their CSVs, HTML, bad input."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import struct
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cl_spoof.config import load_config
from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.formats import markdown_cell
from cl_spoof.metrics.continual import summarize
from cl_spoof.reporting import ReportError, ReportResult, build_report
from cl_spoof.reporting.figures import (
    AVERAGE_SIZE_PX,
    COMPARISON_SIZE_PX,
    DET_SIZE_PX,
    final_bars_size_px,
    forgetting_size_px,
    heatmap_size_px,
)
from cl_spoof.reporting.render import comparison_display
from cl_spoof.workflows.compare import run_compare
from cl_spoof.workflows.run import run_experiment
from tests.helpers.configs import tiny_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ATTACKS = ["T1", "T2"]


@pytest.fixture(scope="module")
def inputs(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny naive run, a tiny compare (naive, joint x seeds 0, 1) and a compare of naive
    labelled ``e1`` (seed 0), made once per module."""
    root = tmp_path_factory.mktemp("report_inputs")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse cache fixture can't
        mp.setenv("CL_SPOOF_CACHE_DIR", str(root / "cache"))
        cfg = load_config(tiny_config(tiny_corpus, root))
        run_experiment(cfg, root / "run")
        run_compare(cfg, ["naive", "joint"], [0, 1], root / "cmp")
        run_compare(cfg, ["naive"], [0], root / "tagged", label="e1")
    return {"run": root / "run", "cmp": root / "cmp", "tagged": root / "tagged"}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless it is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def tree_hashes(root: Path, skip: str = "report") -> dict[str, str]:
    """SHA-256 of every file under ``root`` except under ``<any dir>/<skip>/`` (and the
    owner lock a report into a run takes)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and skip not in p.relative_to(
                root).parts and not p.name.startswith(".cl-spoof-")}


def matrix(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "eer_matrix.csv")


def check_html(res: ReportResult) -> str:
    text = res.html.read_text(encoding="utf-8")
    # no external resource, no link out (base64 data may spell "http" by chance)
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", text).lower()
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for png in res.figures.values():  # every figure embedded, byte for byte
        assert base64.b64encode(png.read_bytes()).decode() in text
    assert len(sources) == len(res.figures)
    shown = comparison_display(res.summary)
    for value in shown.drop(columns=[c for c in ("run", "strategy") if c in shown]).to_numpy(
            ).ravel():
        assert f"<td>{value}</td>" in text or f'<td class="text">{value}</td>' in text
    assert '<h2 id="setup">Setup</h2>' in text
    md = res.markdown.read_text(encoding="utf-8")
    assert all(f"]({name})" in md for name in res.figures)
    return text


def test_report_of_a_run(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = build_report([inputs["run"]], out)
    names = {p.name for p in res.files}
    assert names == {"setup.csv", "comparison.csv", "final_eer.csv", "runs.csv",
                     "average_eer.csv", "forgetting_naive.csv", "eer_matrix_naive.csv",
                     "official_naive.csv", "heatmap_naive.png", "det_naive.csv",
                     "det_naive.png", "det_pooled.csv", "det_pooled.png",
                     "forgetting_curves.png", "comparison.png", "average_eer.png",
                     "final_eer_bars.png", "report.md", "report.html", "report.json"}
    official = pd.read_csv(out / "official_naive.csv")  # the run's pooled EER per stage
    run_metrics = json.loads((inputs["run"] / "metrics.json").read_text())
    assert official["pooled_eer"].tolist() == pytest.approx(
        [o["pooled_eer"] for o in run_metrics["official"]], abs=1e-4)
    assert all(p.is_file() and p.parent == out for p in res.files)
    assert not list(out.glob(".*"))  # no temporary file left behind
    assert png_size(out / "forgetting_curves.png") == forgetting_size_px(1, 2)
    assert png_size(out / "heatmap_naive.png") == heatmap_size_px(2, 2)
    assert png_size(out / "comparison.png") == COMPARISON_SIZE_PX
    assert png_size(out / "final_eer_bars.png") == final_bars_size_px(2, 1)
    assert png_size(out / "average_eer.png") == AVERAGE_SIZE_PX
    assert png_size(out / "det_naive.png") == DET_SIZE_PX

    src = matrix(inputs["run"])
    got = pd.read_csv(out / "eer_matrix_naive.csv")
    assert list(got.columns) == list(src.columns)
    assert list(got.trained_on) == list(src.trained_on)
    assert list(got.stage) == list(src.stage) == [1, 2]
    np.testing.assert_allclose(got[ATTACKS], src[ATTACKS], atol=1e-4)
    curve = pd.read_csv(out / "forgetting_naive.csv")
    assert len(curve) == 2 * len(ATTACKS)
    for row in curve.itertuples():
        assert row.eer_mean == pytest.approx(src.set_index("stage").loc[row.stage, row.attack],
                                             abs=1e-4)
        assert row.learned_at_stage == ATTACKS.index(row.attack) + 1  # T1 at stage 1, T2 at 2
        assert np.isnan(row.eer_std)  # a single seed has no std

    metrics = json.loads((inputs["run"] / "metrics.json").read_text())
    row = res.summary.iloc[0]
    assert row.strategy == "naive" and row.seeds == 1
    assert row.final_avg_eer_mean == pytest.approx(metrics["final_avg_eer"])
    assert np.isnan(row.final_avg_eer_std)
    text = check_html(res)
    assert "single run (seed 0)" in text


def test_report_of_a_compare_in_place_leaves_inputs_unchanged(inputs: dict[str, Path]) -> None:
    cmp = inputs["cmp"]
    before = tree_hashes(cmp)
    res = build_report([cmp], cmp / "report")  # the CLI's default output folder
    assert tree_hashes(cmp) == before
    assert {p.name for p in res.figures.values()} == {
        "forgetting_curves.png", "comparison.png", "heatmap_naive.png", "heatmap_joint.png",
        "average_eer.png", "final_eer_bars.png", "det_naive.png", "det_joint.png",
        "det_pooled.png"}
    assert png_size(res.figures["forgetting_curves.png"]) == forgetting_size_px(2, 2)
    assert png_size(res.figures["heatmap_naive.png"]) == heatmap_size_px(2, 2)
    assert png_size(res.figures["heatmap_joint.png"]) == heatmap_size_px(1, 2)
    assert png_size(res.figures["comparison.png"]) == COMPARISON_SIZE_PX

    for name, stages in (("naive", 2), ("joint", 1)):
        runs = [matrix(cmp / name / f"seed{k}") for k in (0, 1)]
        got = pd.read_csv(res.tables[f"eer_matrix_{name}.csv"])
        assert len(got) == stages and list(got.trained_on) == list(runs[0].trained_on)
        stack = np.stack([r[ATTACKS].to_numpy() for r in runs])
        np.testing.assert_allclose(got[ATTACKS], stack.mean(axis=0), atol=1e-4)
        curve = pd.read_csv(res.tables[f"forgetting_{name}.csv"])
        std = curve.pivot(index="stage", columns="attack", values="eer_std")[ATTACKS]
        np.testing.assert_allclose(std, stack.std(axis=0, ddof=1), atol=1e-4)

    ours = pd.read_csv(res.tables["comparison.csv"])
    theirs = pd.read_csv(cmp / "comparison.csv")
    assert list(ours.columns) == list(theirs.columns)
    assert list(ours.label) == list(ours.strategy) == ["naive", "joint"]
    num = [c for c in ours.columns if c not in ("label", "strategy")]
    np.testing.assert_allclose(ours[num].to_numpy(float), theirs[num].to_numpy(float),
                               atol=1e-3, equal_nan=True)
    final = pd.read_csv(res.tables["final_eer.csv"])
    assert len(final) == 2 * len(ATTACKS) and set(final.seeds) == {2}
    text = check_html(res)
    assert "mean of 2 seeds (0, 1)" in text
    # a second report into the same folder replaces the first
    again = build_report([cmp], cmp / "report")
    assert {p.name for p in again.files} == {p.name for p in res.files}
    assert tree_hashes(cmp) == before


def test_overlapping_inputs_are_read_once(inputs: dict[str, Path], tmp_path: Path) -> None:
    cmp = inputs["cmp"]
    res = build_report([cmp, cmp / "joint" / "seed1"], tmp_path / "out")
    assert list(res.summary.seeds) == [2, 2]


def test_same_label_and_seed_twice_is_refused(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="two runs labelled 'naive' with seed 0.*--label"):
        build_report([inputs["run"], inputs["cmp"]], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # labelled apart for this report, the same two runs are one table (the runs unchanged)
    before = tree_hashes(inputs["run"])
    res = build_report([inputs["run"], inputs["cmp"]], tmp_path / "out",
                       {inputs["run"]: "naive, single run"})
    assert list(res.summary.label) == ["naive, single run", "naive", "joint"]
    assert list(res.summary.strategy) == ["naive", "naive", "joint"]
    assert tree_hashes(inputs["run"]) == before
    with pytest.raises(ReportError, match="not an input of the report"):
        build_report([inputs["run"]], tmp_path / "out2", {inputs["cmp"]: "x"})


def test_runs_carry_their_label_data_digest_and_versions(inputs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    status = json.loads((inputs["run"] / "run.json").read_text())
    assert status["label"] == "naive"  # default: the strategy, no hyper-parameter changed
    assert status["versions"]["torch"] == metadata.version("torch")
    assert len(status["data_digest"]) == 64
    tagged = json.loads((inputs["tagged"] / "naive" / "seed0" / "run.json").read_text())
    assert tagged["label"] == "naive e1"  # compare --label: added to every run's label
    assert tagged["data_digest"] == status["data_digest"]  # the same utterances
    assert json.loads((inputs["tagged"] / "compare.json").read_text())["label"] == "e1"
    res = build_report([inputs["cmp"], inputs["tagged"]], tmp_path / "out")
    assert list(res.summary.label) == ["naive", "joint", "naive e1"]
    setup = pd.read_csv(res.tables["setup.csv"]).set_index("setting")["value"]
    assert setup["data digest"].startswith(status["data_digest"][:12])
    assert setup["attack order"] == "T1 → T2"
    assert setup["model"] == "tiny" and setup["epochs"] == "1 per experience"
    assert setup["seeds"] == "0, 1"
    assert f"torch {metadata.version('torch')}" in setup["software"]
    runs = pd.read_csv(res.tables["runs.csv"])
    assert list(runs.label) == ["naive", "naive", "joint", "joint", "naive e1"]
    digests = {(r.label, r.seed): r.config_digest for r in runs.itertuples()}
    assert digests[("naive e1", 0)] == digests[("naive", 0)]  # the same config
    assert digests[("naive", 0)] == json.loads(
        (inputs["cmp"] / "naive" / "seed0" / "run.json").read_text())["config_digest"]
    text = res.html.read_text(encoding="utf-8")
    assert "naive e1" in text and status["data_digest"][:12] in text
    # the reduction vs naive is measured against the runs labelled naive
    assert np.isnan(res.summary.eer_reduction_vs_naive_mean[0])


def test_plot_tables_hold_the_numbers_of_the_runs(inputs: dict[str, Path],
                                                  tmp_path: Path) -> None:
    res = build_report([inputs["cmp"]], tmp_path / "out")
    runs = {(name, seed): inputs["cmp"] / name / f"seed{seed}" for name in ("naive", "joint")
            for seed in (0, 1)}
    # average EER by stage: the mean over seeds of each run's avg_eer_learned
    avg = pd.read_csv(res.tables["average_eer.csv"])
    for name, stages in (("naive", 2), ("joint", 1)):
        per_seed = [json.loads((runs[(name, s)] / "metrics.json").read_text())[
            "avg_eer_learned"] for s in (0, 1)]
        rows = avg[avg.label == name]
        assert len(rows) == stages
        np.testing.assert_allclose(rows.avg_eer_learned_mean, np.mean(per_seed, axis=0),
                                   atol=1e-4)
        finals = [matrix(runs[(name, s)])[ATTACKS].to_numpy().mean(axis=1) for s in (0, 1)]
        np.testing.assert_allclose(rows.avg_eer_all_mean, np.mean(finals, axis=0), atol=1e-3)
    # final EER bars: the last row of every run's matrix, mean over seeds
    final = pd.read_csv(res.tables["final_eer.csv"]).set_index(["label", "attack"])
    for name in ("naive", "joint"):
        for attack in ATTACKS:
            expected = np.mean([matrix(runs[(name, s)])[attack].iloc[-1] for s in (0, 1)])
            assert final.loc[(name, attack), "eer_mean"] == pytest.approx(expected, abs=1e-3)
    # DET: each curve's EER is the run's own (lowest seed), from the last stage's scores
    for name in ("naive", "joint"):
        det = pd.read_csv(res.tables[f"det_{name}.csv"])
        assert set(det.seed) == {0} and set(det.curve) == {*ATTACKS, "pooled"}
        last = matrix(runs[(name, 0)]).iloc[-1]
        for attack in ATTACKS:
            assert det[det.curve == attack].eer.iloc[0] == pytest.approx(last[attack],
                                                                        abs=1e-3)
        official = json.loads((runs[(name, 0)] / "metrics.json").read_text())["official"]
        assert det[det.curve == "pooled"].eer.iloc[0] == pytest.approx(
            official[-1]["pooled_eer"], abs=1e-3)
        for _, curve in det.groupby("curve"):  # a DET curve: misses up, false alarms down
            assert (np.diff(curve.frr) >= 0).all() and (np.diff(curve.far) <= 0).all()
            assert curve.frr.iloc[0] == 0 and curve.far.iloc[0] == 100
    pooled = pd.read_csv(res.tables["det_pooled.csv"])
    assert list(dict.fromkeys(pooled.label)) == ["naive", "joint"]
    assert set(pooled.curve) == {"pooled"}


def test_stale_files_of_an_earlier_report_are_removed(inputs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_report([inputs["cmp"]], out)
    assert (out / "heatmap_joint.png").is_file()
    res = build_report([inputs["run"]], out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in res.files)


def copy_run(src: Path, dst: Path) -> Path:
    """The files a report reads (not the checkpoints), copied to ``dst``."""
    dst.mkdir(parents=True)
    for name in ("config.yaml", "eer_matrix.csv", "metrics.json", "run.json"):
        shutil.copy(src / name, dst / name)
    return dst


def test_report_error_is_a_user_error() -> None:
    assert issubclass(ReportError, CLSpoofError)


@pytest.mark.parametrize(("breakage", "expected"), [
    ("no_matrix", "missing eer_matrix.csv"),
    ("no_files", "missing config.yaml, eer_matrix.csv, metrics.json, run.json"),
    ("unfinished", "run not finished"),
    ("empty", "neither a run directory"),
    ("absent", "not found"),
    ("bad_columns", "expected columns stage, trained_on"),
])
def test_bad_run_directory(inputs: dict[str, Path], tmp_path: Path, breakage: str,
                           expected: str) -> None:
    run = copy_run(inputs["run"], tmp_path / "broken")
    if breakage == "no_matrix":
        (run / "eer_matrix.csv").unlink()
    elif breakage == "no_files":
        for p in run.iterdir():
            p.unlink()
        (run / "scores").mkdir()
        (run / "logs").mkdir()
        (run / "checkpoints").mkdir()
        (run / "run.json").mkdir()  # not a file either
    elif breakage == "unfinished":
        status = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**status, "finished": False}))
    elif breakage == "empty":
        shutil.rmtree(run)
        run.mkdir()
    elif breakage == "absent":
        shutil.rmtree(run)
    elif breakage == "bad_columns":
        (run / "eer_matrix.csv").write_text("T1,T2\n1,2\n")
    with pytest.raises(ReportError) as info:
        build_report([run], tmp_path / "out")
    assert str(run) in str(info.value) and expected in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_compare_directory(inputs: dict[str, Path], tmp_path: Path) -> None:
    cmp = tmp_path / "cmp"
    cmp.mkdir()
    shutil.copy(inputs["cmp"] / "compare.json", cmp / "compare.json")
    for name in ("naive", "joint"):
        copy_run(inputs["cmp"] / name / "seed0", cmp / name / "seed0")
    copy_run(inputs["cmp"] / "naive" / "seed1", cmp / "naive" / "seed1")
    with pytest.raises(ReportError, match=r"lacks the run of joint, seed 1") as info:
        build_report([cmp], tmp_path / "out")
    assert str(cmp / "joint" / "seed1") in str(info.value)
    # a strategy folder is no input, but the message says what is inside
    with pytest.raises(ReportError, match=r"neither a run .* it contains run directories "
                                          r"\(seed0, seed1\)"):
        build_report([cmp / "naive"], tmp_path / "out")


def test_output_folder_that_could_overwrite_inputs_is_refused(inputs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    run, cmp = inputs["run"], inputs["cmp"]
    for out, inp in ((run, run), (run / "scores", run), (run / "logs" / "x", run),
                     (cmp, cmp), (cmp / "naive", cmp), (cmp / "naive" / "seed0", cmp),
                     (cmp / "joint" / "seed1" / "plots", cmp)):
        with pytest.raises(ReportError, match="refusing to write a report into input"):
            build_report([inp], out)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "comparison.csv").write_text("precious")
    with pytest.raises(ReportError, match="holds no earlier report"):
        build_report([run], other)
    assert (other / "comparison.csv").read_text() == "precious"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ReportError, match="not a directory"):
        build_report([run], tmp_path / "afile")


def test_report_subfolder_of_a_run_is_allowed(inputs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(inputs["run"], tmp_path / "run")
    before = tree_hashes(run)
    res = build_report([run], run / "report")
    assert res.out_dir == run / "report" and res.html.is_file()
    assert tree_hashes(run) == before


def fake_run(path: Path, strategy: str, seed: int, eer: np.ndarray, attacks: list[str],
             learned: list[str], source: str = "corpus.csv", config: dict | None = None,
             status: dict | None = None) -> Path:
    """A finished run directory with a given EER matrix (what the runner writes, minus models);
    ``config`` sections are merged into its config.yaml, ``status`` into its run.json."""
    path.mkdir(parents=True)
    df = pd.DataFrame(eer, columns=attacks)
    metrics = {**summarize(df, learned), "strategy": strategy, "seed": seed}
    df.insert(0, "trained_on", learned)
    df.index = pd.RangeIndex(1, len(df) + 1, name="stage")
    df.to_csv(path / "eer_matrix.csv", float_format="%.4f")
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "run.json").write_text(json.dumps({"finished": True, "stage_base": 1,
                                               "completed_stages": len(learned),
                                               **(status or {})}))
    cfg: dict = {"strategy": {"name": strategy}, "seed": seed, "data": {"source": source}}
    for key, value in (config or {}).items():
        cfg.setdefault(key, {}).update(value)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


def test_many_attacks_mixed_seed_counts_and_benchmark_checks(tmp_path: Path) -> None:
    attacks = ["A01", "A02", "A03", "A04"]
    rng = np.random.default_rng(0)
    runs = [fake_run(tmp_path / f"naive{s}", "naive", s, rng.uniform(0, 60, (4, 4)), attacks,
                     attacks) for s in (0, 1, 2)]
    runs.append(fake_run(tmp_path / "replay", "dfwf+replay", 0, rng.uniform(0, 20, (4, 4)),
                         attacks, attacks))
    runs.append(fake_run(tmp_path / "joint", "joint", 0, rng.uniform(0, 5, (1, 4)), attacks,
                         ["joint"]))
    res = build_report(runs, tmp_path / "out")
    assert png_size(res.figures["forgetting_curves.png"]) == forgetting_size_px(3, 4)
    assert png_size(res.figures["heatmap_dfwf_replay.png"]) == heatmap_size_px(4, 4)
    assert png_size(res.figures["final_eer_bars.png"]) == final_bars_size_px(4, 3)
    assert list(res.summary.seeds) == [3, 1, 1]
    assert any("numbers of seeds" in n for n in res.notes)
    assert any("no DET curves for naive, dfwf+replay, joint" in n for n in res.notes)
    assert "det_pooled.png" not in res.figures  # fake runs have no score files
    text = check_html(res)
    assert "numbers of seeds" in text
    curve = pd.read_csv(res.tables["forgetting_joint.csv"])
    assert set(curve.learned_at_stage) == {1} and set(curve.trained_on) == {"joint"}

    odd = fake_run(tmp_path / "odd", "ewc", 0, np.zeros((2, 2)), ["A01", "A09"], ["A01", "A09"])
    with pytest.raises(ReportError, match=r"attacks A01, A09 differ"):
        build_report([*runs, odd], tmp_path / "out2")
    order = fake_run(tmp_path / "order", "ewc", 5, np.zeros((4, 4)), attacks, attacks[::-1])
    with pytest.raises(ReportError, match="learns the attacks in the order A04, A03, A02, A01"):
        build_report([*runs, order], tmp_path / "out3")
    other = fake_run(tmp_path / "other", "ewc", 0, np.zeros((4, 4)), attacks, attacks,
                     source="other.csv")
    with pytest.raises(ReportError, match=r"differs in data.source \(corpus.csv vs other.csv\)"):
        build_report([*runs, other], tmp_path / "out4")
    assert not any((tmp_path / f"out{k}").exists() for k in (2, 3, 4))


ATTACKS4 = ["A01", "A02", "A03"]


def test_ablations_share_a_table_when_benchmark_and_model_match(tmp_path: Path) -> None:
    eer = np.array([[5.0, 40.0, 45.0], [20.0, 4.0, 42.0], [30.0, 10.0, 3.0]])
    base = fake_run(tmp_path / "dfwf1", "dfwf", 0, eer, ATTACKS4, ATTACKS4,
                    status={"label": "dfwf"})
    strong = fake_run(tmp_path / "dfwf3", "dfwf", 0, eer / 2, ATTACKS4, ATTACKS4,
                      config={"strategy": {"kd_weight": 3.0}},
                      status={"data_digest": "ab" * 32})
    longer = fake_run(tmp_path / "dfwf_e8", "dfwf", 0, eer / 3, ATTACKS4, ATTACKS4,
                      config={"train": {"epochs": 8}}, status={"label": "dfwf, 8 epochs"})
    res = build_report([base, strong, longer], tmp_path / "out")
    # a run of an older cl-spoof (no label in run.json) gets its default label
    assert list(res.summary.label) == ["dfwf", "dfwf (kd_weight=3)", "dfwf, 8 epochs"]
    assert list(res.summary.strategy) == ["dfwf"] * 3
    epochs = [n for n in res.notes if "different numbers of epochs" in n]
    assert epochs == ["the runs were trained for different numbers of epochs (train.epochs: 4 "
                      "for dfwf, dfwf (kd_weight=3); 8 for dfwf, 8 epochs); their numbers are "
                      "not a like-for-like comparison"]
    # report.md escapes Markdown, report.html escapes HTML
    assert markdown_cell(epochs[0]) in res.markdown.read_text(encoding="utf-8")
    assert html.escape(epochs[0]) in res.html.read_text(encoding="utf-8")
    runs = pd.read_csv(res.tables["runs.csv"]).set_index("label")
    assert runs.loc["dfwf (kd_weight=3)", "hyperparameters"].startswith(
        "kd_weight=3, kd_temperature=2, psa_weight=1")
    assert runs.loc["dfwf, 8 epochs", "differs_from_first_in"] == "train.epochs"
    assert pd.isna(runs.loc["dfwf (kd_weight=3)", "differs_from_first_in"])  # strategy only
    setup = pd.read_csv(res.tables["setup.csv"]).set_index("setting")["value"]
    assert setup["epochs"] == ("differs by run: dfwf: 4 per experience; dfwf (kd_weight=3): 4 "
                               "per experience; dfwf, 8 epochs: 8 per experience")
    assert setup["data digest"].startswith("not recorded")  # two of three runs lack one
    assert setup["attack order"] == "A01 → A02 → A03"
    # FWT is computed from the matrix where metrics.json lacks it (older runs)
    fwt = res.summary.set_index("label")["fwt_mean"]
    assert fwt["dfwf"] == pytest.approx(((50 - 40) + (50 - 42)) / 2)
    assert fwt["dfwf (kd_weight=3)"] == pytest.approx(((50 - 20) + (50 - 21)) / 2)


@pytest.mark.parametrize(("change", "expected"), [
    ({"model": {"preset": "base"}}, r"model.preset \(small vs base\)"),
    ({"model": {"overrides": {"gru_hidden": 32}}}, r"model.overrides.gru_hidden \(— vs 32\)"),
    ({"data": {"num_samples": 32000}}, r"data.num_samples \(64600 vs 32000\)"),
    ({"data": {"test_split": "eval"}}, r"data.test_split \(dev vs eval\)"),
    ({"data": {"attacks": ["A01", "A02", "A03"]}}, r"data.attacks \(\[\] vs \[\"A01\""),
])
def test_runs_of_another_benchmark_or_model_are_refused(tmp_path: Path, change: dict,
                                                        expected: str) -> None:
    eer = np.full((3, 3), 10.0)
    a = fake_run(tmp_path / "a", "naive", 0, eer, ATTACKS4, ATTACKS4)
    b = fake_run(tmp_path / "b", "dfwf", 0, eer, ATTACKS4, ATTACKS4, config=change)
    with pytest.raises(ReportError, match=expected) as info:
        build_report([a, b], tmp_path / "out")
    assert str(b) in str(info.value) and "report them separately" in str(info.value)
    # what may differ: the training, the self-distillation, where the data is cached
    c = fake_run(tmp_path / "c", "dfwf", 0, eer, ATTACKS4, ATTACKS4, config={
        "train": {"lr": 0.01}, "data": {"cache_dir": "/elsewhere"},
        "model": {"self_distillation": {"enabled": True}}})
    assert list(build_report([a, c], tmp_path / "ok").summary.label) == ["naive", "dfwf"]


def test_data_digests_decide_whether_two_paths_hold_the_same_data(tmp_path: Path) -> None:
    eer = np.full((3, 3), 10.0)
    a = fake_run(tmp_path / "a", "naive", 0, eer, ATTACKS4, ATTACKS4, source="/data/LA",
                 status={"data_digest": "a" * 64})
    moved = fake_run(tmp_path / "b", "dfwf", 0, eer, ATTACKS4, ATTACKS4, source="/mnt/LA",
                     status={"data_digest": "a" * 64})
    assert len(build_report([a, moved], tmp_path / "out").summary) == 2
    other = fake_run(tmp_path / "c", "dfwf", 0, eer, ATTACKS4, ATTACKS4, source="/data/LA",
                     status={"data_digest": "b" * 64})
    with pytest.raises(ReportError, match="the data itself .digest aaaaaaaaaaaa vs bbbbbbbbbbbb"):
        build_report([a, other], tmp_path / "out2")


def test_a_label_names_runs_of_one_strategy(tmp_path: Path) -> None:
    eer = np.full((3, 3), 10.0)
    a = fake_run(tmp_path / "a", "naive", 0, eer, ATTACKS4, ATTACKS4, status={"label": "mine"})
    b = fake_run(tmp_path / "b", "dfwf", 1, eer, ATTACKS4, ATTACKS4, status={"label": "mine"})
    with pytest.raises(ReportError, match="label 'mine' names runs of naive .* and of dfwf"):
        build_report([a, b], tmp_path / "out")
    with pytest.raises(CLSpoofError, match="--label .*: a label is 1 to 80 printable"):
        build_report([a, b], tmp_path / "out", {b: "two\nlines"})


def test_report_command_relabels_and_refuses_a_bad_label(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cl_spoof.cli import app

    eer = np.full((3, 3), 10.0)
    a = fake_run(tmp_path / "a", "naive", 0, eer, ATTACKS4, ATTACKS4)
    b = fake_run(tmp_path / "b", "naive", 0, eer / 2, ATTACKS4, ATTACKS4)
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "out"),
                              "--label", f"{b}=naive, longer"])
    assert res.exit_code == 0, res.output
    assert "naive, longer" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    res = runner.invoke(app, ["report", str(a), "--label", "no-equals-sign"])
    assert res.exit_code == 2 and "expected PATH=LABEL" in res.output
    res = runner.invoke(app, ["run", "--label", "a\tb"])
    assert res.exit_code == 2 and "a label is 1 to 80 printable characters" in res.output


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def test_html_renders_in_headless_chromium(inputs: dict[str, Path], tmp_path: Path) -> None:
    browser = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if browser is None:
        pytest.skip("no chromium binary on PATH (tried " + ", ".join(CHROMIUM_NAMES)
                    + "); install chromium to render report.html")
    res = build_report([inputs["cmp"], inputs["tagged"]], tmp_path / "out")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1200,2000", res.html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    assert png_size(shot) == (1200, 2000)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    ink = (pixels.min(axis=2) < 0.8).mean()  # share of pixels that are not (near) white
    assert ink > 0.03, f"screenshot looks blank ({ink:.1%} non-white pixels)"
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50

    # The Setup section and the new figures are in the page the browser built, and every
    # figure decodes: a copy of the report with a probe script (the report itself has no
    # script) writes what the browser sees into the page, which --dump-dom prints.
    probe = tmp_path / "probe.html"
    probe.write_text(res.html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    dump = subprocess.run([*cmd[:-3], "--virtual-time-budget=10000", "--dump-dom",
                           probe.resolve().as_uri()], capture_output=True, text=True,
                          timeout=120, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dump.stdout, re.S)
    assert found, f"the probe did not run (exit {dump.returncode}): {dump.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    assert "Setup" in seen["headings"] and "DET curves" in seen["headings"]
    assert {"data digest", "attack order", "model", "epochs", "software"} <= set(seen["setup"])
    assert seen["broken"] == [], f"images that did not decode: {seen['broken']}"
    for name, caption in NEW_FIGURES.items():  # alt text = the figure's caption
        assert name in res.figures and any(alt.startswith(caption) for alt in seen["images"])
    assert len(seen["images"]) == len(res.figures)


PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const setup = document.getElementById('setup').nextElementSibling.nextElementSibling;
  const out = {headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
               setup: [...setup.querySelectorAll('tbody tr td:first-child')]
                        .map(td => td.textContent),
               images: imgs.map(i => i.alt),
               broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)};
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


#: The figures a report has beside the forgetting curves, heatmaps and comparison chart,
#: and how their captions begin.
NEW_FIGURES = {
    "average_eer.png": "Average EER after every stage, every run on one axis",
    "final_eer_bars.png": "EER of every attack after the last stage, one bar per run",
    "det_pooled.png": "DET curves of all spoofs pooled against all bona fide",
    "det_naive.png": "DET curves of naive after the last stage",
}
