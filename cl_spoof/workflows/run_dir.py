"""A run directory: its layout, and every file written atomically.

- ``config.yaml``: the resolved config;
- ``eer_matrix.csv``: ``stage, trained_on`` then one column per attack (EER %);
- ``metrics.json``: :func:`cl_spoof.metrics.continual.summarize` of the matrix;
- ``scores/stage_<k>.txt``: ASVspoof score lines ``utt_id attack key score``;
- ``checkpoints/stage_<k>.pt``: model, optimizer and strategy state, loadable with
  ``torch.load(..., weights_only=True)``;
- ``logs/``: Avalanche's text log and CSV logs;
- ``run.json``: status (completed stages, finished flag).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cl_spoof.config import RunConfig, load_config, to_yaml
from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.checkpoints import save_checkpoint
from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.metrics.continual import summarize


def write_scores(path: Path, scores: pd.DataFrame) -> None:
    """ASVspoof-style score file (higher score = more bona fide), written atomically."""
    lines = [f"{u} {a} {k} {s:.6f}" for u, a, k, s in
             scores[["utt_id", "attack", "key", "score"]].itertuples(index=False)]
    atomic_write_text(path, "\n".join(lines) + "\n")


class RunWriter:
    """Owns a run directory: refuses to overwrite, writes each file atomically."""

    def __init__(self, out_dir: Path, cfg: RunConfig) -> None:
        self.out_dir = Path(out_dir)
        self.cfg = cfg

    def checkpoint_path(self, stage: int) -> Path:
        """``checkpoints/stage_<stage>.pt``."""
        return self.out_dir / "checkpoints" / f"stage_{stage}.pt"

    def create(self) -> list[dict]:
        """Make a new run directory (it must not hold files yet); no completed stages."""
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise CLSpoofError(f"{self.out_dir}: run directory exists and is not empty; "
                               "choose another --out, or --resume it (nothing was overwritten)")
        for sub in ("scores", "checkpoints", "logs"):
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / "config.yaml", to_yaml(self.cfg))
        return []

    def open_existing(self) -> list[dict]:
        """Rows of the stages an interrupted run completed (for resuming it)."""
        config = self.out_dir / "config.yaml"
        if not config.is_file():
            raise CLSpoofError(f"{self.out_dir}: not a run directory (no config.yaml)")
        if to_yaml(load_config(config)) != to_yaml(self.cfg):  # keys added later: defaults
            raise CLSpoofError(f"{config}: differs from the config of the run being resumed")
        status_file = self.out_dir / "run.json"
        if not status_file.is_file():
            return []  # interrupted before the first stage ended
        status = json.loads(status_file.read_text())
        if status.get("finished"):
            raise CLSpoofError(f"{self.out_dir}: the run already finished; nothing to resume")
        matrix = pd.read_csv(self.out_dir / "eer_matrix.csv")
        rows = matrix.to_dict("records")[: int(status["completed_stages"])]
        for k in range(len(rows)):
            if not self.checkpoint_path(k).is_file():
                raise CLSpoofError(f"{self.out_dir}: checkpoints/stage_{k}.pt is missing")
        return rows

    def frames(self, rows: list[dict], attacks: list[str], learned: list[str]
               ) -> tuple[pd.DataFrame, dict]:
        """The EER matrix and metrics of ``rows`` (what :meth:`write_stage` writes)."""
        matrix = pd.DataFrame(rows).set_index("stage")
        matrix = matrix[["trained_on", *attacks]]
        metrics = summarize(matrix[attacks], learned)
        metrics["strategy"] = self.cfg.strategy.name
        metrics["seed"] = self.cfg.seed
        return matrix, metrics

    def write_stage_outputs(self, stage: int, scores: pd.DataFrame, checkpoint: dict) -> None:
        """``scores/stage_<k>.txt`` and ``checkpoints/stage_<k>.pt`` of one stage."""
        write_scores(self.out_dir / "scores" / f"stage_{stage}.txt", scores)
        save_checkpoint(self.checkpoint_path(stage), checkpoint)

    def write_stage(self, rows: list[dict], attacks: list[str], learned: list[str],
                    finished: bool, seconds: float) -> tuple[pd.DataFrame, dict]:
        """``eer_matrix.csv``, ``metrics.json`` and ``run.json`` after a stage."""
        matrix, metrics = self.frames(rows, attacks, learned)
        with atomic_path(self.out_dir / "eer_matrix.csv") as tmp:
            matrix.to_csv(tmp, float_format="%.4f")
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        status = {"completed_stages": len(rows), "total_stages": len(learned) if finished
                  else None, "finished": finished, "seconds": round(seconds, 2),
                  "strategy": self.cfg.strategy.name, "seed": self.cfg.seed}
        atomic_write_text(self.out_dir / "run.json", json.dumps(status, indent=2) + "\n")
        return matrix, metrics
