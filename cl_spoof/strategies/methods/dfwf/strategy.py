"""The ``DFWF`` strategy class, in the shape of Avalanche's ``LwF(SupervisedTemplate)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_spoof.strategies.methods.dfwf.plugin import DFWFPlugin

__all__ = ["DFWF"]


class DFWF(SupervisedTemplate):
    """Detecting Fake Without Forgetting: fine-tuning plus :class:`DFWFPlugin`.

    The DFWF arguments are those of :class:`DFWFPlugin`; everything else is passed to
    Avalanche's ``SupervisedTemplate`` (``train_mb_size``, ``train_epochs``,
    ``eval_mb_size``, ``device``, ``evaluator``, ``eval_every``, ...). The plugin is
    appended after the given ``plugins`` and is reachable as ``strategy.dfwf``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Any = None,
        kd_weight: float = 1.0,
        temperature: float = 2.0,
        psa_weight: float = 1.0,
        distance: str = "cosine",
        layers: Sequence[str] | None = None,
        bonafide_class: int = 1,
        plugins: Sequence[SupervisedPlugin] | None = None,
        **base_kwargs: Any,
    ) -> None:
        self.dfwf = DFWFPlugin(kd_weight=kd_weight, temperature=temperature,
                               psa_weight=psa_weight, distance=distance, layers=layers,
                               bonafide_class=bonafide_class)
        super().__init__(model=model, optimizer=optimizer,
                         criterion=nn.CrossEntropyLoss() if criterion is None else criterion,
                         plugins=[*(plugins or []), self.dfwf], **base_kwargs)
