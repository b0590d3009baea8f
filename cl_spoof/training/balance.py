"""Attack-balanced training batches (``train.balance: attack``).

Real sets are lopsided: a TTS system may bring 270 training spoofs and a vocoder 25.
Shuffled once per epoch, an experience that holds both (joint training, a family of
systems) learns mostly the large systems. :class:`BalancedBatches` replaces the
strategy's training loader at the start of every experience by one that draws
``len(dataset)`` clips per epoch with replacement, each spoof with probability
proportional to ``1 / (its attack's count)`` so that every attack carries the same
share of the spoof mass; bona fide keeps the share of the data it has (the class
balance is then ``train.class_weighted_loss``'s business, as without this). Which
attack a clip is comes from the dataset's ``attack_codes`` data attribute
(:func:`cl_spoof.benchmark.datasets.make_dataset`), so it survives Avalanche's
subsets and concatenations. Draws come from a generator seeded from the global RNG,
which every stage reseeds: a resumed run draws what an uninterrupted one drew.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from torch.utils.data import DataLoader, WeightedRandomSampler

from cl_spoof.labels import BONAFIDE_CODE

__all__ = ["BalancedBatches", "balanced_weights"]


def balanced_weights(codes: np.ndarray) -> np.ndarray:
    """Sampling weight of every clip: bona fide (``BONAFIDE_CODE``) 1; a spoof
    ``n_spoof / (n_attacks * n_its_attack)``, so the spoofs keep their total weight and
    every attack gets an equal part of it."""
    codes = np.asarray(codes)
    weights = np.ones(len(codes), dtype=np.float64)
    spoof = codes != BONAFIDE_CODE
    if spoof.any():
        attacks, inverse, counts = np.unique(codes[spoof], return_inverse=True,
                                             return_counts=True)
        weights[spoof] = spoof.sum() / (len(attacks) * counts[inverse])
    return weights


class BalancedBatches(SupervisedPlugin):
    """Training batches drawn attack-balanced (module docstring)."""

    def __init__(self, workers: int = 0) -> None:
        super().__init__()
        self.workers = workers

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        dataset = strategy.adapted_dataset
        codes = np.asarray(list(dataset.attack_codes), dtype=np.int64)
        generator = torch.Generator()
        generator.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        sampler = WeightedRandomSampler(balanced_weights(codes).tolist(),
                                        num_samples=len(codes), replacement=True,
                                        generator=generator)
        strategy.dataloader = DataLoader(
            dataset, batch_size=strategy.train_mb_size, sampler=sampler,
            num_workers=self.workers, collate_fn=dataset.collate_fn,
            persistent_workers=self.workers > 0)
