"""DFWF: the loss terms alone, then the plugin inside real (tiny) Avalanche runs."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils import DataAttribute
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from avalanche.benchmarks.utils.data_attribute import TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.supervised import Naive, Replay
from torch import nn
from torch.utils.data import TensorDataset

from cl_spoof.config import config_from_dict
from cl_spoof.errors import ConfigError
from cl_spoof.models import build_model
from cl_spoof.strategies import DFWF, DFWFPlugin
from cl_spoof.strategies.methods.dfwf.regularization import kd_loss, psa_loss, resolve_layers
from cl_spoof.workflows.run import run_experiment

torch.set_num_threads(1)

LENGTH = 800  # samples per clip: a few frames for the tiny preset


# ---------------------------------------------------------------------- kd_loss


def test_kd_is_zero_for_equal_logits_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 2, generator=g)
    assert kd_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    # a constant shift per row leaves the softmax unchanged
    assert kd_loss(teacher + 3.0, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = teacher + torch.randn(6, 2, generator=g)
    assert kd_loss(student, teacher, 2.0).item() > 0


def test_kd_is_t_squared_times_kl_of_softened_distributions() -> None:
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
    for temp in (1.0, 2.0, 4.0):
        p_t = torch.softmax(t / temp, dim=1)
        p_s = torch.softmax(s / temp, dim=1)
        kl = (p_t * (p_t.log() - p_s.log())).sum(dim=1).mean()
        assert kd_loss(s, t, temp).item() == pytest.approx(temp**2 * kl.item(), rel=1e-5)
    # With the T² factor the loss tends to a constant for large T (plain KL would fall as
    # 1/T²: quartering from T=50 to T=100).
    ratio = kd_loss(s, t, 100.0) / kd_loss(s, t, 50.0)
    assert ratio.item() == pytest.approx(1.0, abs=0.01)


def test_kd_gradient_reaches_the_student_only() -> None:
    s = torch.randn(4, 2, requires_grad=True)
    t = torch.randn(4, 2, requires_grad=True)
    kd_loss(s, t, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_kd_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(2, 2), torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="shape"):
        kd_loss(torch.zeros(2, 2), torch.zeros(3, 2), 1.0)


# ---------------------------------------------------------------------- psa_loss


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_psa_ignores_spoof_samples(distance: str) -> None:
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    bona = torch.tensor([True, False, True, False, False, True])
    before = psa_loss(s, t, bona, distance)
    s2, t2 = s.clone(), t.clone()
    s2[~bona] = torch.randn(3, 8, generator=g) * 100
    t2[~bona] = torch.randn(3, 8, generator=g)
    assert psa_loss(s2, t2, bona, distance).item() == pytest.approx(before.item(), rel=1e-6)
    assert before.item() > 0


def test_psa_distances_match_their_definitions() -> None:
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, -1.0], [0.0, 0.0]])
    bona = torch.tensor([True, True, False])
    # cosine: rows give cos 1 and -1 -> distances 0 and 2 -> mean 1
    assert psa_loss(s, t, bona, "cosine").item() == pytest.approx(1.0)
    # l2: squared distances 1 and 9 -> mean 5
    assert psa_loss(s, t, bona, "l2").item() == pytest.approx(5.0)
    assert psa_loss(s, s.clone(), bona, "l2").item() == 0.0
    assert psa_loss(s, 3 * s, bona, "cosine").item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_psa_is_exactly_zero_without_bona_fide_and_backward_works(distance: str) -> None:
    s = torch.randn(4, 3, 5, requires_grad=True)  # feature maps are flattened per sample
    t = torch.randn(4, 3, 5)
    loss = psa_loss(s, t, torch.zeros(4, dtype=torch.bool), distance)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert s.grad is not None and torch.equal(s.grad, torch.zeros_like(s))


def test_psa_flattens_feature_maps_and_detaches_teacher() -> None:
    s = torch.randn(3, 4, 6, requires_grad=True)
    t = torch.randn(3, 4, 6, requires_grad=True)
    bona = torch.tensor([True, False, True])
    expected = psa_loss(s.reshape(3, -1), t.reshape(3, -1), bona, "l2")
    loss = psa_loss(s, t, bona, "l2")
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert t.grad is None and s.grad[1].abs().sum() == 0 and s.grad[0].abs().sum() > 0


def test_psa_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="distance"):
        psa_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, dtype=torch.bool), "l1")
    with pytest.raises(ValueError, match="shape"):
        psa_loss(torch.zeros(2, 2), torch.zeros(2, 3), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="entries"):
        psa_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(3, dtype=torch.bool))


# ---------------------------------------------------------------------- plugin


def make_dataset(x: torch.Tensor, y: torch.Tensor) -> TaskAwareSupervisedClassificationDataset:
    """Avalanche dataset with targets and task label 0: items ``(x, y, t)``."""
    return TaskAwareSupervisedClassificationDataset(
        [TensorDataset(x, y)],
        data_attributes=[
            DataAttribute(y.tolist(), "targets"),
            TaskLabels(ConstantSequence(0, len(y))),
        ],
    )


def random_benchmark(n_exp: int = 2, n: int = 24, no_bonafide: tuple[int, ...] = (), seed: int = 0):
    """Random waveforms; experience ``k`` holds spoofs only when ``k in no_bonafide``."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for k in range(n_exp):
        y = torch.zeros(n, dtype=torch.long) if k in no_bonafide else torch.arange(n) % 2
        x = 0.1 * torch.randn(n, LENGTH, generator=g) + 0.05 * (k + 1) * y[:, None]
        train.append(make_dataset(x, y))
        test.append(make_dataset(x[:8], y[:8]))
    return benchmark_from_datasets(train=train, test=test)


