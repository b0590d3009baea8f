"""DFWF in a plain Avalanche script: your model, your benchmark, cl-spoof's plugin.

Runs in a few seconds on random data::

    python examples/dfwf_in_your_avalanche_script.py

Nothing of cl-spoof's data pipeline, models or workflows is needed: ``DFWFPlugin``
works with any classifier whose forward returns logits. By default it aligns
what the model's last ``nn.Linear`` (its classifier head) receives, for the
samples of ``bonafide_class``; name other layers with ``layers=[...]``.
"""

from __future__ import annotations

import warnings

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils import DataAttribute
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from avalanche.benchmarks.utils.data_attribute import TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import TensorDataset

from cl_spoof.strategies import DFWFPlugin

BONAFIDE = 1  # class index of genuine speech in this toy problem


def toy_experience(k: int, n: int = 64, dim: int = 40) -> TaskAwareSupervisedClassificationDataset:
    """Experience ``k``: bona fide around one centre, this attack's spoofs around another."""
    g = torch.Generator().manual_seed(k)
    y = torch.arange(n) % 2
    x = torch.randn(n, dim, generator=g)
    x[y == BONAFIDE] += 1.0  # genuine speech looks alike in every experience
    x[y != BONAFIDE, k % dim] -= 3.0  # each attack leaves its own artefact
    return TaskAwareSupervisedClassificationDataset(
        [TensorDataset(x, y)],
        data_attributes=[DataAttribute(y.tolist(), "targets"),
                         TaskLabels(ConstantSequence(0, n))])


def main() -> None:
    warnings.filterwarnings("ignore", "No loggers specified")
    torch.manual_seed(0)
    experiences = [toy_experience(k) for k in range(3)]
    benchmark = benchmark_from_datasets(train=experiences, test=experiences)
    model = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Linear(32, 2))
    dfwf = DFWFPlugin(kd_weight=1.0, psa_weight=1.0, bonafide_class=BONAFIDE)
    strategy = Naive(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
        criterion=nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=3, eval_mb_size=64,
        plugins=[dfwf],
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
    for exp in benchmark.train_stream:
        strategy.train(exp)
        results = strategy.eval(benchmark.test_stream)
        acc = [v for k, v in results.items() if k.startswith("Top1_Acc_Exp")]
        stats = dfwf.history[-1]
        print(f"after experience {exp.current_experience}: accuracy per experience "
              f"{[round(a, 2) for a in acc]}; DFWF active={stats['active']} "
              f"kd={stats['kd']:.4f} psa={stats['psa']:.4f}")


if __name__ == "__main__":
    main()
