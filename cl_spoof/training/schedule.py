"""The learning-rate schedule (``train.lr_schedule``), restarted with every experience."""

from __future__ import annotations

import math
from typing import Any

from avalanche.core import SupervisedPlugin

__all__ = ["LRSchedule", "lr_factor"]


def lr_factor(kind: str, step: int, total_steps: int, warmup_steps: int = 0,
              final: float = 0.01, gamma: float = 0.95, steps_per_epoch: int = 1) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    ``constant``: 1. ``cosine``: linear warm-up from 0.1 over ``warmup_steps``, then
    half-cosine decay to ``final`` at ``total_steps``. ``exponential``: the same
    warm-up, then ``gamma ** (epochs since the warm-up)``, counted in fractional
    epochs so the rate falls smoothly step by step.
    """
    if kind == "constant":
        return 1.0
    if step < warmup_steps:
        return 0.1 + 0.9 * step / warmup_steps
    if kind == "cosine":
        done = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * done))
    if kind == "exponential":
        return float(gamma ** ((step - warmup_steps) / max(1, steps_per_epoch)))
    raise ValueError(f"unknown learning-rate schedule {kind!r}")


class LRSchedule(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Sets the learning rate before every training step (``train.lr_schedule``).

    The schedule restarts with every experience (a fresh warm-up and decay over that
    experience's epochs), so a resumed run, which starts at an experience boundary,
    follows the same rates. It overwrites the optimizer's rate each step from the
    base rate ``lr``, so no scheduler state needs saving.
    """

    def __init__(self, kind: str, lr: float, warmup_epochs: float = 0.0,
                 final: float = 0.01, gamma: float = 0.95) -> None:
        super().__init__()
        self.kind, self.lr, self.warmup_epochs = kind, lr, warmup_epochs
        self.final, self.gamma = final, gamma
        self._step = self._total = self._warmup = 0
        self._per_epoch = 1

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._per_epoch = max(1, len(strategy.dataloader))
        self._total = self._per_epoch * strategy.train_epochs
        self._warmup = min(self._total, int(round(self.warmup_epochs * self._per_epoch)))
        self._step = 0

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        factor = lr_factor(self.kind, self._step, self._total, self._warmup, self.final,
                           self.gamma, self._per_epoch)
        for group in strategy.optimizer.param_groups:
            group["lr"] = self.lr * factor
        self._step += 1
