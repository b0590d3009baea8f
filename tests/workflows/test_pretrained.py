"""Runs that start from a pretrained model (``model.init``): stage 0, every strategy, resume,
``cl-spoof init`` + ``add-attack``, ``data.pretrained_eval``, freezing, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from avalanche.core import SupervisedPlugin
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import load_config
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.infra.runtime import seed_everything
from cl_spoof.models import PRESETS, build_detector, build_model
from cl_spoof.strategies.registry import STRATEGIES
from cl_spoof.workflows.add_attack import add_attack
from cl_spoof.workflows.run import run_experiment
from tests.helpers.configs import tiny_config
from tests.helpers.corpora import make_tiny_corpus
from tests.helpers.paths import ROOT

runner = CliRunner()
SHARED_MODELS = ROOT.parent / "shared" / "models" / "aasist"
FEW = {"memory_size": 8, "gem_patterns_per_exp": 4, "agem_patterns_per_exp": 4,
       "agem_sample_size": 4}


def _cfg(corpus: Path, tmp: Path, init: Path | None, strategy: str = "naive", **sections: Any):
    if init is not None:
        sections["model"] = {"preset": "tiny", "init": str(init)}
    return load_config(tiny_config(corpus, tmp, strategy={"name": strategy, **FEW}, **sections))


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model_state"]


@pytest.fixture(scope="module")
def pretrained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (its last checkpoint is the pretrained model of the tests)."""
    tmp = tmp_path_factory.mktemp("pretrained")
    run_experiment(load_config(tiny_config(tiny_corpus, tmp, seed=5)), tmp / "run")
    return tmp / "run" / "checkpoints" / "stage_2.pt"


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny corpus (other clips), standing for what the model was pretrained on."""
    return make_tiny_corpus(tmp_path_factory.mktemp("other"), per_split=4, seed=9)


def test_stage_0_is_the_pretrained_model_and_training_seeds_are_unchanged(
        tiny_corpus: Path, tmp_path: Path) -> None:
    """A run from a file holding exactly the weights a run from scratch starts with
    trains stages 1..N exactly as that run: stage 0 only adds a row before them."""
    scratch = _cfg(tiny_corpus, tmp_path, None)
    seed_everything(scratch.seed)
    init = tmp_path / "init.pt"
    torch.save(build_detector(scratch.model, scratch.data.sample_rate).state_dict(), init)
    run_experiment(scratch, tmp_path / "scratch")
    res = runner.invoke(app, ["run", str(tiny_config(tiny_corpus, tmp_path, model={
        "preset": "tiny", "init": str(init)})), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "stage 0: the pretrained model (a state dict" in res.output
    assert "EER % of the pretrained model (stage 0)" in res.output
    out = tmp_path / "run"
    matrix = pd.read_csv(out / "eer_matrix.csv")
    assert matrix["stage"].tolist() == [0, 1, 2]
    assert matrix["trained_on"].tolist() == ["pretrained", "T1", "T2"]
    pd.testing.assert_frame_equal(matrix.iloc[1:].reset_index(drop=True),
                                  pd.read_csv(tmp_path / "scratch" / "eer_matrix.csv"))
    for k in (1, 2):
        assert (out / "scores" / f"stage_{k}.txt").read_bytes() == \
            (tmp_path / "scratch" / "scores" / f"stage_{k}.txt").read_bytes()
    zero = torch.load(out / "checkpoints" / "stage_0.pt", weights_only=True)
    assert zero["stage"] == 0 and zero["trained_on"] == "pretrained"
    saved = torch.load(init, weights_only=True)
    assert all(torch.equal(v, zero["model_state"][k]) for k, v in saved.items())
    assert len((out / "scores" / "stage_0.txt").read_text().splitlines()) == 30
    metrics = json.loads((out / "metrics.json").read_text())
    scratch_metrics = json.loads((tmp_path / "scratch" / "metrics.json").read_text())
    assert metrics["final_avg_eer"] == scratch_metrics["final_avg_eer"]
    assert metrics["bwt"] == scratch_metrics["bwt"] and metrics["stages"] == 2
    assert metrics["zero_shot"]["eer"] == pytest.approx(
        {a: matrix.loc[0, a] for a in ("T1", "T2")}, abs=1e-4)
    assert [o["stage"] for o in metrics["official"]] == [0, 1, 2]
    status = json.loads((out / "run.json").read_text())
    assert status["stage_0"] is True and status["completed_stages"] == 2
    # stage 0 scores like any checkpoint, its EER threshold named as the starting model's
    res = runner.invoke(app, ["score", str(out / "checkpoints" / "stage_0.pt"),
                              str(tiny_corpus)])
    assert res.exit_code == 0, res.output
    assert "stage 0, the pretrained starting model" in " ".join(res.output.split())


class _Previous(SupervisedPlugin):
    """Records, before each experience, whether the strategy holds a previous model."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, bool]] = []

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        from avalanche.training.plugins import LwFPlugin

        from cl_spoof.strategies.methods.dfwf.plugin import DFWFPlugin

        found: dict[str, bool] = {}
        for p in strategy.plugins:
            if isinstance(p, DFWFPlugin):
                found["dfwf"] = p.teacher is not None or p.dfwf._pending is not None
            if isinstance(p, LwFPlugin):
                found["lwf"] = p.lwf.prev_model is not None
        self.seen.append(found)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_starts_from_a_cl_spoof_checkpoint(
        strategy: str, pretrained: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    probe = _Previous()
    summary = run_experiment(_cfg(tiny_corpus, tmp_path, pretrained, strategy), tmp_path / "r",
                             extra_plugins=[probe])
    joint = STRATEGIES[strategy].joint
    assert list(summary.matrix.index) == ([0, 1] if joint else [0, 1, 2])
    assert summary.matrix[["T1", "T2"]].notna().all().all()
    zero = _state(tmp_path / "r" / "checkpoints" / "stage_0.pt")
    assert all(torch.equal(v, zero[k]) for k, v in _state(pretrained).items())
    # DFWF's teacher and LwF's previous model are the pretrained model at stage 1
    first = probe.seen[0]
    assert all(first.values()), first
    assert set(first) == ({"dfwf"} if strategy.startswith("dfwf") else
                          {"lwf"} if strategy == "lwf" else set())
    if strategy.startswith("dfwf"):
        teacher = torch.load(tmp_path / "r" / "checkpoints" / "stage_0.pt",
                             weights_only=True)["strategy_state"]["dfwf_teacher"]
        assert all(torch.equal(v, teacher[k]) for k, v in zero.items())


@pytest.mark.parametrize("strategy", ["dfwf", "lwf", "replay"])
def test_resume_after_stage_0_or_1_equals_the_uninterrupted_run(
        strategy: str, pretrained: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_corpus, tmp_path, pretrained, strategy)
    run_experiment(cfg, tmp_path / "full")
    full = tmp_path / "full"
    for done in (0, 1):
        part = tmp_path / f"after{done}"
        shutil.copytree(full, part)
        for k in range(done + 1, 3):
            (part / "checkpoints" / f"stage_{k}.pt").unlink()
        status = json.loads((part / "run.json").read_text())
        status.update(completed_stages=done, finished=False, total_stages=None)
        (part / "run.json").write_text(json.dumps(status))
        res = runner.invoke(app, ["run", "--resume", str(part)])
        assert res.exit_code == 0, res.output
        assert f"resuming after stage {done}/2" in res.output
        assert (part / "eer_matrix.csv").read_bytes() == (full / "eer_matrix.csv").read_bytes()
        a, b = _state(part / "checkpoints" / "stage_2.pt"), _state(full / "checkpoints" /
                                                                   "stage_2.pt")
        for name, value in b.items():
            torch.testing.assert_close(a[name], value, atol=1e-5, rtol=0, msg=name)
        assert (part / "logs" / f"resumed_at_stage_{done}" / "log.txt").is_file()


def _new_attack(root: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    t = np.arange(8000) / 16000
    for i in range(n):
        wave = 0.2 * np.sin(2 * np.pi * (300 + 2000 * t) * t) + 0.02 * rng.standard_normal(8000)
        sf.write(root / f"clip_{i}.wav", wave.astype(np.float32), 16000)
    return root


def test_init_makes_a_run_of_stage_0_that_add_attack_continues(
        pretrained: Path, tiny_corpus: Path, other_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    run = tmp_path / "run"
    res = runner.invoke(app, ["init", str(run), "--from", str(pretrained), "--config", str(cfg),
                              "--set", f"data.pretrained_eval={other_corpus}"])
    assert res.exit_code == 0, res.output
    assert "cl-spoof add-attack" in res.output
    matrix = pd.read_csv(run / "eer_matrix.csv")
    assert list(matrix.columns) == ["stage", "trained_on", "T1", "T2", "pretrained:T1",
                                    "pretrained:T2"]
    assert matrix["stage"].tolist() == [0]
    status = json.loads((run / "run.json").read_text())
    assert status["finished"] and status["completed_stages"] == 0 and status["stage_0"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["stage_0.pt"]
    res = runner.invoke(app, ["run", "--resume", str(run)])
    assert res.exit_code == 2 and "already finished" in res.output

    # replay keeps no state of the pretraining: a run of stage 0 alone takes any strategy
    summary, _ = add_attack(run, "NEW", _new_attack(tmp_path / "new"), strategy="replay")
    matrix = pd.read_csv(run / "eer_matrix.csv")
    assert matrix["stage"].tolist() == [0, 1]
    assert matrix["trained_on"].tolist() == ["pretrained", "NEW"]
    assert list(matrix.columns) == ["stage", "trained_on", "T1", "T2", "NEW", "pretrained:T1",
                                    "pretrained:T2"]
    assert matrix.notna().all().all()  # stage 0 evaluated on NEW too, pretrained set after 1
    added = json.loads((run / "added" / "added.json").read_text())["attacks"]
    assert [a["stage"] for a in added] == [1]
    ckpt = torch.load(run / "checkpoints" / "stage_1.pt", weights_only=True)
    assert ckpt["stage"] == 1 and ckpt["trained_on"] == "NEW"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pretrained_eval"]["stages"] == [0, 1]
    report = pd.read_csv(run / "report" / "eer_matrix_naive.csv")  # the refreshed report
    assert report["stage"].tolist() == [0, 1]
    assert report["trained_on"].tolist() == ["pretrained", "NEW"]
    # the next stage, with DFWF: its teacher is the model of stage 1
    add_attack(run, "NEW2", _new_attack(tmp_path / "new2"), report=False)
    assert pd.read_csv(run / "eer_matrix.csv")["stage"].tolist() == [0, 1, 2]


def test_pretrained_eval_adds_columns_after_every_stage(
        pretrained: Path, tiny_corpus: Path, other_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_corpus, tmp_path, pretrained, "dfwf",
               data={"pretrained_eval": str(other_corpus)})
    summary = run_experiment(cfg, tmp_path / "r")
    cols = ["pretrained:T1", "pretrained:T2"]
    assert list(summary.matrix.columns) == ["trained_on", "T1", "T2", *cols]
    assert summary.matrix[cols].notna().all().all()
    info = summary.metrics["pretrained_eval"]
    assert info["columns"] == cols and info["stages"] == [0, 1, 2]
    means = summary.matrix[cols].mean(axis=1).tolist()
    assert info["avg_eer"] == pytest.approx(means, abs=1e-3)
    assert info["forgetting"] == pytest.approx(means[-1] - means[0], abs=1e-3)
    # the continual metrics cover the attacks of the run only
    assert summary.metrics["attacks"] == ["T1", "T2"]
    scores = (tmp_path / "r" / "scores" / "stage_1.txt").read_text().splitlines()
    assert len(scores) == 30  # the run's own test set only
    with pytest.raises(ConfigError, match="data.pretrained_eval .* set model.init too"):
        _cfg(tiny_corpus, tmp_path, None, data={"pretrained_eval": str(other_corpus)})


def test_freezing_starts_with_the_first_stage_after_pretraining(
        pretrained: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_corpus, tmp_path, pretrained, train={"trainable": ["head"]})
    run_experiment(cfg, tmp_path / "r")
    before = _state(tmp_path / "r" / "checkpoints" / "stage_0.pt")
    after = _state(tmp_path / "r" / "checkpoints" / "stage_1.pt")
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert all(torch.equal(v, after[k]) for k, v in before.items() if not k.startswith("head"))


def test_a_file_that_does_not_fit_is_one_line_naming_key_file_and_preset(
        tiny_corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "lcnn.pt"
    torch.save(build_model("tiny_lfcc_lcnn").state_dict(), other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": build_model("tiny")}, pickled)  # a whole module: never unpickled
    bent = build_model("tiny").state_dict()
    name = next(k for k, v in bent.items() if v.dim() == 2)
    bent[name] = torch.zeros(3, 3)
    del bent[next(k for k in bent if k != name)]
    bent["extra.weight"] = torch.zeros(1)
    odd = tmp_path / "odd.pt"
    torch.save(bent, odd)
    (tmp_path / "text.pt").write_text("not a model")
    cases = [(other, ["model.init", str(other), "does not fit preset 'tiny'", "missing",
                      "unexpected"]),
             (odd, ["1 missing", "1 unexpected (extra.weight)", "1 of another shape",
                    f"{name} (3, 3) in the file"]),
             (pickled, ["Python objects", "state_dict()"]),
             (tmp_path / "text.pt", ["not a PyTorch file"]),
             (tmp_path / "absent.pt", ["weights file not found"])]
    for path, words in cases:
        cfg = tiny_config(tiny_corpus, tmp_path, model={"preset": "tiny", "init": str(path)})
        out = tmp_path / f"run_{path.stem}"
        res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
        assert res.exit_code == 2, res.output
        line = " ".join(res.output.split())
        assert "Traceback" not in line and all(w in line for w in words), (words, line)
        assert not out.exists()
    with pytest.raises(CLSpoofError, match="needs a pretrained model"):
        run_experiment(_cfg(tiny_corpus, tmp_path, None), tmp_path / "x", only_stage_0=True)


@pytest.mark.skipif("aasist_l" not in PRESETS or not (SHARED_MODELS / "AASIST-L.pth").is_file(),
                    reason="needs the aasist_l preset and the shared official AASIST-L file")
def test_the_official_aasist_l_file_loads_into_its_preset() -> None:
    from cl_spoof.models.pretrained import load_initial_weights

    model = build_model("aasist_l")
    assert load_initial_weights(model, SHARED_MODELS / "AASIST-L.pth", "aasist_l") == \
        "a state dict"
    official = torch.load(SHARED_MODELS / "AASIST-L.pth", map_location="cpu", weights_only=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in official.items())


def test_a_data_parallel_run_starts_from_the_pretrained_model(
        pretrained: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """Under torchrun every process starts from the file; stage 0 is the same model, so
    its row is the single process's (the trained rows differ by DDP's own noise)."""
    import os
    import subprocess
    import sys

    root = ROOT
    # augmentation off: each process draws its own noise, so with it the runs agree only
    # in distribution (as every single-process / torchrun comparison of the tests)
    cfg = tiny_config(tiny_corpus, tmp_path, model={"preset": "tiny", "init": str(pretrained)},
                      strategy={"name": "dfwf"}, train={"augment": None})
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    run_experiment(load_config(cfg), tmp_path / "single")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "cl_spoof", "run", str(cfg), "--out",
                          str(tmp_path / "ddp")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert res.stderr.count("EER % of the pretrained model (stage 0)") == 1
    single = pd.read_csv(tmp_path / "single" / "eer_matrix.csv")
    ddp = pd.read_csv(tmp_path / "ddp" / "eer_matrix.csv")
    assert ddp["stage"].tolist() == [0, 1, 2] and list(ddp.columns) == list(single.columns)
    np.testing.assert_allclose(ddp.loc[0, ["T1", "T2"]].to_numpy(float),
                               single.loc[0, ["T1", "T2"]].to_numpy(float), atol=1e-3)
    # 10 test trials per class: one trial is 10 EER points. After one epoch the tiny model
    # is near chance, so DDP's own noise (BatchNorm over shards, each process's crops)
    # moves a cell by up to two trials; tests/infra/test_distributed.py bounds it on a
    # model that learns
    assert (ddp[["T1", "T2"]] - single[["T1", "T2"]]).abs().to_numpy().max() <= 20.0
    zero = _state(tmp_path / "ddp" / "checkpoints" / "stage_0.pt")
    assert all(torch.equal(v, zero[k]) for k, v in _state(pretrained).items())
