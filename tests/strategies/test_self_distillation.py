"""Self-distillation: exits on the shallow segments, their losses, and every strategy."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import ModelSpec, SelfDistillationConfig, load_config, with_overrides
from cl_spoof.errors import ConfigError
from cl_spoof.models import build_detector, build_model
from cl_spoof.models.exits import EXITS, attach_exits, exits_of, strip_exits
from cl_spoof.models.loading import load_checkpoint
from cl_spoof.strategies import SelfDistillationPlugin
from cl_spoof.strategies.methods.self_distillation.losses import (
    feature_loss,
    self_distillation_loss,
)
from cl_spoof.workflows.run import run_experiment
from tests.helpers.configs import tiny_config
from tests.helpers.encoders import tiny_ssl_overrides

torch.set_num_threads(1)
runner = CliRunner()

SEGMENTS = {
    "tiny": ("blocks.0",),
    "small": ("blocks.0", "blocks.1"),
    "base": ("blocks.0", "blocks.1", "blocks.2"),
    "res_tssdnet": ("stages.0", "stages.1", "stages.2"),
    "inc_tssdnet": ("stages.0", "stages.1", "stages.2"),
    "lfcc_lcnn": ("blocks.1", "blocks.2", "blocks.3"),
    "tiny_res_tssdnet": ("stages.0", "stages.1", "stages.2"),
    "tiny_lfcc_lcnn": ("blocks.1", "blocks.2", "blocks.3"),
}


# ------------------------------------------------------------------ losses


def test_losses_by_hand() -> None:
    torch.manual_seed(0)
    deep = torch.randn(4, 2)
    shallow = [torch.randn(4, 2, requires_grad=True), deep.clone().requires_grad_(True)]
    deep_f = torch.randn(4, 8, requires_grad=True)
    feats = [torch.randn(4, 8, requires_grad=True), deep_f.detach().clone()]
    y = torch.tensor([0, 1, 1, 0])
    out = self_distillation_loss(shallow, feats, deep, deep_f, y, hard_weight=0.5,
                                 soft_weight=2.0, feature_weight=3.0, temperature=3.0)
    hard = F.cross_entropy(shallow[0], y) + F.cross_entropy(shallow[1], y)
    t = 3.0
    kl = F.kl_div(F.log_softmax(shallow[0] / t, 1), F.softmax(deep / t, 1),
                  reduction="batchmean") * t * t  # the second exit equals the teacher: 0
    feat = (feats[0] - deep_f).pow(2).mean()
    torch.testing.assert_close(out.hard, hard)
    torch.testing.assert_close(out.soft, kl)
    torch.testing.assert_close(out.feature, feat)
    torch.testing.assert_close(out.total, 0.5 * hard + 2.0 * kl + 3.0 * feat)
    out.total.backward()
    assert deep_f.grad is None  # the deepest exit is never pulled towards its students
    assert shallow[0].grad is not None and feats[0].grad is not None


def test_zero_weights_add_nothing_and_shapes_are_checked() -> None:
    z = [torch.randn(3, 2)]
    out = self_distillation_loss(z, [torch.randn(3, 4)], torch.randn(3, 2), torch.randn(3, 4),
                                 torch.tensor([0, 1, 0]), hard_weight=0, soft_weight=0,
                                 feature_weight=0, temperature=1.0)
    assert float(out.total) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        feature_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="temperature"):
        SelfDistillationPlugin(temperature=0)
    with pytest.raises(ConfigError, match="soft_weight"):
        SelfDistillationPlugin(soft_weight=-1)


# ------------------------------------------------------------------ exits in the model


@pytest.mark.parametrize("preset", list(SEGMENTS))
def test_each_backbone_declares_its_segments(preset: str) -> None:
    model = build_model(preset)
    assert model.segments() == SEGMENTS[preset]
    exits = attach_exits(model)
    assert exits.segments == SEGMENTS[preset] and len(exits.exits) == len(SEGMENTS[preset])


def test_ssl_exits_on_named_transformer_layers(tmp_path: Path) -> None:
    model = build_model("ssl", **tiny_ssl_overrides(tmp_path, trainable_layers=3))
    exits = attach_exits(model)  # layers 1 and 2 (below the top trainable one)
    assert exits.segments == ("encoder.encoder.transformer.layers.1",
                              "encoder.encoder.transformer.layers.2")
    model.train()
    model(torch.randn(2, 2000))
    out = exits.take()
    assert out is not None and [z.shape for z in out.logits] == [(2, 2), (2, 2)]
    frozen = build_model("ssl", **tiny_ssl_overrides(tmp_path))
    with pytest.raises(ConfigError, match=r"model\.self_distillation\.segments: SSLDetector "
                                          r"declares no self-distillation segments"):
        attach_exits(frozen)


def test_bad_segment_names_are_clear_errors() -> None:
    spec = ModelSpec(preset="tiny", self_distillation=SelfDistillationConfig(
        enabled=True, segments=("blocks.7",)))
    with pytest.raises(ConfigError, match=r"model\.self_distillation\.segments: ResNetGRU has "
                                          r"no layer 'blocks\.7'; did you mean"):
        build_detector(spec)
    model = build_model("tiny")
    model.unused = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match=r"layer 'unused' did not run"):
        attach_exits(model, ("unused",))


def test_inference_uses_the_deepest_exit_only() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny_res_tssdnet").eval()
    with_exits = build_detector(ModelSpec(preset="tiny_res_tssdnet",
                                          self_distillation=SelfDistillationConfig(enabled=True)))
    with_exits.load_state_dict({**plain.state_dict(), **{
        k: v for k, v in with_exits.state_dict().items() if k.startswith(EXITS + ".")}})
    with_exits.eval()
    calls: list[str] = []
    exits = exits_of(with_exits)
    assert exits is not None
    for e in exits.exit_list():
        e.align.register_forward_hook(lambda *_a: calls.append("exit"))
    x = torch.randn(3, 3000)
    with torch.no_grad():
        torch.testing.assert_close(with_exits(x), plain(x))
    assert calls == [] and exits.take() is None  # no exit ran, nothing stored
    # In training mode the exits run inside the same forward.
    with_exits.train()
    with_exits(x)
    assert calls == ["exit"] * 3
    out = exits.take()
    assert out is not None and len(out.logits) == 3 and out.deep_features.shape == (3, 8)
    assert exits.take() is None  # taken once


def test_deepcopy_of_a_trained_model_forgets_the_stored_outputs() -> None:
    model = build_detector(ModelSpec(preset="tiny", self_distillation=SelfDistillationConfig(
        enabled=True))).train()
    model(torch.randn(2, 3000)).sum().backward()  # outputs with a graph stay stored
    clone = copy.deepcopy(model)  # DFWF's teacher / LwF's previous model
    clone_exits = exits_of(clone)
    assert clone_exits is not None and clone_exits.take() is None
    clone(torch.randn(2, 3000))  # the copy's hooks fill the copy's exits, not the original's
    assert clone_exits.take() is not None
    original = exits_of(model)
    assert original is not None and original.take() is not None  # its own, from before


# ------------------------------------------------------------------ the plugin


class _LossProbe(SupervisedPlugin):  # type: ignore[misc]
    """Records the loss Avalanche's criterion gives and the loss after every plugin."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[float, float]] = []

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        ce = float(strategy._criterion(strategy.mb_output, strategy.mb_y).detach())
        self.rows.append((ce, float(strategy.loss.detach())))


