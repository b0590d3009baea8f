"""A run directory: its layout, and every file written atomically.

- ``config.yaml``: the resolved config;
- ``eer_matrix.csv``: ``stage, trained_on`` then one column per attack (EER %);
- ``metrics.json``: :func:`cl_spoof.metrics.continual.summarize` of the matrix, the
  average forgetting, and ``official``: one entry per stage with the official
  metrics of its scores (:mod:`cl_spoof.metrics.official`), the last stage's also
  as ``final_pooled_eer``, ``final_min_dcf``, ``final_act_dcf``, ``final_cllr``,
  ``final_min_tdcf``;
- ``scores/stage_<k>.txt``: ASVspoof 2019-style score lines ``utt_id attack key score``
  (``metrics.score_format: asvspoof2019``, the default), or
  ``scores/stage_<k>.tsv`` in the ASVspoof 5 Track 1 submission format
  (``filename<TAB>cm-score``) with its key file ``scores/stage_<k>.keys.tsv``
  (``filename<TAB>cm-label``) for the organisers' ``evaluation.py --cm_keys``;
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
from cl_spoof.metrics.continual import average_forgetting, summarize
from cl_spoof.metrics.official import NUMBERS
from cl_spoof.metrics.score_files import write_asvspoof5_keys, write_score_file


def write_scores(path: Path, scores: pd.DataFrame, fmt: str = "asvspoof2019") -> None:
    """A stage's score file (higher score = more bona fide) in format ``fmt``, written
    atomically; the ASVspoof 5 format also gets its key file (``<stem>.keys.tsv``)."""
    write_score_file(path, scores, fmt)
    if fmt == "asvspoof5":
        write_asvspoof5_keys(path.with_suffix(".keys.tsv"), scores)


def score_path(out_dir: Path, stage: int, fmt: str) -> Path:
    """``scores/stage_<k>.txt`` (ASVspoof 2019 format) or ``.tsv`` (ASVspoof 5)."""
    return Path(out_dir) / "scores" / f"stage_{stage}.{'tsv' if fmt == 'asvspoof5' else 'txt'}"


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

    def read_official(self, completed: int) -> list[dict]:
        """The official metrics of the first ``completed`` stages (from ``metrics.json``)."""
        path = self.out_dir / "metrics.json"
        if completed == 0 or not path.is_file():
            return []
        return list(json.loads(path.read_text()).get("official", []))[:completed]

    def frames(self, rows: list[dict], attacks: list[str], learned: list[str],
               official: list[dict] | None = None) -> tuple[pd.DataFrame, dict]:
        """The EER matrix and metrics of ``rows`` (what :meth:`write_stage` writes)."""
        matrix = pd.DataFrame(rows).set_index("stage")
        matrix = matrix[["trained_on", *attacks]]
        metrics = summarize(matrix[attacks], learned)
        metrics["avg_forgetting"] = average_forgetting(matrix[attacks], learned)
        if official:
            metrics["official"] = official
            for key in NUMBERS:
                metrics[f"final_{key}"] = official[-1].get(key)
        metrics["strategy"] = self.cfg.strategy.name
        metrics["seed"] = self.cfg.seed
        return matrix, metrics

    def write_stage_outputs(self, stage: int, scores: pd.DataFrame, checkpoint: dict) -> None:
        """The score file (:func:`score_path`) and ``checkpoints/stage_<k>.pt`` of one stage."""
        fmt = self.cfg.metrics.score_format
        write_scores(score_path(self.out_dir, stage, fmt), scores, fmt)
        save_checkpoint(self.checkpoint_path(stage), checkpoint)

    def write_stage(self, rows: list[dict], attacks: list[str], learned: list[str],
                    finished: bool, seconds: float, official: list[dict] | None = None
                    ) -> tuple[pd.DataFrame, dict]:
        """``eer_matrix.csv``, ``metrics.json`` and ``run.json`` after a stage."""
        matrix, metrics = self.frames(rows, attacks, learned, official)
        with atomic_path(self.out_dir / "eer_matrix.csv") as tmp:
            matrix.to_csv(tmp, float_format="%.4f")
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        status = {"completed_stages": len(rows), "total_stages": len(learned) if finished
                  else None, "finished": finished, "seconds": round(seconds, 2),
                  "strategy": self.cfg.strategy.name, "seed": self.cfg.seed}
        atomic_write_text(self.out_dir / "run.json", json.dumps(status, indent=2) + "\n")
        return matrix, metrics
