"""The training logs of a run, written through Avalanche's loggers.

Always: Avalanche's text log (``logs/log.txt``) and its CSV logs
(``training_results.csv``, ``eval_results.csv``) without their ``forgetting`` column:
Avalanche fills it from an accuracy-based forgetting metric that cl-spoof does not
compute (it would read 0 everywhere), and a second "forgetting" beside the EER one
misleads. ``train.loggers`` adds others: ``tensorboard`` (Avalanche's
``TensorboardLogger``, into ``logs/tensorboard/``; needs the ``tensorboard`` package).
"""

from __future__ import annotations

import importlib.util
from typing import IO, Any

from avalanche.logging import CSVLogger, TextLogger

from cl_spoof.config import RunConfig
from cl_spoof.errors import ConfigError
from cl_spoof.rundir import RunDir

#: The columns of ``eval_results.csv``.
EVAL_COLUMNS = ("eval_exp", "training_exp", "eval_accuracy", "eval_loss")
TENSORBOARD_INSTALL = "pip install 'cl-spoof[tensorboard]'"


class CSVLogs(CSVLogger):
    """Avalanche's CSV logs, ``eval_results.csv`` without the accuracy-based ``forgetting``."""

    def __init__(self, log_folder: str) -> None:
        super().__init__(log_folder)
        self.eval_file.seek(0)
        self.eval_file.truncate()
        self._row(*EVAL_COLUMNS)

    def print_eval_metrics(self, eval_exp: Any, training_exp: Any, eval_acc: Any,
                           eval_loss: Any, forgetting: Any) -> None:
        """One row of ``eval_results.csv`` (``forgetting`` left out)."""
        self._row(eval_exp, training_exp, self._val_to_str(eval_acc),
                  self._val_to_str(eval_loss))

    def _row(self, *fields: Any) -> None:
        """One comma-separated line of ``eval_results.csv``, flushed."""
        self.eval_file.write(",".join(str(f) for f in fields) + "\n")
        self.eval_file.flush()


def check_loggers(cfg: RunConfig) -> None:
    """Refuse ``train.loggers`` whose package is not installed, before any work."""
    if "tensorboard" in cfg.train.loggers and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"train.loggers: tensorboard needs the tensorboard package; install it "
                          f"({TENSORBOARD_INSTALL}) or remove it from train.loggers")


def run_loggers(cfg: RunConfig, run_dir: RunDir, log_file: IO[str],
                resumed_at: int | None = None) -> list[Any]:
    """The loggers of a run writing ``run_dir`` (``resumed_at``: a resumed run's own folder)."""
    check_loggers(cfg)
    loggers: list[Any] = [TextLogger(log_file), CSVLogs(str(run_dir.log_dir(resumed_at)))]
    if "tensorboard" in cfg.train.loggers:
        from avalanche.logging import TensorboardLogger

        loggers.append(TensorboardLogger(run_dir.tensorboard_dir(resumed_at)))
    return loggers
