"""Tests for ``EERPluginMetric`` on a real (tiny) Avalanche run."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.generic_scenario import CLScenario
from avalanche.benchmarks.utils import DataAttribute
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from avalanche.benchmarks.utils.data_attribute import TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.evaluation import PluginMetric
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.supervised import Naive
from torch import nn
from torch.utils.data import TensorDataset

from cl_spoof.metrics import compute_eer, eer_per_attack
from cl_spoof.metrics.plugin import EERPluginMetric, eer_metrics, logits_to_scores

torch.set_num_threads(1)

DIM = 400


def make_dataset(x: torch.Tensor, y: torch.Tensor) -> TaskAwareSupervisedClassificationDataset:
    """Avalanche dataset from tensors with targets and task label 0: items ``(x, y, t)``."""
    n = len(y)
    return TaskAwareSupervisedClassificationDataset(
        [TensorDataset(x, y)],
        data_attributes=[
            DataAttribute(y.tolist(), "targets"),
            TaskLabels(ConstantSequence(0, n)),
        ],
    )


def toy_split(
    n: int, shift: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Half bona fide (target 1, mean +shift), half spoof (target 0, mean -shift)."""
    y = (torch.arange(n) % 2).long()
    x = torch.randn(n, DIM, generator=generator)
    x[:, :20] += shift * (2.0 * y[:, None].float() - 1.0)
    return x, y


def build_benchmark(attacks: Sequence[str], shift: float = 1.5, seed: int = 0) -> CLScenario:
    """Two-class benchmark: one train and one test experience per attack."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for _ in attacks:
        train.append(make_dataset(*toy_split(64, shift, g)))
        test.append(make_dataset(*toy_split(40, shift, g)))
    bench = benchmark_from_datasets(train=train, test=test)
    for stream in (bench.train_stream, bench.test_stream):
        for exp, attack in zip(stream, attacks, strict=True):
            exp.attack = attack
            exp.utt_ids = [f"{attack}_{i:04d}" for i in range(len(exp.dataset))]
    return bench


def make_strategy(metric_list: list[PluginMetric], eval_every: int = -1) -> Naive:
    """Naive strategy with a linear model and no loggers."""
    torch.manual_seed(0)
    model = nn.Linear(DIM, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No loggers specified"
        evaluator = EvaluationPlugin(*metric_list, loggers=[])
    return Naive(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=16,
        train_epochs=3,
        eval_mb_size=16,
        evaluator=evaluator,
        eval_every=eval_every,
    )


def test_logits_to_scores() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.5, -0.5]])
    assert torch.equal(logits_to_scores(logits), torch.tensor([2.0, -2.0]))
    with pytest.raises(ValueError, match="batch, 2"):
        logits_to_scores(torch.zeros(3, 3))


def test_factory_returns_plugin_metric() -> None:
    metrics = eer_metrics()
    assert len(metrics) == 1 and isinstance(metrics[0], EERPluginMetric)
    assert str(metrics[0]) == "EER_Exp"


def test_eer_matrix_on_tiny_avalanche_run() -> None:
    bench = build_benchmark(["A01", "A02"])
    metric = EERPluginMetric()
    strategy = make_strategy([metric])
    for exp in bench.train_stream:
        strategy.train(exp)
        strategy.eval(bench.test_stream)

    matrix = metric.eer_matrix()
    assert matrix.shape == (2, 2)
    assert list(matrix.index) == [0, 1]
    assert list(matrix.columns) == ["A01", "A02"]
    assert matrix.to_numpy().max() < 10.0, matrix  # separable toy problem

    # Emitted values follow Avalanche's naming and match the stored matrix.
    emitted = strategy.evaluator.get_all_metrics()
    _, values = emitted["EER_Exp/eval_phase/test_stream/Exp001"]
    assert values == pytest.approx(list(matrix["A02"]))

    # Stored scores are complete, aligned with utt ids and reproduce the EER.
    rec = metric.results[1]["A02"]
    assert rec.stage == 1 and rec.exp_id == 1
    assert len(rec.scores) == len(rec.targets) == len(rec.utt_ids or []) == 40
    assert rec.utt_ids is not None and rec.utt_ids[0] == "A02_0000"
    eer, thr = compute_eer(rec.scores[rec.targets == 1], rec.scores[rec.targets == 0])
    assert rec.eer == pytest.approx(100 * eer) and rec.threshold == thr
    frame = rec.to_frame()
    assert set(frame["attack"]) == {"-", "A02"}
    assert eer_per_attack(frame)["A02"] == pytest.approx(rec.eer / 100)

    # Scores equal the model's logit difference on the test data, in order.
    x = torch.stack([bench.test_stream[1].dataset[i][0] for i in range(40)])
    with torch.no_grad():
        expected = logits_to_scores(strategy.model(x)).double().numpy()
    np.testing.assert_allclose(rec.scores, expected, rtol=1e-5, atol=1e-6)


def test_eval_before_training_is_stage_minus_one_and_periodic_eval_stage() -> None:
    bench = build_benchmark(["A01", "A02"], seed=1)
    metric = EERPluginMetric()
    strategy = make_strategy([metric], eval_every=1)
    strategy.eval(bench.test_stream)
    strategy.train(bench.train_stream[0], eval_streams=[bench.test_stream])
    assert sorted(metric.results) == [-1, 0]
    assert list(metric.eer_matrix().index) == [-1, 0]


def test_utt_id_count_mismatch_raises() -> None:
    bench = build_benchmark(["A01"], seed=2)
    bench.test_stream[0].utt_ids = ["only_one"]
    strategy = make_strategy([EERPluginMetric()])
    with pytest.raises(ValueError, match="utt_ids"):
        strategy.eval(bench.test_stream)


def test_single_class_experience_gives_nan() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = toy_split(20, 1.0, g)
    keep = y == 0
    bench = benchmark_from_datasets(
        train=[make_dataset(x, y)], test=[make_dataset(x[keep], y[keep])]
    )
    metric = EERPluginMetric()
    strategy = make_strategy([metric])
    strategy.eval(bench.test_stream)
    assert np.isnan(metric.eer_matrix().iloc[0, 0])
    assert metric.eer_matrix().columns[0] == "Exp000"