def test_plugin_adds_the_three_losses_to_any_strategy() -> None:
    from avalanche.benchmarks import benchmark_from_datasets
    from avalanche.benchmarks.utils import as_classification_dataset
    from torch.utils.data import TensorDataset

    torch.manual_seed(0)
    model = build_detector(ModelSpec(preset="tiny", self_distillation=SelfDistillationConfig(
        enabled=True)))
    x, y = torch.randn(16, 3000), torch.arange(16) % 2
    data = TensorDataset(x, y)
    data.targets = y.tolist()  # type: ignore[attr-defined]
    bm = benchmark_from_datasets(train=[as_classification_dataset(data)],
                                 test=[as_classification_dataset(data)])
    sd, probe = SelfDistillationPlugin(), _LossProbe()
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                     train_mb_size=8, train_epochs=1, plugins=[sd, probe], evaluator=None)
    strategy.train(bm.train_stream[0])
    assert len(probe.rows) == 2
    extra = sd.history[0]["extra_loss"]
    assert extra > 0 and sd.history[0]["hard"] > 0 and sd.history[0]["soft"] > 0 \
        and sd.history[0]["feature"] > 0
    mean_added = sum(total - ce for ce, total in probe.rows) / len(probe.rows)
    assert mean_added == pytest.approx(extra, rel=1e-4)
    # The exits' weights are trained by the same optimizer.
    exit_params = {id(p) for p in model.get_submodule(EXITS).parameters()}
    assert exit_params <= {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}


def test_plugin_without_exits_is_a_clear_error() -> None:
    strategy = type("S", (), {"model": build_model("tiny")})()
    with pytest.raises(ConfigError, match=r"model\.self_distillation\.enabled"):
        SelfDistillationPlugin().before_training_exp(strategy)


# ------------------------------------------------------------------ in runs


class _Plugins(SupervisedPlugin):  # type: ignore[misc]
    """Keeps the strategy's plugins for the test to read after the run."""

    def __init__(self) -> None:
        super().__init__()
        self.plugins: list[Any] = []

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        self.plugins = list(strategy.plugins)


