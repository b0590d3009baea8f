"""Class-weighted cross-entropy (``train.class_weighted_loss``): bona fide is usually
the minority class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from cl_spoof.labels import BONAFIDE_TARGET, SPOOF_TARGET

__all__ = ["ClassWeightedLoss", "class_weights"]


def class_weights(targets: Sequence[int]) -> torch.Tensor:
    """Inverse-frequency weights ``n / (2 n_c)`` for (spoof, bona fide classes).

    A class absent from ``targets`` gets weight 1 (it contributes no loss anyway),
    so an experience without bona fide trains instead of crashing.
    """
    t = np.asarray(targets)
    if t.size == 0:
        raise ValueError("a training experience has no samples")
    counts = np.array([(t == SPOOF_TARGET).sum(), (t == BONAFIDE_TARGET).sum()], dtype=np.float64)
    weights = np.where(counts > 0, len(t) / (2.0 * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


class ClassWeightedLoss(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Class-weighted cross-entropy, weights from each experience's training counts.

    Set in ``before_training_exp`` (after dataset adaptation, so Cumulative's
    growing dataset counts). Bona fide is usually the minority class.
    """

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        weights = class_weights(list(strategy.adapted_dataset.targets))
        strategy._criterion = nn.CrossEntropyLoss(weight=weights.to(strategy.device))
