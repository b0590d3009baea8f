"""Continual-learning strategies: the registry, DFWF, and the state saved for resuming.

- :mod:`~cl_spoof.strategies.registry`: every strategy by name (one spec each);
- :mod:`~cl_spoof.strategies.regularization`: DFWF's losses and frozen teacher;
- :mod:`~cl_spoof.strategies.plugins`: ``DFWFPlugin`` and the plugins every run gets;
- :mod:`~cl_spoof.strategies.templates`: the ``DFWF`` strategy class;
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
