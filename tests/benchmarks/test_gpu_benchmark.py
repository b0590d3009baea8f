"""The GPU benchmark runs unchanged on the CPU at toy sizes and writes its JSON; the
prepared GPU command runs it the same way; stored results follow the same schema."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks is a package run from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.speed import gpu  # noqa: E402

TOY = ["--presets", "tiny", "--batches", "4", "--clips", "16", "--num-samples", "4000",
       "--workers", "0", "--compile-backend", "eager", "--warmup", "1", "--infer-reps", "1",
       "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The JSON of a toy run: every amp and compile setting of ``tiny``."""
    out = tmp_path_factory.mktemp("gpu") / "g.json"
    assert gpu.main([*TOY, "--presets", "tiny,no_such_preset", "--out", str(out)]) == out
    return json.loads(out.read_text())


def test_toy_run_on_the_cpu_writes_every_setting(toy: dict) -> None:
    payload = copy.deepcopy(toy)
    gpu.validate(payload)
    rows = payload["rows"]
    assert [(r["amp"], r["compile"]) for r in rows] == [
        ("off", False), ("bf16", False), ("off", True), ("bf16", True)]
    for row in rows:
        assert row["status"] == "ok", row["status"]
        assert row["la_epoch_projected_s"] == pytest.approx(
            gpu.LA_TRAIN_CLIPS / row["train_clips_per_s"])
        assert row["measured_batches"] == 3  # 16 clips / batch 4, less 1 warm-up batch
        assert row["time_share"]["augmentation"] > 0 and row["time_share"]["model"] > 0
        assert row["peak_memory_train_bytes"] is None  # no GPU
    assert payload["skipped"] == [{"preset": "no_such_preset",
                                   "why": "no such preset in this checkout"}]
    assert payload["sizes"]["num_samples"] == 4000 and payload["device"] == "cpu"


def test_the_time_budget_starts_no_new_setting(tmp_path: Path) -> None:
    out = gpu.main([*TOY, "--budget-s", "0", "--out-dir", str(tmp_path)])
    assert out == tmp_path / "gpu_cpu.json"
    payload = json.loads(out.read_text())
    gpu.validate(payload)
    assert payload["rows"] == [] and len(payload["skipped"]) == 4


def test_validate_rejects_what_is_not_the_schema(toy: dict) -> None:
    payload = copy.deepcopy(toy)
    payload["rows"][0]["train_clips_per_s"] = None
    with pytest.raises(ValueError, match="train_clips_per_s"):
        gpu.validate(payload)
    payload = copy.deepcopy(toy)
    del payload["rows"][1]["infer_rtf"]
    with pytest.raises(ValueError, match="row keys"):
        gpu.validate(payload)
    payload = copy.deepcopy(toy)
    payload["rows"][2]["time_share"]["model"] += 0.5
    with pytest.raises(ValueError, match="time shares"):
        gpu.validate(payload)


def test_the_prepared_gpu_command_runs_at_toy_size(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "speed" / "gpu_run.sh"
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "BUDGET_S": "600",
           "WORKERS": "0"}
    done = subprocess.run(["bash", str(script), *TOY, "--amp", "off", "--compile", "off"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads((tmp_path / "gpu_cpu.json").read_text())
    gpu.validate(payload)
    assert [r["preset"] for r in payload["rows"]] == ["tiny"]
    assert (tmp_path / "gpu_run.log").read_text().strip()
    assert (tmp_path / "nvidia-smi.txt").is_file()


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("gpu_*.json")),
                         ids=lambda p: p.name)
def test_stored_gpu_results_follow_the_schema(path: Path) -> None:
    gpu.validate(json.loads(path.read_text()))
