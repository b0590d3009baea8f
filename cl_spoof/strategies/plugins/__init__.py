"""Avalanche plugins written for cl-spoof; each works in any Avalanche script."""

from cl_spoof.strategies.plugins.dfwf import DFWFPlugin
from cl_spoof.strategies.plugins.training import Autocast, ClassWeightedLoss, class_weights

__all__ = ["Autocast", "ClassWeightedLoss", "DFWFPlugin", "class_weights"]
