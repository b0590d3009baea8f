"""Orthogonal weight modification for fake-audio detection: RAWM and RWM.

Both share OWM's projector onto the complement of the old input space:

- :mod:`.projection`: the math (projector, ``P + β Q``, each method's ``β``, the
  stored input space);
- :mod:`.plugin`: ``RAWMPlugin`` and ``RWMPlugin`` for any Avalanche strategy, and
  their checkpoint state;
- :mod:`.strategy`: the ``RAWM`` and ``RWM`` strategy classes.

This module holds the registry entries ``rawm`` and ``rwm``; it stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cl_spoof.labels import BONAFIDE_TARGET
from cl_spoof.strategies.spec import (
    NAMES_RULE,
    NON_NEGATIVE,
    POSITIVE,
    BuildArgs,
    HyperParameter,
    StrategySpec,
    one_of,
)

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

    from cl_spoof.strategies.state import StateAdapter

__all__ = ["OWM_PARAMS", "SPECS"]

#: Shared by rawm and rwm.
OWM_PARAMS = (
    HyperParameter("owm_layers", ("*",), "module-name patterns of the layers whose weights "
                   "are projected (nn.Linear, nn.Conv1d, nn.GRU input weights)", NAMES_RULE),
    HyperParameter("owm_alpha", 1e-3, "ridge α of the projector, relative to the mean input "
                   "energy (smaller: stricter)", POSITIVE),
    HyperParameter("owm_target", "update", "what is projected: the optimizer's update, or "
                   "the gradient (as the papers, which assume SGD)",
                   one_of("update", "gradient")),
    HyperParameter("owm_beta_max", 10.0, "upper clamp of β, the weight of the old input space",
                   NON_NEGATIVE),
)


def _owm_args(a: BuildArgs) -> dict[str, Any]:
    from cl_spoof.strategies.layers import weight_layers

    s = a.cfg.strategy
    weight_layers(a.model, s.owm_layers, "strategy.owm_layers")  # fail before training
    return dict(layers=s.owm_layers, alpha=s.owm_alpha, target=s.owm_target,
                beta_max=s.owm_beta_max, bonafide_class=BONAFIDE_TARGET, ctx=a.ctx)


def _rawm(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.methods.owm.strategy import RAWM

    return RAWM(**_owm_args(a), beta=a.cfg.strategy.rawm_beta, **a.common())


def _rwm(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.methods.owm.strategy import RWM

    return RWM(**_owm_args(a), compact_class=a.cfg.strategy.rwm_compact_class, **a.common())


def _rawm_state() -> tuple[StateAdapter, ...]:
    from cl_spoof.strategies.methods.owm.plugin import RAWM_STATE

    return (RAWM_STATE,)


def _rwm_state() -> tuple[StateAdapter, ...]:
    from cl_spoof.strategies.methods.owm.plugin import RWM_STATE

    return (RWM_STATE,)


SPECS = (
    StrategySpec("rawm", "Regularized Adaptive Weight Modification (Zhang et al., ICML 2023): "
                 "updates projected off the old input space, β = genuine share", "no", _rawm,
                 (*OWM_PARAMS, HyperParameter("rawm_beta", "share", "β from the batch: "
                                              "genuine share, or (n_gen+1)/(n_fake+1)",
                                              one_of("share", "ratio"))),
                 state=_rawm_state, needs_own_run=True),
    StrategySpec("rwm", "Radian Weight Modification (Zhang et al., AAAI 2024): as RAWM, "
                 "β = tan of a radian set by the compact and the spread class", "no", _rwm,
                 (*OWM_PARAMS, HyperParameter("rwm_compact_class", "bonafide", "the class "
                                              "whose updates may move in the old space",
                                              one_of("bonafide", "spoof", "auto"))),
                 state=_rwm_state, needs_own_run=True),
)
