"""RegO: region-based optimization (Chen et al., AAAI 2025).

- :mod:`.regions`: the math (Fisher masks as bits, regions, Ebbinghaus release,
  the gradient of each region);
- :mod:`.plugin`: ``RegOPlugin`` for any Avalanche strategy, and its checkpoint state;
- :mod:`.strategy`: the ``RegO`` strategy class.

This module holds the registry entry ``rego``; it stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cl_spoof.labels import BONAFIDE_TARGET
from cl_spoof.strategies.spec import (
    NAMES_RULE,
    NON_NEGATIVE,
    BuildArgs,
    HyperParameter,
    Rule,
    StrategySpec,
    one_of,
)

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

    from cl_spoof.strategies.state import StateAdapter

__all__ = ["REGO_PARAMS", "SPECS"]

REGO_PARAMS = (
    HyperParameter("rego_layers", ("*",), "parameter/module-name patterns RegO acts on",
                   NAMES_RULE),
    HyperParameter("rego_quantile", 0.75, "entries above this Fisher quantile of their "
                   "tensor are important", Rule("must be in [0, 1)", lambda v: 0 <= v < 1)),
    HyperParameter("rego_release", 0.1, "Ebbinghaus threshold below which old importance "
                   "is released", NON_NEGATIVE),
    HyperParameter("rego_reference", "previous_step", "reference gradient: the previous "
                   "step's, or the mean of the last finished experience",
                   one_of("previous_step", "old_task")),
)


def _rego(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.layers import select
    from cl_spoof.strategies.methods.rego.strategy import RegO

    s = a.cfg.strategy
    select([n for n, _ in a.model.named_parameters()], s.rego_layers, "strategy.rego_layers")
    return RegO(layers=s.rego_layers, quantile=s.rego_quantile, release=s.rego_release,
                reference=s.rego_reference, bonafide_class=BONAFIDE_TARGET, ctx=a.ctx,
                **a.common())


def _state() -> tuple[StateAdapter, ...]:
    from cl_spoof.strategies.methods.rego.plugin import STATE

    return (STATE,)


SPECS = (
    StrategySpec("rego", "Region-Based Optimization (Chen et al., AAAI 2025): per-entry "
                 "Fisher regions, parallel / orthogonal / mixed updates", "no", _rego,
                 REGO_PARAMS, state=_state, needs_own_run=True),
)
