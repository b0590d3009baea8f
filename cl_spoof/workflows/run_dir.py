"""A run directory: its layout, and every file written atomically.

- ``config.yaml``: the resolved config;
- ``eer_matrix.csv``: ``stage, trained_on`` then one column per attack (EER %);
- ``metrics.json``: :func:`cl_spoof.metrics.continual.summarize` of the matrix, the
  other continual metrics of the registry (:mod:`cl_spoof.metrics.definitions`: the
  average forgetting), and ``official``: one entry per stage with the stage metrics
  of its scores (:mod:`cl_spoof.metrics.official`), the last stage's also as
  ``final_<key>`` (``final_pooled_eer``, ``final_min_dcf``, ...);
- ``scores/stage_<k>.txt``: ASVspoof 2019-style score lines ``utt_id attack key score``
  (``metrics.score_format: asvspoof2019``, the default), or
  ``scores/stage_<k>.tsv`` in the ASVspoof 5 Track 1 submission format
  (``filename<TAB>cm-score``) with its key file ``scores/stage_<k>.keys.tsv``
  (``filename<TAB>cm-label``) for the organisers' ``evaluation.py --cm_keys``;
- ``checkpoints/stage_<k>.pt``: model, optimizer and strategy state, loadable with
  ``torch.load(..., weights_only=True)``;
- ``logs/``: Avalanche's text log and CSV logs;
- ``run.json``: status (completed stages, finished flag) and the resolved config with
  its digest, written when the run starts; ``--resume`` refuses a ``config.yaml`` that
  no longer says what the run was started with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from cl_spoof.config import (
    RunConfig,
    config_differences,
    config_digest,
    config_from_dict,
    to_dict,
    to_yaml,
)
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.infra.checkpoints import save_checkpoint
from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.metrics.continual import summarize
from cl_spoof.metrics.definitions import continual_metrics, per_stage_metrics
from cl_spoof.metrics.score_files import write_asvspoof5_keys, write_score_file
from cl_spoof.workflows.setup import load_run_config, resolve


def write_scores(path: Path, scores: pd.DataFrame, fmt: str = "asvspoof2019") -> None:
    """A stage's score file (higher score = more bona fide) in format ``fmt``, written
    atomically; the ASVspoof 5 format also gets its key file (``<stem>.keys.tsv``)."""
    write_score_file(path, scores, fmt)
    if fmt == "asvspoof5":
        write_asvspoof5_keys(path.with_suffix(".keys.tsv"), scores)


def score_path(out_dir: Path, stage: int, fmt: str) -> Path:
    """``scores/stage_<k>.txt`` (ASVspoof 2019 format) or ``.tsv`` (ASVspoof 5)."""
    return Path(out_dir) / "scores" / f"stage_{stage}.{'tsv' if fmt == 'asvspoof5' else 'txt'}"


def check_same_config(stored: Any, cfg: RunConfig, where: str) -> None:
    """Refuse ``cfg`` unless it equals the config ``stored`` (a :func:`to_dict` mapping)
    that ``where`` was written with, naming the keys that differ (both resolved)."""
    if not isinstance(stored, dict):
        raise CLSpoofError(f"{where}: holds no readable config; the run cannot be resumed "
                           "safely")
    try:
        started = resolve(config_from_dict(stored))
    except ConfigError as exc:
        raise CLSpoofError(f"{where}: its stored config is not valid ({exc})") from None
    diff = config_differences(started, resolve(cfg))
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise CLSpoofError(f"{where}: the run was started with another config (it differs "
                           f"in {shown}); a resumed run must be the run that was started: put "
                           "config.yaml back, or start a new run with the new config")


def read_status(out_dir: Path) -> dict | None:
    """``run.json`` of a run directory (None when absent); a damaged one is a named error."""
    path = Path(out_dir) / "run.json"
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CLSpoofError(f"{path}: damaged ({type(exc).__name__}); the run's status is "
                           "unknown, so it cannot be continued") from None
    done = status.get("completed_stages") if isinstance(status, dict) else None
    if not isinstance(done, int) or isinstance(done, bool) or done < 0 \
            or not isinstance(status.get("finished"), bool):
        raise CLSpoofError(f"{path}: damaged (expected completed_stages and finished); the "
                           "run's status is unknown, so it cannot be continued")
    stored = status.get("config")
    if stored is not None and status.get("config_digest") != config_digest(stored):
        raise CLSpoofError(f"{path}: damaged (its config does not match its config_digest)")
    return status


class RunWriter:
    """Owns a run directory: refuses to overwrite, writes each file atomically."""

    def __init__(self, out_dir: Path, cfg: RunConfig) -> None:
        self.out_dir = Path(out_dir)
        self.cfg = resolve(cfg)  # what config.yaml and run.json hold

    def checkpoint_path(self, stage: int) -> Path:
        """``checkpoints/stage_<stage>.pt``."""
        return self.out_dir / "checkpoints" / f"stage_{stage}.pt"

    def check_new(self) -> None:
        """Refuse an ``out_dir`` that exists and is not an empty folder (nothing written)."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise CLSpoofError(f"{self.out_dir}: exists and is not a folder; choose another "
                               "--out")
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise CLSpoofError(f"{self.out_dir}: run directory exists and is not empty; "
                               "choose another --out, or --resume it (nothing was overwritten)")

    def create(self) -> list[dict]:
        """Make a new run directory (it must not hold files yet); no completed stages."""
        self.check_new()
        for sub in ("scores", "checkpoints", "logs"):
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / "config.yaml", to_yaml(self.cfg))
        self._write_status(0, None, False, 0.0)
        return []

    def open_existing(self) -> list[dict]:
        """Rows of the stages an interrupted run completed (for resuming it).

        Refuses a directory that is not an unfinished run, a damaged ``run.json`` or
        ``eer_matrix.csv``, missing checkpoints, and a config — ``self.cfg`` or the
        directory's ``config.yaml`` — that differs from the one the run started with.
        """
        config = self.out_dir / "config.yaml"
        if not self.out_dir.is_dir() or not config.is_file():
            raise CLSpoofError(f"{self.out_dir}: not a run directory (no config.yaml)")
        status = read_status(self.out_dir)
        on_disk = load_run_config(config)
        if status is not None and status.get("config") is not None:
            check_same_config(status["config"], on_disk, str(config))
            check_same_config(status["config"], self.cfg, str(self.out_dir / "run.json"))
        elif config_differences(on_disk, self.cfg):  # a run.json of an older cl-spoof
            check_same_config(to_dict(on_disk), self.cfg, str(config))
        if status is None or status["completed_stages"] == 0:
            return []  # interrupted before the first stage ended
        if status["finished"]:
            raise CLSpoofError(f"{self.out_dir}: the run already finished; nothing to resume")
        matrix_file = self.out_dir / "eer_matrix.csv"
        try:
            matrix = pd.read_csv(matrix_file)
        except FileNotFoundError:
            raise CLSpoofError(f"{matrix_file}: missing although run.json says "
                               f"{status['completed_stages']} stage(s) completed") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CLSpoofError(f"{matrix_file}: unreadable ({type(exc).__name__})") from None
        done = status["completed_stages"]
        if list(matrix.columns[:2]) != ["stage", "trained_on"] or len(matrix) < done:
            raise CLSpoofError(f"{matrix_file}: damaged (expected columns stage, trained_on and "
                               f"{done} row(s), as run.json says)")
        rows = matrix.to_dict("records")[:done]
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
        for metric in continual_metrics():
            if metric.from_matrix is not None:
                metrics[metric.key] = metric.from_matrix(matrix[attacks], learned)
        if official:
            metrics["official"] = official
            for metric in per_stage_metrics():
                metrics[metric.run_key] = official[-1].get(metric.key)
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
        self._write_status(len(rows), len(learned) if finished else None, finished, seconds)
        return matrix, metrics

    def _write_status(self, completed: int, total: int | None, finished: bool,
                      seconds: float) -> None:
        """``run.json``: progress, and the config the run was started with (and its digest)."""
        stored = to_dict(self.cfg)
        status = {"completed_stages": completed, "total_stages": total, "finished": finished,
                  "seconds": round(seconds, 2), "strategy": self.cfg.strategy.name,
                  "seed": self.cfg.seed, "config_digest": config_digest(stored),
                  "config": stored}
        atomic_write_text(self.out_dir / "run.json", json.dumps(status, indent=2) + "\n")
