"""Resuming an interrupted run gives the uninterrupted run's results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config, with_overrides
from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.checkpoints import save_checkpoint
from cl_spoof.workflows.run import run_experiment
from tests.helpers.configs import tiny_config
from tests.helpers.corpora import make_tiny_corpus
from tests.helpers.paths import ROOT

TOLERANCE = 1e-3  # EER points; rows of a resumed matrix are re-read from a 4-decimal CSV
WEIGHT_TOLERANCE = 1e-5  # final weights of resumed vs uninterrupted runs (CPU, same threads)


@pytest.fixture(scope="module")
def three_attacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_corpus(tmp_path_factory.mktemp("three"), n_attacks=3, per_split=12)


def _cfg(manifest: Path, tmp: Path, strategy: str, epochs: int = 2):
    return with_overrides(load_config(tiny_config(manifest, tmp)),
                          strategy={"name": strategy}, train={"epochs": epochs})


@pytest.mark.parametrize("strategy", ["naive", "cumulative", "dfwf", "lwf", "ewc", "si",
                                      "replay", "dfwf+replay", "gem", "agem", "rawm", "rwm",
                                      "rego"])
def test_resume_equals_uninterrupted(three_attacks: Path, tmp_path: Path, strategy: str) -> None:
    cfg = _cfg(three_attacks, tmp_path, strategy)
    if strategy == "si":  # make the penalty matter on a tiny run, so a lost state shows
        cfg = with_overrides(cfg, strategy={"si_lambda": 1e6})
    full = run_experiment(cfg, tmp_path / "full")
    # The same directory as it was when stage 1 (of 3) had just completed.
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for k in (2, 3):
        (part / "checkpoints" / f"stage_{k}.pt").unlink()
    status = json.loads((part / "run.json").read_text())
    status.update(completed_stages=1, finished=False, total_stages=None)
    (part / "run.json").write_text(json.dumps(status))
    resumed = run_experiment(cfg, part, resume=True)
    pd.testing.assert_frame_equal(resumed.matrix, full.matrix, atol=TOLERANCE, rtol=0)
    # the official metrics of the stage done before the interruption are kept
    official = resumed.metrics["official"]
    assert [o["stage"] for o in official] == [1, 2, 3]
    for got, want in zip(official, full.metrics["official"], strict=True):
        assert got["pooled_eer"] == pytest.approx(want["pooled_eer"], abs=TOLERANCE)
    # EERs on tiny data move in coarse steps: compare the final weights too.
    a = torch.load(part / "checkpoints" / "stage_3.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "full" / "checkpoints" / "stage_3.pt",
                   weights_only=True)["model_state"]
    for name, value in b.items():
        torch.testing.assert_close(a[name], value, atol=WEIGHT_TOLERANCE, rtol=0, msg=name)
    assert (part / "logs" / "resumed_at_stage_1" / "log.txt").is_file()
    assert json.loads((part / "run.json").read_text())["finished"] is True


def test_resume_after_sigkill_mid_experience(three_attacks: Path, tmp_path: Path) -> None:
    cfg_path = tmp_path / "kill.yaml"
    # One short first stage; the kill lands in the second, which lasts 20 epochs.
    cfg = with_overrides(_cfg(three_attacks, tmp_path, "dfwf", epochs=20),
                         train={"first_epochs": 1})
    from cl_spoof.config import to_yaml

    cfg_path.write_text(to_yaml(cfg))
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cl_spoof", "run", str(cfg_path), "--out",
                             str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            status = out / "run.json"
            if status.is_file() and json.loads(status.read_text())["completed_stages"] >= 1:
                break
            if proc.poll() is not None:
                pytest.fail("the run ended before it could be interrupted")
            time.sleep(0.05)
        else:
            pytest.fail("stage 1 did not complete in time")
        time.sleep(0.1)  # inside stage 2 (20 epochs take far longer than this)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = json.loads((out / "run.json").read_text())
    assert status["completed_stages"] == 1 and not status["finished"]
    res = CliRunner().invoke(app, ["run", "--resume", str(out)])
    assert res.exit_code == 0, res.output
    run_experiment(cfg, tmp_path / "full")
    resumed = pd.read_csv(out / "eer_matrix.csv")
    pd.testing.assert_frame_equal(resumed, pd.read_csv(tmp_path / "full" / "eer_matrix.csv"),
                                  atol=TOLERANCE, rtol=0)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "stage_1.pt", "stage_2.pt", "stage_3.pt"]


def test_resume_refusals(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_corpus, tmp_path, "naive", epochs=1)
    run_experiment(cfg, tmp_path / "done")
    with pytest.raises(CLSpoofError, match="already finished"):
        run_experiment(cfg, tmp_path / "done", resume=True)
    with pytest.raises(CLSpoofError, match="no config.yaml"):
        run_experiment(cfg, tmp_path / "nothing", resume=True)


def test_compare_resume_completes_missing_runs(tiny_corpus: Path, tmp_path: Path) -> None:
    from cl_spoof.workflows.compare import load_compare_spec, run_compare

    cfg = _cfg(tiny_corpus, tmp_path, "naive", epochs=1)
    out = tmp_path / "cmp"
    run_compare(cfg, ["naive", "dfwf"], [0], out)
    before = (out / "naive" / "seed0" / "eer_matrix.csv").read_bytes()
    shutil.rmtree(out / "dfwf")  # as if interrupted before the dfwf run started
    cfg2, names, seeds = load_compare_spec(out)
    assert (names, seeds) == (["naive", "dfwf"], [0])
    table = run_compare(cfg2, names, seeds, out, resume=True)
    assert table.strategy.tolist() == ["naive", "dfwf"]
    assert (out / "naive" / "seed0" / "eer_matrix.csv").read_bytes() == before  # not rerun
    assert (out / "dfwf" / "seed0" / "run.json").is_file()


def test_compare_resume_grows_but_never_drops(tiny_corpus: Path, tmp_path: Path) -> None:
    """A resumed comparison may add strategies and seeds (compare.json lists them after);
    finished runs are kept; dropping a strategy or seed is refused, nothing changed."""
    from cl_spoof.errors import CLSpoofError
    from cl_spoof.workflows.compare import load_compare_spec, run_compare

    cfg = _cfg(tiny_corpus, tmp_path, "naive", epochs=1)
    out = tmp_path / "cmp"
    run_compare(cfg, ["naive"], [0], out)
    before = (out / "naive" / "seed0" / "eer_matrix.csv").read_bytes()
    saved = (out / "compare.json").read_text()
    cfg2, _, _ = load_compare_spec(out)
    with pytest.raises(CLSpoofError, match=r"keeps what it has \(seed 0\)"):
        run_compare(cfg2, ["naive", "dfwf"], [1], out, resume=True)
    assert (out / "compare.json").read_text() == saved
    assert not (out / "dfwf").exists()
    table = run_compare(cfg2, ["dfwf", "naive"], [0, 1], out, resume=True)
    assert json.loads((out / "compare.json").read_text()) == {
        "strategies": ["naive", "dfwf"], "seeds": [0, 1]}
    assert table.strategy.tolist() == ["dfwf", "naive"]
    assert all((out / s / f"seed{k}" / "run.json").is_file()
               for s in ("naive", "dfwf") for k in (0, 1))
    assert (out / "naive" / "seed0" / "eer_matrix.csv").read_bytes() == before  # not rerun
    assert load_compare_spec(out)[1:] == (["naive", "dfwf"], [0, 1])


@pytest.mark.parametrize("name", ["si", "gem", "ewc"])
def test_strategy_state_round_trip(name: str, tiny_corpus: Path, tmp_path: Path) -> None:
    """Exported plugin tensors come back exactly (SI's importances are often all zero in
    real runs, so the end-to-end test above cannot see a lost SI state)."""
    from cl_spoof.infra.context import RunContext
    from cl_spoof.workflows.trainer import Trainer

    cfg = _cfg(tiny_corpus, tmp_path, name, epochs=1)
    src_trainer = Trainer.build(cfg, RunContext.local("cpu"))
    dst_trainer = Trainer.build(cfg, RunContext.local("cpu"))
    src, dst = src_trainer.strategy, dst_trainer.strategy
    plugin = next(p for p in src.plugins if type(p).__name__.startswith(
        {"si": "Synaptic", "gem": "GEM", "ewc": "EWC"}[name]))
    from avalanche.training.utils import ParamData

    if name == "si":
        plugin.ewc_data[0]["w"] = ParamData("w", init_tensor=torch.randn(5))
        plugin.ewc_data[1]["w"] = ParamData("w", init_tensor=torch.rand(5))
        for key in plugin.syn_data:
            plugin.syn_data[key]["w"] = ParamData("w", init_tensor=torch.randn(5))
    elif name == "gem":
        plugin.memory_x[0], plugin.memory_y[0] = torch.randn(4, 10), torch.tensor([0, 1, 1, 0])
        plugin.memory_tid[0] = torch.zeros(4, dtype=torch.long)
    else:
        plugin.importances[0] = {"w": ParamData("w", init_tensor=torch.rand(5))}
        plugin.saved_params[0] = {"w": ParamData("w", init_tensor=torch.randn(5))}
    state = src_trainer.export_state()
    assert state  # something was exported
    path = tmp_path / "state.pt"
    torch.save(state, path)
    dst_trainer.restore_state(torch.load(path, weights_only=True), 1, None)
    target = next(p for p in dst.plugins if type(p) is type(plugin))
    if name == "si":
        for a, b in zip(plugin.ewc_data, target.ewc_data, strict=True):
            torch.testing.assert_close(a["w"].data, b["w"].data)
        torch.testing.assert_close(plugin.syn_data["trajectory"]["w"].data,
                                   target.syn_data["trajectory"]["w"].data)
    elif name == "gem":
        torch.testing.assert_close(plugin.memory_x[0], target.memory_x[0])
        torch.testing.assert_close(plugin.memory_y[0], target.memory_y[0])
    else:
        torch.testing.assert_close(plugin.importances[0]["w"].data,
                                   target.importances[0]["w"].data)
        torch.testing.assert_close(plugin.saved_params[0]["w"].data,
                                   target.saved_params[0]["w"].data)


def test_resume_with_a_foreign_checkpoint_is_a_clear_error(tiny_corpus: Path,
                                                           tmp_path: Path) -> None:
    cfg = _cfg(tiny_corpus, tmp_path, "naive", epochs=1)
    run_experiment(cfg, tmp_path / "run")
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    status.update(completed_stages=1, finished=False)
    (tmp_path / "run" / "run.json").write_text(json.dumps(status))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "stage_1.pt", weights_only=True)
    from cl_spoof.models import build_model

    ckpt["model_state"] = build_model("small").state_dict()  # another preset's weights
    save_checkpoint(tmp_path / "run" / "checkpoints" / "stage_1.pt", ckpt)
    with pytest.raises(CLSpoofError, match=r"stage_1\.pt: the model state does not fit"):
        run_experiment(cfg, tmp_path / "run", resume=True)
    (tmp_path / "run" / "checkpoints" / "stage_1.pt").write_bytes(b"truncated")
    with pytest.raises(CLSpoofError, match="not a readable checkpoint"):
        run_experiment(cfg, tmp_path / "run", resume=True)
