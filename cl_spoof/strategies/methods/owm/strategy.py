"""The ``RAWM`` and ``RWM`` strategy classes, in the shape of Avalanche's
``LwF(SupervisedTemplate)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_spoof.strategies.methods.owm.plugin import RAWMPlugin, RWMPlugin

if TYPE_CHECKING:
    from cl_spoof.infra.context import RunContext

__all__ = ["RAWM", "RWM"]


class RAWM(SupervisedTemplate):
    """Regularized Adaptive Weight Modification: fine-tuning plus :class:`RAWMPlugin`.

    The RAWM arguments (``layers`` ... ``ctx``) are those of :class:`RAWMPlugin`;
    everything else is passed to Avalanche's ``SupervisedTemplate`` (``train_mb_size``,
    ``train_epochs``, ``eval_mb_size``, ``device``, ``evaluator``, ...). The plugin is
    appended after the given ``plugins`` and is reachable as ``strategy.rawm``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Any = None,
        layers: Sequence[str] = ("*",),
        alpha: float = 1e-3,
        target: str = "update",
        beta: str = "share",
        beta_max: float = 10.0,
        bonafide_class: int = 1,
        ctx: RunContext | None = None,
        plugins: Sequence[SupervisedPlugin] | None = None,
        **base_kwargs: Any,
    ) -> None:
        self.rawm = RAWMPlugin(layers=layers, alpha=alpha, target=target, beta=beta,
                               beta_max=beta_max, bonafide_class=bonafide_class, ctx=ctx)
        super().__init__(model=model, optimizer=optimizer,
                         criterion=nn.CrossEntropyLoss() if criterion is None else criterion,
                         plugins=[*(plugins or []), self.rawm], **base_kwargs)


class RWM(SupervisedTemplate):
    """Radian Weight Modification: fine-tuning plus :class:`RWMPlugin`.

    Arguments as :class:`RAWM`, with ``compact_class`` instead of ``beta`` (see
    :class:`RWMPlugin`); the plugin is reachable as ``strategy.rwm``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Any = None,
        layers: Sequence[str] = ("*",),
        alpha: float = 1e-3,
        target: str = "update",
        compact_class: str = "bonafide",
        beta_max: float = 10.0,
        bonafide_class: int = 1,
        ctx: RunContext | None = None,
        plugins: Sequence[SupervisedPlugin] | None = None,
        **base_kwargs: Any,
    ) -> None:
        self.rwm = RWMPlugin(layers=layers, alpha=alpha, target=target,
                             compact_class=compact_class, beta_max=beta_max,
                             bonafide_class=bonafide_class, ctx=ctx)
        super().__init__(model=model, optimizer=optimizer,
                         criterion=nn.CrossEntropyLoss() if criterion is None else criterion,
                         plugins=[*(plugins or []), self.rwm], **base_kwargs)
