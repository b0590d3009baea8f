"""Evaluation metrics: ASVspoof EER and an Avalanche plugin metric for it.

The plugin names are imported lazily so that ``compute_eer`` and friends can be
used without paying for the (several-second) Avalanche import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cl_spoof.metrics.eer import (
    BONAFIDE_ATTACK,
    compute_det_curve,
    compute_eer,
    eer_per_attack,
    logits_to_scores,
    pooled_eer,
)

if TYPE_CHECKING:
    from cl_spoof.metrics.plugin import (
        EERPluginMetric,
        ExperienceScores,
        eer_metrics,
    )

_LAZY = {"EERPluginMetric", "ExperienceScores", "eer_metrics"}

__all__ = [
    "BONAFIDE_ATTACK",
    "EERPluginMetric",
    "ExperienceScores",
    "compute_det_curve",
    "compute_eer",
    "eer_metrics",
    "eer_per_attack",
    "logits_to_scores",
    "pooled_eer",
]


def __getattr__(name: str) -> Any:
    """Import the Avalanche-based plugin names on first use."""
    if name in _LAZY:
        return getattr(import_module("cl_spoof.metrics.plugin"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