def _sd_cfg(manifest: Path, tmp: Path, strategy: str, **sd: Any):
    return with_overrides(load_config(tiny_config(manifest, tmp)), strategy={"name": strategy},
                          model={"preset": "tiny",
                                 "self_distillation": {"enabled": True, **sd}})


def test_composes_with_dfwf_and_replay(tiny_corpus: Path, tmp_path: Path) -> None:
    from avalanche.training.plugins import ReplayPlugin

    from cl_spoof.strategies import DFWFPlugin

    keep = _Plugins()
    cfg = _sd_cfg(tiny_corpus, tmp_path, "dfwf+replay")
    summary = run_experiment(cfg, tmp_path / "run", extra_plugins=[keep])
    assert summary.matrix[["T1", "T2"]].notna().all().all()
    kinds = {type(p) for p in keep.plugins}
    assert {SelfDistillationPlugin, DFWFPlugin, ReplayPlugin} <= kinds
    sd = next(p for p in keep.plugins if isinstance(p, SelfDistillationPlugin))
    dfwf = next(p for p in keep.plugins if isinstance(p, DFWFPlugin))
    assert [h["extra_loss"] > 0 for h in sd.history] == [True, True]
    assert dfwf.history[1]["active"] and dfwf.history[1]["extra_loss"] > 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "stage_2.pt", weights_only=True)
    assert any(k.startswith(EXITS + ".") for k in ckpt["model_state"])
    assert any(k.startswith(EXITS + ".") for k in ckpt["strategy_state"]["dfwf_teacher"])
    # Scoring loads the checkpoint without the exits: the deepest exit alone.
    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "stage_2.pt")
    assert exits_of(loaded.model) is None
    plain = build_model("tiny")
    plain.load_state_dict(strip_exits(ckpt["model_state"]))
    x = torch.randn(2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), plain.eval()(x))


def test_bad_segment_fails_before_training_in_the_cli(tiny_corpus: Path,
                                                      tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path, model={
        "preset": "tiny_lfcc_lcnn", "self_distillation": {"enabled": True,
                                                          "segments": ["blocks.9"]}})
    res = runner.invoke(app, ["run", str(cfg), "--strategy", "dfwf", "--out",
                              str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "model.self_distillation.segments" in text and "blocks.9" in text
    assert "learning" not in text and "Traceback" not in text
    assert not (tmp_path / "r" / "checkpoints" / "stage_1.pt").exists()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("temperature", 0.0, "model.self_distillation.temperature must be positive"),
    ("soft_weight", -1.0, "model.self_distillation.soft_weight must not be negative"),
    ("segment", ["x"], "unknown config key 'model.self_distillation.segment'"),
    ("enabled", True, None),
])
def test_config_errors_name_the_key(tiny_corpus: Path, tmp_path: Path, key: str, value: Any,
                                    message: str | None) -> None:
    if message is None:  # every weight 0: the exits would learn nothing
        sd = {"enabled": True, "hard_weight": 0, "soft_weight": 0, "feature_weight": 0}
        message = r"model\.self_distillation: hard_weight, soft_weight and feature_weight"
    else:
        sd = {key: value}
    with pytest.raises(ConfigError, match=message):
        tiny_config(tiny_corpus, tmp_path, model={"preset": "tiny", "self_distillation": sd})


@pytest.mark.parametrize("preset", ["tiny", "ssl"])
def test_resume_with_self_distillation_equals_uninterrupted(tiny_corpus: Path, tmp_path: Path,
                                                            preset: str) -> None:
    cfg = with_overrides(_sd_cfg(tiny_corpus, tmp_path, "dfwf"), train={"epochs": 2})
    if preset == "ssl":  # frozen weights come from the file, not from the checkpoints
        cfg = with_overrides(cfg, model={"preset": "ssl", "overrides": tiny_ssl_overrides(
            tmp_path, trainable_layers=2)})
    full = run_experiment(cfg, tmp_path / "full")
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    (part / "checkpoints" / "stage_2.pt").unlink()
    status = json.loads((part / "run.json").read_text())
    status.update(completed_stages=1, finished=False, total_stages=None)
    (part / "run.json").write_text(json.dumps(status))
    resumed = run_experiment(cfg, part, resume=True)
    pd.testing.assert_frame_equal(resumed.matrix, full.matrix, atol=1e-3, rtol=0)
    a = torch.load(part / "checkpoints" / "stage_2.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "full" / "checkpoints" / "stage_2.pt",
                   weights_only=True)["model_state"]
    assert any(k.startswith(EXITS + ".") for k in b)
    for name, value in b.items():
        torch.testing.assert_close(a[name], value, atol=1e-5, rtol=0, msg=name)
