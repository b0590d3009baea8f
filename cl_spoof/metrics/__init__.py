"""Evaluation metrics: ASVspoof EER, an Avalanche plugin metric for it, the registry of
every metric cl-spoof reports (:mod:`cl_spoof.metrics.definitions`).

Names are imported on first use, so that the registry (read by the reports) costs
neither torch nor the (several-second) Avalanche import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cl_spoof.metrics.eer import (
        compute_det_curve,
        compute_eer,
        eer_per_attack,
        logits_to_scores,
        pooled_eer,
    )
    from cl_spoof.metrics.plugin import (
        EERPluginMetric,
        ExperienceScores,
        eer_metrics,
    )

_LAZY = {"compute_det_curve": "eer", "compute_eer": "eer", "eer_per_attack": "eer",
         "logits_to_scores": "eer", "pooled_eer": "eer",
         "EERPluginMetric": "plugin", "ExperienceScores": "plugin", "eer_metrics": "plugin"}

__all__ = [
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
    """Import the module that defines ``name`` on first use."""
    if name in _LAZY:
        return getattr(import_module(f"cl_spoof.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
