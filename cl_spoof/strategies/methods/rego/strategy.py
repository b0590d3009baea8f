"""The ``RegO`` strategy class, in the shape of Avalanche's ``LwF(SupervisedTemplate)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_spoof.strategies.methods.rego.plugin import RegOPlugin

if TYPE_CHECKING:
    from cl_spoof.infra.context import RunContext

__all__ = ["RegO"]


class RegO(SupervisedTemplate):
    """Region-based optimization: fine-tuning plus :class:`RegOPlugin`.

    The RegO arguments (``layers`` ... ``ctx``) are those of :class:`RegOPlugin`;
    everything else is passed to Avalanche's ``SupervisedTemplate`` (``train_mb_size``,
    ``train_epochs``, ``eval_mb_size``, ``device``, ``evaluator``, ...). The plugin is
    appended after the given ``plugins`` and is reachable as ``strategy.rego``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Any = None,
        layers: Sequence[str] = ("*",),
        quantile: float = 0.75,
        release: float = 0.1,
        reference: str = "previous_step",
        bonafide_class: int = 1,
        ctx: RunContext | None = None,
        plugins: Sequence[SupervisedPlugin] | None = None,
        **base_kwargs: Any,
    ) -> None:
        self.rego = RegOPlugin(layers=layers, quantile=quantile, release=release,
                               reference=reference, bonafide_class=bonafide_class, ctx=ctx)
        super().__init__(model=model, optimizer=optimizer,
                         criterion=nn.CrossEntropyLoss() if criterion is None else criterion,
                         plugins=[*(plugins or []), self.rego], **base_kwargs)
