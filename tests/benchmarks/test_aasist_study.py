"""The AASIST study's ``--collect`` on hand-written finished runs: zero-shot row, joint
parts, continual parts with the LA EER after every stage, and the findings the results
page draws from them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks is a package run from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import _real_sets as rs  # noqa: E402
from benchmarks.studies import aasist_real  # noqa: E402
from docs import gen_pages  # noqa: E402

SYSTEMS = ["one.v1", "one.v2"]
# bona fide scores 5, 6; spoof scores for a matched EER of 0 or 100 %
SPOOF = {0: [0.0, 1.0], 100: [10.0, 11.0]}


def write_run(path: Path, strategy: str, seed: int, eers: list[dict[str, int]],
              la: list[float]) -> None:
    """A finished run from a pretrained model: stage 0 then one stage per entry of
    ``eers`` (system -> EER 0 or 100); ``la``: the LA A01 EER at stages 0..N."""
    (path / "scores").mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"strategy": {"name": strategy},
                                                      "seed": seed}))
    rows = [{"stage": 0, "trained_on": "pretrained", **{s: 50.0 for s in SYSTEMS},
             "pretrained:A01": la[0]}]
    for k, matched in enumerate(eers, start=1):
        lines = [f"one/b{i} - bonafide {s}" for i, s in enumerate([5.0, 6.0])]
        for system, eer in matched.items():
            lines += [f"one/{system}-{i} {system} spoof {s}" for i, s in enumerate(SPOOF[eer])]
        (path / "scores" / f"stage_{k}.txt").write_text("\n".join(lines) + "\n")
        rows.append({"stage": k, "trained_on": SYSTEMS[k - 1] if len(eers) > 1 else "joint",
                     **{s: float(e) for s, e in matched.items()}, "pretrained:A01": la[k]})
    header = ["stage", "trained_on", *SYSTEMS, "pretrained:A01"]
    (path / "eer_matrix.csv").write_text("\n".join(
        [",".join(header)] + [",".join(str(r[c]) for c in header) for r in rows]) + "\n")
    final = [rows[-1][s] for s in SYSTEMS]
    (path / "metrics.json").write_text(json.dumps({"final_avg_eer": sum(final) / len(final)}))
    (path / "run.json").write_text(json.dumps({"completed_stages": len(eers), "stage_0": True,
                                               "finished": True, "seconds": 120.0,
                                               "stage_base": 1}))


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "results"
    monkeypatch.setattr(rs, "RESULTS", folder)
    return folder


def test_collect_reports_zero_shot_joint_and_the_pretrainings_forgetting(
        tmp_path: Path, results: Path) -> None:
    out = tmp_path / "runs"
    utts = [f"one/b{i}" for i in range(2)] + [f"one/{s}-{i}" for s in SYSTEMS for i in range(2)]
    rs.write_groups(out, utts, ["one"] * len(utts))
    good, bad = {"one.v1": 0, "one.v2": 0}, {"one.v1": 100, "one.v2": 0}
    for seed in (0, 1):
        write_run(out / "joint_official" / "joint" / f"seed{seed}", "joint", seed, [good],
                  [0.5, 0.8])
        write_run(out / "joint_random" / "joint" / f"seed{seed}", "joint", seed, [bad],
                  [0.5, 0.8])
        write_run(out / "continual" / "naive" / f"seed{seed}", "naive", seed, [good, bad],
                  [0.5, 4.0 + seed, 9.0])
        write_run(out / "continual" / "dfwf" / f"seed{seed}", "dfwf", seed, [good, good],
                  [0.5, 0.7, 0.9 + seed / 100])
    cfg = SimpleNamespace(data=SimpleNamespace(num_samples=64600))
    result = aasist_real.collect({p: cfg for p in aasist_real.PARTS}, [0, 1], out)  # type: ignore[arg-type]
    parts = result["parts"]
    assert set(parts) == {"joint_official", "joint_random", "naive", "dfwf"}
    assert parts["joint_official"]["final_avg_eer_matched"] == [0.0, 0.0]
    assert parts["joint_random"]["final_avg_eer_matched"] == [50.0, 50.0]
    assert parts["naive"]["la_a01_eer_per_stage"] == [[0.5, 4.0, 9.0], [0.5, 5.0, 9.0]]
    assert parts["naive"]["la_a01_eer_max"] == [9.0, 9.0]
    assert parts["dfwf"]["la_a01_eer_final"] == [0.9, 0.91]
    assert parts["dfwf"]["bwt_matched"] == [0.0, 0.0] and parts["naive"]["bwt_matched"] == [
        -100.0, -100.0]
    assert result["zero_shot"] == {"pooled": {"one.v1": 50.0, "one.v2": 50.0}, "la_a01": 0.5}
    tables = aasist_real.tables(result)
    assert [t.title.split(":")[0] for t in tables][:2] == [
        "Zero-shot", "Joint training"]
    continual = {row[0]: row for row in tables[2].rows}
    assert continual["dfwf"][7] == "0.91 ± 0.01" and continual["naive"][8] == "9.00 ± 0.00"
    findings = "\n".join(gen_pages.aasist_findings(result))
    assert "the pretrained encoder is better (Welch p = 0.000)" in findings
    assert "**dfwf**: LA A01 EER after the last stage 0.91 %" in findings
    assert "kept at or below 1 % at every stage of every seed" in findings
    assert "**naive**: LA A01 EER after the last stage 9.00 %" in findings
    assert "At least one method kept the LA EER at or below 1 %" in findings
