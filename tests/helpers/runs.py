"""Run directories written as the runner writes them, without models (for reports and for
commands that must leave a run alone)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cl_spoof.metrics.continual import summarize


def finished_run(path: Path, strategy: str = "naive", seed: int = 0,
                 attacks: tuple[str, ...] = ("A01", "A02")) -> Path:
    """A finished run directory learning ``attacks`` one per stage (random EERs from
    ``seed``), with a checkpoint and a score file standing in for the real ones."""
    (path / "checkpoints").mkdir(parents=True)
    (path / "scores").mkdir()
    names = list(attacks)
    df = pd.DataFrame(np.random.default_rng(seed).uniform(0, 50, (len(names), len(names))),
                      columns=names)
    metrics = {**summarize(df, names), "strategy": strategy, "seed": seed}
    df.insert(0, "trained_on", names)
    df.index = pd.RangeIndex(1, len(df) + 1, name="stage")
    df.to_csv(path / "eer_matrix.csv", float_format="%.4f")
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "run.json").write_text(json.dumps({"finished": True, "stage_base": 1,
                                               "completed_stages": len(names)}))
    (path / "config.yaml").write_text(yaml.safe_dump(
        {"strategy": {"name": strategy}, "seed": seed, "data": {"source": "corpus.csv"}}))
    (path / "checkpoints" / f"stage_{len(names)}.pt").write_bytes(b"checkpoint")
    (path / "scores" / f"stage_{len(names)}.txt").write_text(f"u {names[-1]} spoof 0.5\n")
    return path
