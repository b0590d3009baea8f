"""How workflows report progress and results (the CLI draws them; library code never prints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class RunEvents:
    """Callbacks through which a workflow reports progress (the CLI draws them)."""

    on_stage: Callable[[str], None] = lambda text: None
    # (description, done, total) for training/eval progress bars
    on_progress: Callable[[str, int, int], None] = lambda desc, done, total: None
    on_result: Callable[[int, str, dict[str, float]], None] = lambda k, a, eers: None
    # (attack, epochs done, epochs of the stage, mean training loss of the epoch just done)
    on_epoch: Callable[[str, int, int, float], None] = lambda a, done, total, loss: None
    # (description, done, total) for the whole job (runs of a comparison)
    on_overall: Callable[[str, int, int], None] = lambda desc, done, total: None


@dataclass
class RunSummary:
    """What a finished run (or an added attack) produced."""

    out_dir: Path
    matrix: pd.DataFrame  # index stage, columns: trained_on + attacks
    metrics: dict
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
