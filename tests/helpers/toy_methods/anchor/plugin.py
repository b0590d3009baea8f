"""The toy method's plugin and its checkpoint state."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin

from cl_spoof.strategies.state import StateAdapter, find_plugin


class AnchorPlugin(SupervisedPlugin):
    """An L2 pull towards the weights after the previous experience."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight
        self.anchor: dict | None = None

    def before_backward(self, strategy, **kwargs) -> None:
        if self.anchor is not None:
            strategy.loss = strategy.loss + self.weight * sum(
                ((p - self.anchor[n]) ** 2).sum() for n, p in strategy.model.named_parameters())

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.anchor = {n: p.detach().clone() for n, p in strategy.model.named_parameters()}


def _export(strategy) -> dict:
    anchor = find_plugin(strategy, AnchorPlugin).anchor
    return {} if anchor is None else {"anchor": anchor}


def _restore(strategy, state, completed, stream) -> None:
    if "anchor" in state:
        find_plugin(strategy, AnchorPlugin).anchor = dict(state["anchor"])


STATE = StateAdapter("anchor", _export, _restore)
