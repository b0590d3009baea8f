"""Continual-learning strategies: the registry, DFWF, and the state saved for resuming.

- :mod:`~cl_spoof.strategies.registry`: every strategy by name (one spec each);
- :mod:`~cl_spoof.strategies.regularization`: DFWF's losses and frozen teacher;
- :mod:`~cl_spoof.strategies.projection`: RAWM's and RWM's projector and weights;
- :mod:`~cl_spoof.strategies.regions`: RegO's Fisher regions and Ebbinghaus release;
- :mod:`~cl_spoof.strategies.layers`: layer-name patterns, the inputs each weight multiplies;
- :mod:`~cl_spoof.strategies.plugins`: ``DFWFPlugin``, ``RAWMPlugin``, ``RWMPlugin``,
  ``RegOPlugin``, ``SelfDistillationPlugin``;
- :mod:`~cl_spoof.strategies.templates`: the ``DFWF``, ``RAWM``, ``RWM``, ``RegO`` classes;
- :mod:`~cl_spoof.strategies.state`: strategy state to and from checkpoints.

Only the registry is imported here (it is light); the others import Avalanche.
"""

from cl_spoof.strategies.registry import (
    STRATEGIES,
    BuildArgs,
    HyperParameter,
    StrategySpec,
    build_strategy,
    check_strategy_name,
    get_spec,
)

__all__ = ["STRATEGIES", "BuildArgs", "HyperParameter", "StrategySpec", "build_strategy",
           "check_strategy_name", "get_spec"]
