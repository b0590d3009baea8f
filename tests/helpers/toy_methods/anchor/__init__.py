"""A toy continual method, ``anchor``: an L2 pull towards the weights after the previous
experience. It is what a new strategy is — one package next to the others in
``cl_spoof/strategies/methods/``, exposing ``SPECS``; the tests put this folder on that
package's path and the registry finds it."""

from __future__ import annotations

from cl_spoof.strategies.spec import AT_LEAST_ONE, HyperParameter, StrategySpec


def _build(a):
    from avalanche.training import Naive

    from .plugin import AnchorPlugin  # mounted as cl_spoof.strategies.methods.anchor

    return Naive(**a.common([AnchorPlugin(a.cfg.strategy.anchor_weight)]))


def _state():
    from .plugin import STATE

    return (STATE,)


SPECS = (
    StrategySpec("anchor", "toy L2 anchor", "no", _build,
                 (HyperParameter("anchor_weight", 1.0, "pull strength", AT_LEAST_ONE),),
                 state=_state),
)
