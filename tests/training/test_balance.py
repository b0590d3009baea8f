"""Attack-balanced training batches (train.balance: attack): every attack weighs alike
among the spoofs drawn, bona fide keeps its share, draws are reproducible, and the
combinations that cannot work are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.training import Naive
from torch import nn

from cl_spoof.benchmark.datasets import make_dataset
from cl_spoof.config import config_from_dict
from cl_spoof.data.cache import CachedWaveforms
from cl_spoof.errors import ConfigError
from cl_spoof.infra.context import RunContext
from cl_spoof.labels import BONAFIDE_CODE
from cl_spoof.training import BalancedBatches, balanced_weights
from cl_spoof.workflows.trainer import Trainer

N = 400
LABELS = ["bonafide"] * 12 + ["spoof"] * 28
ATTACKS = ["-"] * 12 + ["big"] * 24 + ["small"] * 4


def test_every_attack_gets_an_equal_part_of_the_spoof_weight() -> None:
    codes = np.array([BONAFIDE_CODE] * 2 + [0] * 4 + [1])
    w = balanced_weights(codes)
    assert w.tolist() == [1.0, 1.0, 0.625, 0.625, 0.625, 0.625, 2.5]
    assert w[2:6].sum() == w[6] == 2.5 and w[2:].sum() == 5  # spoofs keep their mass
    assert balanced_weights(np.array([BONAFIDE_CODE] * 3)).tolist() == [1.0] * 3


class _Rows(nn.Module):
    """Records the table row of every training clip (its first sample encodes it)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.rows += [int(round(v)) for v in (x[:, 0] * 32767 / 100).tolist()]
        return self.head(x[:, :1])


def _drawn_rows(balanced: bool, epochs: int = 40) -> list[int]:
    clips = np.zeros((len(LABELS), N), dtype=np.int16)
    clips[:, 0] = np.arange(len(LABELS)) * 100  # row k starts with the value 100 k
    view = CachedWaveforms(data=clips, lengths=np.full(len(LABELS), N))
    table = pd.DataFrame({"label": LABELS, "attack": ATTACKS})
    rows = np.arange(len(LABELS))
    bm = benchmark_from_datasets(train=[make_dataset(table, view, rows, N, True)],
                                 test=[make_dataset(table, view, rows, N, False)])
    model = _Rows()
    torch.manual_seed(0)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=8, train_epochs=epochs,
                     eval_mb_size=8, device="cpu",
                     plugins=[BalancedBatches()] if balanced else [])
    strategy.train(bm.train_stream[0])
    return model.rows


def test_balanced_batches_draw_every_attack_alike_and_keep_the_bonafide_share() -> None:
    drawn = np.array(_drawn_rows(balanced=True))
    assert len(drawn) == 40 * len(LABELS)  # an epoch is as long as without balancing
    attack = np.array(ATTACKS)[drawn]
    spoofs = attack[attack != "-"]
    assert 0.45 < (spoofs == "small").mean() < 0.55  # 4 of 28 spoofs, drawn half the time
    assert 0.25 < (attack == "-").mean() < 0.35  # bona fide: 12 of 40, as without
    plain = np.array(ATTACKS)[np.array(_drawn_rows(balanced=False))]
    assert (plain[plain != "-"] == "small").mean() == pytest.approx(4 / 28)
    assert _drawn_rows(balanced=True, epochs=3) == drawn[:3 * len(LABELS)].tolist()


def test_balance_is_refused_with_replay_and_checked_as_a_choice(tiny_corpus: Path) -> None:
    cfg = config_from_dict({"data": {"source": str(tiny_corpus), "num_samples": 4000},
                            "model": {"preset": "tiny"}, "strategy": {"name": "replay"},
                            "train": {"balance": "attack"}})
    with pytest.raises(ConfigError, match="train.balance: attack replaces the training "
                                          "loader, which replay draws from its memory too"):
        Trainer.build(cfg, RunContext.local("cpu"))
    with pytest.raises(ConfigError, match="train.balance must be one of none, attack"):
        config_from_dict({"train": {"balance": "family"}})