def state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class LossProbe(SupervisedPlugin):
    """Records ``strategy.loss`` in ``before_backward`` (placed before/after DFWF)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[int, float]] = []

    def before_backward(self, strategy, **kwargs) -> None:
        self.values.append((strategy.experience.current_experience, strategy.loss.item()))


class TeacherProbe(SupervisedPlugin):
    """Checks after every update that DFWF's teacher equals its state at experience start."""

    def __init__(self, dfwf: DFWFPlugin) -> None:
        super().__init__()
        self.dfwf = dfwf
        self.start: dict[str, torch.Tensor] | None = None
        self.checks = 0

    def before_training_exp(self, strategy, **kwargs) -> None:
        teacher = self.dfwf.teacher
        self.start = None if teacher is None else state_copy(teacher)

    def after_update(self, strategy, **kwargs) -> None:
        if self.start is not None:
            assert same_state(state_copy(self.dfwf.teacher), self.start)
            self.checks += 1


def make_strategy(model: nn.Module, plugins: list[SupervisedPlugin], epochs: int = 1) -> Naive:
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    return Naive(
        model=model,
        optimizer=opt,
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=8,
        eval_mb_size=8,
        train_epochs=epochs,
        device="cpu",
        plugins=plugins,
        evaluator=EvaluationPlugin(loggers=[]),
    )


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_teacher_frozen_during_experience_and_refreshed_after_it() -> None:
    torch.manual_seed(0)
    model = build_model("tiny")
    dfwf = DFWFPlugin(kd_weight=1.0, temperature=2.0, psa_weight=1.0)
    probe = TeacherProbe(dfwf)
    strategy = make_strategy(model, [dfwf, probe], epochs=2)
    bm = random_benchmark(2)

    assert dfwf.teacher is None and dfwf.state_dict() == {"teacher": None}
    strategy.train(bm.train_stream[0])
    teacher1 = dfwf.teacher
    assert teacher1 is not None and teacher1 is not model
    assert not teacher1.training and not any(p.requires_grad for p in teacher1.parameters())
    after1 = state_copy(teacher1)
    assert same_state(after1, state_copy(model))  # teacher = student at the end of exp 1
    assert no_hooks(model) and no_hooks(teacher1)

    strategy.train(bm.train_stream[1])
    assert probe.checks == 2 * 3  # 2 epochs x 3 mini-batches, teacher unchanged at each
    assert same_state(state_copy(teacher1), after1)  # the old teacher was never trained
    after2 = state_copy(dfwf.teacher)
    assert dfwf.teacher is not teacher1 and not same_state(after2, after1)
    assert same_state(after2, state_copy(model))
    assert no_hooks(model) and no_hooks(dfwf.teacher)
    # a deep copy of the model carries no hook, hence neither the plugin nor old teachers
    assert no_hooks(copy.deepcopy(model))


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_extra_loss_only_from_second_experience_on() -> None:
    torch.manual_seed(0)
    before, after = LossProbe(), LossProbe()
    dfwf = DFWFPlugin(kd_weight=1.0, temperature=2.0, psa_weight=1.0)
    strategy = make_strategy(build_model("tiny"), [before, dfwf, after])
    for exp in random_benchmark(3).train_stream:
        strategy.train(exp)
    diffs = [(e, a - b) for (e, b), (_, a) in zip(before.values, after.values, strict=True)]
    assert [d for e, d in diffs if e == 0] == [0.0] * 3
    later = [d for e, d in diffs if e > 0]
    assert len(later) == 6 and all(d > 0 for d in later)
    assert [h["active"] for h in dfwf.history] == [False, True, True]
    first, second = dfwf.history[0], dfwf.history[1]
    assert first["kd"] == first["psa"] == first["extra_loss"] == 0.0
    assert second["kd"] > 0 and second["psa"] > 0 and second["bonafide_seen"] == 12
    assert second["extra_loss"] == pytest.approx(second["kd"] + second["psa"], rel=1e-5)
    assert dfwf.warnings == []


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_experience_without_bona_fide_records_zero_psa(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    dfwf = DFWFPlugin(distance="l2")
    strategy = make_strategy(build_model("tiny"), [dfwf])
    bm = random_benchmark(2, no_bonafide=(1,))
    bm.train_stream[1].attack = "A99"
    with caplog.at_level(logging.WARNING, logger="cl_spoof.strategies.methods.dfwf.plugin"):
        for exp in bm.train_stream:
            strategy.train(exp)
    assert dfwf.history[1]["psa"] == 0.0 and dfwf.history[1]["bonafide_seen"] == 0
    assert dfwf.history[1]["kd"] > 0
    assert dfwf.warnings == ["experience 1 (attack A99) has no bona fide training samples: PSA = 0"]
    assert "no bona fide" in caplog.text


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_unknown_layer_is_a_config_error() -> None:
    strategy = make_strategy(build_model("tiny"), [DFWFPlugin(layers=("embeding",))])
    with pytest.raises(ConfigError, match="'embeding'.*did you mean 'embedding'"):
        strategy.train(random_benchmark(1).train_stream[0])
    with pytest.raises(ConfigError, match="its layers include: front"):
        resolve_layers(build_model("tiny"), ["nope"])


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_several_layers_including_conv_and_gru_outputs() -> None:
    torch.manual_seed(0)
    dfwf = DFWFPlugin(kd_weight=0.0, psa_weight=1.0, layers=("embedding", "blocks.1", "gru"))
    model = build_model("tiny")
    strategy = make_strategy(model, [dfwf])
    for exp in random_benchmark(2).train_stream:
        strategy.train(exp)
    assert dfwf.history[1]["psa"] > 0 and dfwf.history[1]["kd"] == 0.0
    assert no_hooks(model)


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_wrapped_model_and_teacher_state_round_trip() -> None:
    torch.manual_seed(0)
    model = nn.DataParallel(build_model("tiny"))  # on CPU it just calls the module
    dfwf = DFWFPlugin()
    strategy = make_strategy(model, [dfwf])
    for exp in random_benchmark(2).train_stream:
        strategy.train(exp)
    assert dfwf.history[1]["psa"] > 0
    state = dfwf.state_dict()
    restored = DFWFPlugin()
    restored.load_state_dict(state)
    assert restored.state_dict()["teacher"] is state["teacher"]  # pending until an experience
    restored.before_training_exp(SimpleNamespace(model=build_model("tiny"), device="cpu"))
    x = torch.randn(3, LENGTH)
    assert torch.equal(restored.teacher(x), dfwf.teacher(x))
    assert not restored.teacher.training
    restored.load_state_dict({"teacher": None})
    assert restored.teacher is None
    with pytest.raises(ConfigError, match="DFWFPlugin.state_dict"):
        restored.load_state_dict({"weights": 1})


@pytest.mark.filterwarnings("ignore:No loggers specified")
@pytest.mark.filterwarnings("ignore:Call to deprecated function update")
def test_composes_with_replay() -> None:
    torch.manual_seed(0)
    before, after = LossProbe(), LossProbe()
    dfwf = DFWFPlugin()
    model = build_model("tiny")
    strategy = Replay(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
        criterion=nn.CrossEntropyLoss(),
        mem_size=8,
        train_mb_size=8,
        eval_mb_size=8,
        train_epochs=1,
        device="cpu",
        plugins=[before, dfwf, after],
        evaluator=EvaluationPlugin(loggers=[]),
    )
    # experience 1 has no bona fide of its own, but replayed memory brings some
    for exp in random_benchmark(2, no_bonafide=(1,)).train_stream:
        strategy.train(exp)
    diffs = [a - b for (e, b), (_, a) in zip(before.values, after.values, strict=True) if e]
    assert diffs and all(d > 0 for d in diffs)
    assert dfwf.history[1]["bonafide_seen"] > 0 and dfwf.history[1]["psa"] > 0
    assert dfwf.warnings == []


def test_plugin_validates_settings() -> None:
    with pytest.raises(ConfigError, match="distance"):
        DFWFPlugin(distance="l1")
    with pytest.raises(ConfigError, match="temperature"):
        DFWFPlugin(temperature=0)
    with pytest.raises(ConfigError, match="layer"):
        DFWFPlugin(layers=())


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_default_layer_is_what_the_classifier_head_sees() -> None:
    # layers=None aligns the input of the last nn.Linear; on ResNetGRU that is exactly the
    # output of the `embedding` hook point, so both settings train identically.
    runs = []
    for layers in (None, ("embedding",)):
        torch.manual_seed(0)
        dfwf = DFWFPlugin(layers=layers)
        strategy = make_strategy(build_model("tiny"), [dfwf])
        for exp in random_benchmark(2).train_stream:
            strategy.train(exp)
        runs.append(dfwf.history[1])
    assert runs[0]["psa"] > 0
    assert runs[0] == runs[1]


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_works_on_any_classifier_without_cl_spoof_layers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(LENGTH, 16), nn.ReLU(), nn.Linear(16, 2))
    dfwf = DFWFPlugin()
    strategy = make_strategy(model, [dfwf])
    for exp in random_benchmark(2).train_stream:
        strategy.train(exp)
    assert dfwf.history[1]["psa"] > 0 and dfwf.history[1]["kd"] > 0
    # A named layer the model lacks is an error naming the plugin's own argument.
    bad = make_strategy(nn.Sequential(nn.Linear(LENGTH, 2)), [DFWFPlugin(layers=["embedding"])])
    with pytest.raises(ConfigError, match=r"DFWFPlugin\(layers=\.\.\.\): Sequential has no "
                                          "layer 'embedding'"):
        bad.train(random_benchmark(1).train_stream[0])
    with pytest.raises(ConfigError, match="has none"):  # nothing to align by default
        conv_only = nn.Sequential(nn.Unflatten(1, (1, LENGTH)), nn.Conv1d(1, 2, LENGTH),
                                  nn.Flatten())
        make_strategy(conv_only, [DFWFPlugin()]).train(random_benchmark(1).train_stream[0])


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_bonafide_class_chooses_the_aligned_samples() -> None:
    seen = {}
    for cls in (1, 0):
        torch.manual_seed(0)
        dfwf = DFWFPlugin(bonafide_class=cls)
        strategy = make_strategy(build_model("tiny"), [dfwf])
        for exp in random_benchmark(2, no_bonafide=(1,)).train_stream:  # exp 1: class 0 only
            strategy.train(exp)
        seen[cls] = (dfwf.history[1]["bonafide_seen"], dfwf.history[1]["psa"], dfwf.warnings)
    assert seen[1][0] == 0 and seen[1][1] == 0.0 and len(seen[1][2]) == 1
    assert seen[0][0] == 24 and seen[0][1] > 0 and seen[0][2] == []
    with pytest.raises(ConfigError, match="bonafide_class"):
        DFWFPlugin(bonafide_class=-1)


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_dfwf_strategy_class_equals_naive_with_the_plugin() -> None:
    bm = random_benchmark(2)
    histories, weights = [], []
    for use_class in (True, False):
        torch.manual_seed(0)
        model = build_model("tiny")
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        common = dict(model=model, optimizer=opt, train_mb_size=8, eval_mb_size=8,
                      train_epochs=1, device="cpu", evaluator=EvaluationPlugin(loggers=[]))
        if use_class:
            strategy = DFWF(kd_weight=1.0, psa_weight=2.0, **common)
            plugin = strategy.dfwf
            assert plugin in strategy.plugins
        else:
            plugin = DFWFPlugin(kd_weight=1.0, psa_weight=2.0)
            strategy = Naive(criterion=nn.CrossEntropyLoss(), plugins=[plugin], **common)
        for exp in bm.train_stream:
            strategy.train(exp)
        histories.append(plugin.history)
        weights.append(state_copy(model))
    assert histories[0] == histories[1] and histories[0][1]["psa"] > 0
    assert same_state(weights[0], weights[1])


# ---------------------------------------------------------------------- end to end


@pytest.mark.parametrize("strategy", ["dfwf", "dfwf+replay"])
def test_run_experiment_with_dfwf(tiny_corpus: Path, tmp_path: Path, strategy: str) -> None:
    cfg = config_from_dict(
        {
            "data": {"source": str(tiny_corpus), "num_samples": 4000, "test_split": "dev"},
            "model": {"preset": "tiny"},
            "train": {
                "epochs": 1,
                "batch_size": 8,
                "eval_batch_size": 16,
                "lr": 0.003,
                "threads": 1,
            },
            "strategy": {"name": strategy, "memory_size": 8},
            "seed": 0,
        }
    )
    out = tmp_path / "run"
    run_experiment(cfg, out)
    matrix = pd.read_csv(out / "eer_matrix.csv")
    assert list(matrix["trained_on"]) == ["T1", "T2"]
    assert matrix[["T1", "T2"]].notna().all().all()
