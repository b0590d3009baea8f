"""Avalanche plugins written for cl-spoof; each works in any Avalanche script.

``RAWMPlugin``, ``RWMPlugin`` and ``RegOPlugin`` are loaded on first use, so importing
``DFWFPlugin`` stays light.
"""

from typing import Any

from cl_spoof.strategies.plugins.dfwf import DFWFPlugin

__all__ = ["DFWFPlugin", "RAWMPlugin", "RWMPlugin", "RegOPlugin"]

_LAZY = {"RAWMPlugin": "projection", "RWMPlugin": "projection", "RegOPlugin": "rego"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
