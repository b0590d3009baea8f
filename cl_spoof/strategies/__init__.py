"""Continual-learning strategies: the registry, one home per method, state for resuming.

- :mod:`~cl_spoof.strategies.registry`: every strategy by name, collected from ``methods/``;
- :mod:`~cl_spoof.strategies.spec`: what a strategy declares (``StrategySpec``,
  ``HyperParameter``, ``BuildArgs``);
- :mod:`~cl_spoof.strategies.methods`: one home per method — Avalanche's baselines,
  ``dfwf``, ``owm`` (RAWM, RWM), ``rego``, ``self_distillation`` — each with its math,
  plugin, strategy class, checkpoint state and registry entries;
- :mod:`~cl_spoof.strategies.layers`: layer-name patterns, the inputs each weight multiplies;
- :mod:`~cl_spoof.strategies.extra_pass`: the pass over a learnt experience that RAWM,
  RWM and RegO run;
- :mod:`~cl_spoof.strategies.state`: strategy state to and from checkpoints.

Only the registry is imported here (it is light). The plugins and strategy classes
(``DFWFPlugin``, ``DFWF``, ``RAWMPlugin``, ``RAWM``, ``RWMPlugin``, ``RWM``, ``RegOPlugin``,
``RegO``, ``SelfDistillationPlugin``) load Avalanche on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cl_spoof.strategies.registry import (
    STRATEGIES,
    BuildArgs,
    HyperParameter,
    StrategySpec,
    build_strategy,
    check_strategy_name,
    get_spec,
)

if TYPE_CHECKING:
    from cl_spoof.strategies.methods.dfwf.plugin import DFWFPlugin
    from cl_spoof.strategies.methods.dfwf.strategy import DFWF
    from cl_spoof.strategies.methods.owm.plugin import RAWMPlugin, RWMPlugin
    from cl_spoof.strategies.methods.owm.strategy import RAWM, RWM
    from cl_spoof.strategies.methods.rego.plugin import RegOPlugin
    from cl_spoof.strategies.methods.rego.strategy import RegO
    from cl_spoof.strategies.methods.self_distillation.plugin import SelfDistillationPlugin

__all__ = ["DFWF", "RAWM", "RWM", "STRATEGIES", "BuildArgs", "DFWFPlugin", "HyperParameter",
           "RAWMPlugin", "RWMPlugin", "RegO", "RegOPlugin", "SelfDistillationPlugin",
           "StrategySpec", "build_strategy", "check_strategy_name", "get_spec"]

_METHODS = "cl_spoof.strategies.methods"
_LAZY = {
    "DFWFPlugin": f"{_METHODS}.dfwf.plugin", "DFWF": f"{_METHODS}.dfwf.strategy",
    "RAWMPlugin": f"{_METHODS}.owm.plugin", "RAWM": f"{_METHODS}.owm.strategy",
    "RWMPlugin": f"{_METHODS}.owm.plugin", "RWM": f"{_METHODS}.owm.strategy",
    "RegOPlugin": f"{_METHODS}.rego.plugin", "RegO": f"{_METHODS}.rego.strategy",
    "SelfDistillationPlugin": f"{_METHODS}.self_distillation.plugin",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
