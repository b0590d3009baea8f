"""Self-distillation losses (Xue et al., ICASSP 2023, in the BYOT form of Zhang et al. 2019).

The deepest exit (the model's own head) teaches the exits that
:func:`~cl_spoof.models.exits.attach_exits` adds after the shallow segments:

- **hard**: cross-entropy of every shallow exit against the labels (the deepest
  exit's cross-entropy is the strategy's own loss);
- **soft**: ``T² · KL(softmax(z_deep / T) ‖ softmax(z_i / T))`` for every shallow exit
  (:func:`~cl_spoof.strategies.methods.dfwf.regularization.kd_loss`);
- **feature**: mean squared difference between each shallow exit's aligned features
  and the deepest embedding.

The deepest exit's logits and features are detached in the soft and feature terms:
the teacher is not pulled towards its students. Each term is summed over the shallow
exits (the paper's Σ_i). Pure functions of tensors; the plugin that calls them is
:class:`~cl_spoof.strategies.methods.self_distillation.plugin.SelfDistillationPlugin`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cl_spoof.strategies.methods.dfwf.regularization import kd_loss

__all__ = ["SelfDistillationLoss", "feature_loss", "self_distillation_loss"]


def feature_loss(shallow: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
    """Mean over batch and features of ``(shallow - deep)²``; ``deep`` is detached."""
    if shallow.shape != deep.shape:
        raise ValueError(f"shallow and deep features must have the same shape; got "
                         f"{tuple(shallow.shape)} and {tuple(deep.shape)}")
    return (shallow.float() - deep.detach().float()).pow(2).mean()


@dataclass
class SelfDistillationLoss:
    """The weighted total and its three unweighted sums (for logs)."""

    total: torch.Tensor
    hard: torch.Tensor
    soft: torch.Tensor
    feature: torch.Tensor


def self_distillation_loss(
    exit_logits: Sequence[torch.Tensor],
    exit_features: Sequence[torch.Tensor],
    deep_logits: torch.Tensor,
    deep_features: torch.Tensor,
    targets: torch.Tensor,
    *,
    hard_weight: float,
    soft_weight: float,
    feature_weight: float,
    temperature: float,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> SelfDistillationLoss:
    """``hard_weight · Σ CE + soft_weight · Σ KL·T² + feature_weight · Σ MSE`` over the
    shallow exits. ``criterion(logits, targets)`` is the hard loss (pass the strategy's
    class-weighted cross-entropy so every exit weighs classes alike)."""
    if len(exit_logits) != len(exit_features) or not exit_logits:
        raise ValueError("need the logits and the features of at least one shallow exit")
    zero = deep_logits.new_zeros((), dtype=torch.float32)
    hard, soft, feat = zero, zero, zero
    teacher = deep_logits.detach().float()
    for logits, features in zip(exit_logits, exit_features, strict=True):
        logits = logits.float()
        if hard_weight > 0:
            hard = hard + criterion(logits, targets)
        if soft_weight > 0:
            soft = soft + kd_loss(logits, teacher, temperature)
        if feature_weight > 0:
            feat = feat + feature_loss(features, deep_features)
    total = hard_weight * hard + soft_weight * soft + feature_weight * feat
    return SelfDistillationLoss(total=total, hard=hard, soft=soft, feature=feat)
