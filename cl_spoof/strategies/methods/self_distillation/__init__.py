"""Self-distillation (Xue et al., ICASSP 2023): the deepest exit teaches shallow ones.

- :mod:`.losses`: the hard, soft and feature losses (pure functions of tensors);
- :mod:`.plugin`: ``SelfDistillationPlugin``, which adds them to any strategy's loss.

No strategy of its own: the :class:`~cl_spoof.workflows.trainer.Trainer` adds the
plugin to whichever strategy runs when ``model.self_distillation.enabled`` is set
(:func:`cl_spoof.models.exits.attach_exits` gives the model its exits). Its state is
the model's (the exits are model weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cl_spoof.strategies.spec import StrategySpec

__all__ = ["SPECS"]

#: Not a strategy: attached to every strategy by ``model.self_distillation``.
SPECS: tuple[StrategySpec, ...] = ()
