"""`build_report` on real tiny run and compare directories: figures, tables, HTML, bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_run import tiny_config

from cl_spoof.config import load_config
from cl_spoof.errors import CLSpoofError
from cl_spoof.metrics.continual import summarize
from cl_spoof.reporting import ReportError, ReportResult, build_report
from cl_spoof.reporting.figures import COMPARISON_SIZE_PX, forgetting_size_px, heatmap_size_px
from cl_spoof.reporting.render import comparison_display
from cl_spoof.workflows.compare import run_compare
from cl_spoof.workflows.run import run_experiment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ATTACKS = ["T1", "T2"]


@pytest.fixture(scope="module")
def inputs(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny naive run and a tiny compare (naive, joint x seeds 0, 1), made once per module."""
    root = tmp_path_factory.mktemp("report_inputs")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse cache fixture can't
        mp.setenv("CL_SPOOF_CACHE_DIR", str(root / "cache"))
        cfg = load_config(tiny_config(tiny_corpus, root))
        run_experiment(cfg, root / "run")
        run_compare(cfg, ["naive", "joint"], [0, 1], root / "cmp")
    return {"run": root / "run", "cmp": root / "cmp"}


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
    assert "http" not in text.lower()  # no external resource, no link out
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for png in res.figures.values():  # every figure embedded, byte for byte
        assert base64.b64encode(png.read_bytes()).decode() in text
    assert len(sources) == len(res.figures)
    for value in comparison_display(res.summary).drop(columns="strategy").to_numpy().ravel():
        assert f"<td>{value}</td>" in text or f'<td class="text">{value}</td>' in text
    md = res.markdown.read_text(encoding="utf-8")
    assert all(f"]({name})" in md for name in res.figures)
    return text


def test_report_of_a_run(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = build_report([inputs["run"]], out)
    names = {p.name for p in res.files}
    assert names == {"comparison.csv", "final_eer.csv", "runs.csv", "forgetting_naive.csv",
                     "eer_matrix_naive.csv", "official_naive.csv", "heatmap_naive.png",
                     "forgetting_curves.png", "comparison.png", "report.md", "report.html",
                     "report.json"}
    official = pd.read_csv(out / "official_naive.csv")  # the run's pooled EER per stage
    run_metrics = json.loads((inputs["run"] / "metrics.json").read_text())
    assert official["pooled_eer"].tolist() == pytest.approx(
        [o["pooled_eer"] for o in run_metrics["official"]], abs=1e-4)
    assert all(p.is_file() and p.parent == out for p in res.files)
    assert not list(out.glob(".*"))  # no temporary file left behind
    assert png_size(out / "forgetting_curves.png") == forgetting_size_px(1, 2)
    assert png_size(out / "heatmap_naive.png") == heatmap_size_px(2, 2)
    assert png_size(out / "comparison.png") == COMPARISON_SIZE_PX

    src = matrix(inputs["run"])
    got = pd.read_csv(out / "eer_matrix_naive.csv")
    assert list(got.columns) == list(src.columns)
    assert list(got.trained_on) == list(src.trained_on)
    np.testing.assert_allclose(got[ATTACKS], src[ATTACKS], atol=1e-4)
    curve = pd.read_csv(out / "forgetting_naive.csv")
    assert len(curve) == 2 * len(ATTACKS)
    for row in curve.itertuples():
        assert row.eer_mean == pytest.approx(src.loc[row.stage, row.attack], abs=1e-4)
        assert row.learned_at_stage == ATTACKS.index(row.attack)  # T1 at stage 0, T2 at 1
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
        "forgetting_curves.png", "comparison.png", "heatmap_naive.png", "heatmap_joint.png"}
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
    assert list(ours.strategy) == ["naive", "joint"]
    num = [c for c in ours.columns if c != "strategy"]
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


def test_same_strategy_and_seed_twice_is_refused(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="two runs of strategy naive with seed 0"):
        build_report([inputs["run"], inputs["cmp"]], tmp_path / "out")
    assert not (tmp_path / "out").exists()


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
             learned: list[str], source: str = "corpus.csv") -> Path:
    """A finished run directory with a given EER matrix (what the runner writes, minus models)."""
    path.mkdir(parents=True)
    df = pd.DataFrame(eer, columns=attacks)
    metrics = {**summarize(df, learned), "strategy": strategy, "seed": seed}
    df.insert(0, "trained_on", learned)
    df.index.name = "stage"
    df.to_csv(path / "eer_matrix.csv", float_format="%.4f")
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "run.json").write_text(json.dumps({"finished": True,
                                               "completed_stages": len(learned)}))
    (path / "config.yaml").write_text(yaml.safe_dump(
        {"strategy": {"name": strategy}, "seed": seed, "data": {"source": source}}))
    return path


def test_many_attacks_mixed_seed_counts_and_benchmark_checks(tmp_path: Path) -> None:
    attacks = ["A01", "A02", "A03", "A04"]
    rng = np.random.default_rng(0)
    runs = [fake_run(tmp_path / f"naive{s}", "naive", s, rng.uniform(0, 60, (4, 4)), attacks,
                     attacks) for s in (0, 1, 2)]
    runs.append(fake_run(tmp_path / "replay", "dfwf+replay", 0, rng.uniform(0, 20, (4, 4)),
                         attacks, attacks, source="other.csv"))
    runs.append(fake_run(tmp_path / "joint", "joint", 0, rng.uniform(0, 5, (1, 4)), attacks,
                         ["joint"]))
    res = build_report(runs, tmp_path / "out")
    assert png_size(res.figures["forgetting_curves.png"]) == forgetting_size_px(3, 4)
    assert png_size(res.figures["heatmap_dfwf_replay.png"]) == heatmap_size_px(4, 4)
    assert list(res.summary.seeds) == [3, 1, 1]
    assert any("data settings" in n for n in res.notes)
    assert any("numbers of seeds" in n for n in res.notes)
    text = check_html(res)
    assert "data settings" in text
    curve = pd.read_csv(res.tables["forgetting_joint.csv"])
    assert set(curve.learned_at_stage) == {0} and set(curve.trained_on) == {"joint"}

    odd = fake_run(tmp_path / "odd", "ewc", 0, np.zeros((2, 2)), ["A01", "A09"], ["A01", "A09"])
    with pytest.raises(ReportError, match=r"attacks A01, A09 differ"):
        build_report([*runs, odd], tmp_path / "out2")
    order = fake_run(tmp_path / "order", "naive", 5, np.zeros((4, 4)), attacks, attacks[::-1])
    with pytest.raises(ReportError, match="share the stage order"):
        build_report([*runs, order], tmp_path / "out3")


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def test_html_renders_in_headless_chromium(inputs: dict[str, Path], tmp_path: Path) -> None:
    browser = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if browser is None:
        pytest.skip("no chromium binary on PATH (tried " + ", ".join(CHROMIUM_NAMES)
                    + "); install chromium to render report.html")
    res = build_report([inputs["cmp"]], tmp_path / "out")
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
