"""Plugins every cl-spoof strategy can get: class-weighted loss, bfloat16 autocast,
the learning-rate schedule and freezing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from cl_spoof.labels import BONAFIDE_TARGET, SPOOF_TARGET
from cl_spoof.strategies.layers import matches, select

__all__ = ["Autocast", "ClassWeightedLoss", "FreezePlugin", "LRSchedule", "class_weights",
           "lr_factor"]


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


class Autocast(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """bfloat16 autocast around every forward pass (training and evaluation).

    The logits are cast back to float32 so losses and metrics see full precision.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device_type = device.type
        self._ctx: torch.autocast | None = None

    def _enter(self) -> None:
        self._ctx = torch.autocast(self.device_type, dtype=torch.bfloat16)
        self._ctx.__enter__()

    def _exit(self, strategy: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
        strategy.mb_output = strategy.mb_output.float()

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._enter()

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._exit(strategy)

    def before_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._enter()

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._exit(strategy)


def _stay_in_eval(module: nn.Module, inputs: Any) -> None:
    """Forward pre-hook of a frozen BatchNorm layer: evaluation mode, whatever was set."""
    module.training = False


class FreezePlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Freeze-and-learn (Salvi et al., ICASSP 2025): after the first experience, only the
    layers named by ``trainable`` keep learning.

    ``trainable`` holds fnmatch-style patterns of parameter or module names
    (``"front"``, ``"blocks.0"``, ``"head.*"``); every other parameter stops
    receiving gradients (``requires_grad = False``), so the optimizer leaves it
    bit-identical. A BatchNorm layer none of whose parameters learns is frozen
    whole: a forward pre-hook keeps it in evaluation mode during training (also
    through other plugins' extra passes, which set the model to training mode),
    so its running statistics do not drift either and the frozen part of the
    network computes exactly what it did. The first experience trains everything.
    Works with any strategy (its regularisers see no gradient for frozen
    parameters). Put it before a data-parallel plugin, which must see the final
    set of trainable parameters.
    """

    def __init__(self, trainable: tuple[str, ...] | list[str],
                 key: str = "FreezePlugin(trainable=...)") -> None:
        super().__init__()
        self.trainable = tuple(trainable)
        self.key = key
        self._handles: list[Any] = []

    def check(self, model: nn.Module) -> None:
        """Raise :class:`ConfigError` naming the key for a pattern that matches no layer."""
        select([n for n, _ in model.named_parameters()], self.trainable, self.key)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """From the second experience on, freeze every parameter the patterns do not name."""
        self._release()
        if int(strategy.clock.train_exp_counter) == 0:
            return
        model = strategy.model
        self.check(model)
        for name, param in model.named_parameters():
            learn = any(matches(name, p) for p in self.trainable)
            param.requires_grad_(learn)
            if not learn:
                param.grad = None
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                own = list(module.parameters(recurse=False))
                learns = any(p.requires_grad for p in own) if own else \
                    any(matches(name, p) for p in self.trainable)
                if not learns:
                    module.eval()
                    self._handles.append(module.register_forward_pre_hook(_stay_in_eval))

    def after_training(self, strategy: Any, **kwargs: Any) -> None:
        """Remove the hooks once every plugin's end-of-experience work is done."""
        self._release()

    def _release(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


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
