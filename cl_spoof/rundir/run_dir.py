"""A run directory: its layout, and the only code that reads or writes its files.

- ``config.yaml``: the resolved config;
- ``run.json``: status (completed stages, finished flag) and the resolved config with
  its digest, written when the run starts; ``--resume`` refuses a ``config.yaml`` that
  no longer says what the run was started with;
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
- ``logs/``: Avalanche's text log (``log.txt``) and CSV logs (a resumed run's in
  ``logs/resumed_at_stage_<k>/``, an added attack's in ``logs/added_<NAME>/``);
- ``added/added.json`` and ``added/<NAME>.csv``: the attacks ``add-attack`` added
  (name, stage, strategy, inputs, skipped files) and their utterances;
- ``report/``: the report ``add-attack`` refreshes;
- ``.cl-spoof-lock``: the owner lock (:class:`~cl_spoof.infra.transaction.OwnedFolder`).

One owner at a time: every command that changes the run (``run``, ``run --resume``,
``add-attack``, a report written into it) holds its owner lock (:meth:`RunDir.owning`,
:meth:`RunDir.change`); a second one is refused naming the holder, or waits. Readers
(:meth:`RunDir.reading`: ``score`` on a run's checkpoint, reports, ``compare``'s table)
see only committed stages: a change an interrupted command left is rolled back, or,
when that cannot be done now, ignored. ``run.json`` also records what the run was
started on (:meth:`RunDir.record_data`), and ``--resume`` refuses other data
(:meth:`RunDir.check_data`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import yaml

from cl_spoof.config import (
    RunConfig,
    config_differences,
    config_digest,
    config_from_dict,
    load_config,
    to_dict,
    to_yaml,
)
from cl_spoof.errors import CLSpoofError, ConfigError, FileSystemError, os_error_message
from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.infra.formats import write_csv
from cl_spoof.infra.names import check_name, inside
from cl_spoof.infra.transaction import UNDO_PREFIX, OwnedFolder, Transaction, View, is_hidden
from cl_spoof.metrics.continual import summarize
from cl_spoof.metrics.definitions import continual_metrics, per_stage_metrics
from cl_spoof.metrics.score_files import write_asvspoof5_keys, write_score_file

#: The files of a finished run (what a report reads).
RUN_FILES = ("config.yaml", "eer_matrix.csv", "metrics.json", "run.json")
#: The folders of a run that commands write into.
RUN_FOLDERS = ("scores", "checkpoints", "logs", "added", "report")


class RunDirError(CLSpoofError):
    """A run or compare directory that is not what its reader needs (named in the message)."""


@dataclass(frozen=True)
class RunProgress:
    """What a run has recorded so far, carried from stage to stage: one EER-matrix row
    per completed stage (``stage``, ``trained_on``, one EER per attack) and the official
    metrics of each stage."""

    rows: tuple[dict[str, Any], ...] = ()
    official: tuple[dict[str, Any], ...] = ()

    @property
    def completed(self) -> int:
        """Stages recorded."""
        return len(self.rows)

    @property
    def learned(self) -> list[str]:
        """The attack (or ``joint``) each recorded stage trained on."""
        return [str(row["trained_on"]) for row in self.rows]

    def with_stage(self, row: dict[str, Any], official: dict[str, Any]) -> RunProgress:
        """A new progress with one more stage."""
        return RunProgress(rows=(*self.rows, row), official=(*self.official, official))


@dataclass(frozen=True)
class RunRecord:
    """One finished run as read from its directory."""

    path: Path
    strategy: str
    seed: int
    attacks: tuple[str, ...]
    learned: tuple[str, ...]  # attack learned at each stage (``("joint",)`` for joint)
    eer: np.ndarray  # stages x attacks, EER %
    metrics: dict
    data_config: Any = None


def write_scores(path: Path, scores: pd.DataFrame, fmt: str = "asvspoof2019") -> None:
    """A stage's score file (higher score = more bona fide) in format ``fmt``, written
    atomically; the ASVspoof 5 format also gets its key file (``<stem>.keys.tsv``)."""
    write_score_file(path, scores, fmt)
    if fmt == "asvspoof5":
        write_asvspoof5_keys(path.with_suffix(".keys.tsv"), scores)


def check_same_config(stored: Any, cfg: RunConfig, where: str) -> None:
    """Refuse ``cfg`` unless it equals the config ``stored`` (a :func:`to_dict` mapping)
    that ``where`` was written with, naming the keys that differ."""
    if not isinstance(stored, dict):
        raise CLSpoofError(f"{where}: holds no readable config; the run cannot be resumed "
                           "safely")
    try:
        started = config_from_dict(stored)
    except ConfigError as exc:
        raise CLSpoofError(f"{where}: its stored config is not valid ({exc})") from None
    diff = config_differences(started, cfg)
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise CLSpoofError(f"{where}: the run was started with another config (it differs "
                           f"in {shown}); a resumed run must be the run that was started: put "
                           "config.yaml back, or start a new run with the new config")


def _read_json_object(path: Path) -> dict:
    """A JSON object file; :class:`RunDirError` when unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    return data


class RunDir:
    """One run directory (see the module docstring): its paths, the questions asked
    about it, and every read and write of its files.

    ``cfg`` is the config the run was started with; only writing needs it.
    """

    def __init__(self, path: str | Path, cfg: RunConfig | None = None) -> None:
        self.path = Path(path)
        self._cfg = cfg
        self._folder = OwnedFolder(self.path)
        self._view: View | None = None  # while reading a change not committed
        self._data: dict | None = None  # what the run was started on (run.json: data)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def cfg(self) -> RunConfig:
        """The run's config (given when the object was made for writing)."""
        if self._cfg is None:
            raise ValueError(f"{self!r} was opened without its config, so it cannot write")
        return self._cfg

    # ------------------------------------------------------------------ paths

    @property
    def config_file(self) -> Path:
        """``config.yaml``."""
        return self.path / "config.yaml"

    @property
    def status_file(self) -> Path:
        """``run.json``."""
        return self.path / "run.json"

    @property
    def matrix_file(self) -> Path:
        """``eer_matrix.csv``."""
        return self.path / "eer_matrix.csv"

    @property
    def metrics_file(self) -> Path:
        """``metrics.json``."""
        return self.path / "metrics.json"

    @property
    def report_dir(self) -> Path:
        """``report/``: where ``add-attack`` refreshes the run's report."""
        return self.path / "report"

    @property
    def added_index(self) -> Path:
        """``added/added.json``."""
        return self.path / "added" / "added.json"

    def score_file(self, stage: int, fmt: str) -> Path:
        """``scores/stage_<k>.txt`` (ASVspoof 2019 format) or ``.tsv`` (ASVspoof 5)."""
        return self.path / "scores" / f"stage_{stage}.{'tsv' if fmt == 'asvspoof5' else 'txt'}"

    def checkpoint_path(self, stage: int) -> Path:
        """``checkpoints/stage_<stage>.pt``."""
        return self.path / "checkpoints" / f"stage_{stage}.pt"

    def _read(self, path: Path) -> Path:
        """Where to read ``path`` (a path under the run) from: itself, or, while
        :meth:`reading` a change not committed, what the undo folder remembers."""
        if self._view is None:
            return path
        return self._view.root / path.relative_to(self.path)

    def read_checkpoint(self, stage: int) -> dict:
        """The checkpoint of stage ``stage``, read safely
        (:func:`~cl_spoof.infra.checkpoints.read_checkpoint`: errors name the file)."""
        from cl_spoof.infra.checkpoints import read_checkpoint  # torch: only when needed

        return read_checkpoint(self._read(self.checkpoint_path(stage)))

    def log_dir(self, resumed_at: int | None = None) -> Path:
        """``logs/``, or ``logs/resumed_at_stage_<k>/`` for a run resumed after ``k``
        stages (earlier logs are never overwritten)."""
        return self.path / "logs" / (f"resumed_at_stage_{resumed_at}"
                                     if resumed_at is not None else "")

    def open_log(self, resumed_at: int | None = None) -> IO[str]:
        """``log.txt`` in :meth:`log_dir` (made if absent), open for writing; the caller
        closes it."""
        folder = self.log_dir(resumed_at)
        folder.mkdir(parents=True, exist_ok=True)
        return open(folder / "log.txt", "w", encoding="utf-8")  # noqa: SIM115

    # ------------------------------------------------------------------ owner and readers

    def owning(self, command: str, wait: bool = False) -> AbstractContextManager[None]:
        """Own the run for ``command`` (``run``, ``add-attack``...): refused at once naming
        the holder when another command owns it, or waiting for it with ``wait``; a
        change an interrupted command left is put back first."""
        return self._folder.owning(command, wait)

    def change(self, command: str, wait: bool = False) -> AbstractContextManager[Transaction]:
        """Own the run (:meth:`owning`, the folder made if absent) and change it all or
        nothing (:func:`~cl_spoof.infra.transaction.all_or_nothing`)."""
        return self._folder.change(command, wait)

    def writing(self) -> AbstractContextManager[bool]:
        """Hold readers off while a stage's files are written (they read before or after)."""
        return self._folder.writing()

    @contextlib.contextmanager
    def reading(self, command: str) -> Iterator[None]:
        """Read only what was committed while the block runs (``command``: the reader,
        named if it rolls back a change an interrupted command left)."""
        if self._view is not None:
            yield
            return
        with self._folder.reading(command) as view:
            self._view = view
            try:
                yield
            finally:
                self._view = None

    def check_writable(self) -> None:
        """Refuse, before any work, a run whose folders cannot be written, or one whose
        folders are symbolic links (cl-spoof writes only inside the run directory)."""
        for name in ("", *RUN_FOLDERS):
            folder = self.path / name
            if folder.is_symlink():
                raise RunDirError(f"{folder}: a symbolic link (to {os.readlink(folder)}); "
                                  "cl-spoof writes only inside the run directory: replace the "
                                  "link by a folder")
            if not folder.is_dir():
                continue
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise FileSystemError(f"cannot write {os_error_message(exc, folder)}") from None

    @staticmethod
    def of_checkpoint(path: str | Path) -> tuple[RunDir, int] | None:
        """The run and stage of a run's ``checkpoints/stage_<k>.pt``; None for a file
        elsewhere (a copied checkpoint is read as it is)."""
        path = Path(path).expanduser()
        number = path.name[len("stage_"):-len(".pt")]
        if not (path.name.startswith("stage_") and path.name.endswith(".pt")
                and number.isdigit() and path.parent.name == "checkpoints"):
            return None
        run = RunDir(path.parent.parent)
        return (run, int(number)) if run.is_run() else None

    def committed_checkpoint(self, stage: int) -> Path:
        """Where to read the checkpoint of ``stage`` from, inside :meth:`reading`; refused
        when the stage is not part of the run (``run.json`` has not recorded it: it was
        being written when a command stopped, or is being written now)."""
        status = self.status()
        done = status["completed_stages"] if status is not None else None
        if done is not None and stage >= done:
            raise RunDirError(f"{self.checkpoint_path(stage)}: stage {stage} is not part of "
                              f"the run: run.json records {done} completed stage(s) (a command "
                              "that was writing it stopped, or has not finished yet); use "
                              "the checkpoint of a completed stage")
        return self._read(self.checkpoint_path(stage))

    # ------------------------------------------------------------------ questions

    def is_run(self) -> bool:
        """Whether this is a run directory (it has its ``config.yaml``)."""
        return self.config_file.is_file()

    def has_run_files(self) -> bool:
        """Whether any file of a run (:data:`RUN_FILES`) is there."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def started(self) -> bool:
        """Whether the folder exists and holds anything (cl-spoof's lock file aside)."""
        return self.path.is_dir() and any(not is_hidden(p.name) or p.name.startswith(
            UNDO_PREFIX) for p in self.path.iterdir())

    def check_is_run(self) -> None:
        """Refuse a folder that is not a run directory (nothing read)."""
        if not self.is_run():
            raise RunDirError(f"{self.path}: not a run directory (no config.yaml)")

    def read_config(self) -> RunConfig:
        """The run's ``config.yaml``, validated."""
        self.check_is_run()
        return load_config(self._read(self.config_file))

    def status(self) -> dict | None:
        """``run.json`` (None when absent); a damaged one is a named error."""
        path = self.status_file
        if not self._read(path).is_file():
            return None
        try:
            status = json.loads(self._read(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{path}: damaged ({type(exc).__name__}); the run's status is "
                              "unknown, so it cannot be continued") from None
        done = status.get("completed_stages") if isinstance(status, dict) else None
        if not isinstance(done, int) or isinstance(done, bool) or done < 0 \
                or not isinstance(status.get("finished"), bool):
            raise RunDirError(f"{path}: damaged (expected completed_stages and finished); the "
                              "run's status is unknown, so it cannot be continued")
        stored = status.get("config")
        if stored is not None and status.get("config_digest") != config_digest(stored):
            raise RunDirError(f"{path}: damaged (its config does not match its config_digest)")
        if not isinstance(status.get("data", {}), dict):
            raise RunDirError(f"{path}: damaged (data is not a record of the run's data)")
        return status

    def finished(self) -> bool:
        """Whether ``run.json`` says the run finished (a damaged one is a named error)."""
        status = self.status()
        return status is not None and bool(status.get("finished"))

    def completed_stages(self) -> int:
        """Stages ``run.json`` says completed; 0 when it is absent or unreadable (for what
        to say after an interruption, never for deciding what to train)."""
        try:
            done = json.loads(self.status_file.read_text())["completed_stages"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return done if isinstance(done, int) and not isinstance(done, bool) and done > 0 else 0

    def stages_present(self) -> list[int]:
        """Stages whose checkpoint file is there, in order."""
        found = []
        for path in self._read(self.path).glob("checkpoints/stage_*.pt"):
            number = path.stem[len("stage_"):]
            if number.isdigit() and path.is_file():
                found.append(int(number))
        return sorted(found)

    def last_checkpoint(self) -> Path | None:
        """The checkpoint of the last stage ``run.json`` says completed (None before the
        first); it may be missing on disk."""
        status = self.status()
        done = status["completed_stages"] if status is not None else 0
        return self.checkpoint_path(done - 1) if done else None

    # ------------------------------------------------------------------ a new run

    def check_new(self) -> None:
        """Refuse a folder that exists and is not an empty folder (nothing written)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a folder; choose another --out")
        if self.started():
            raise RunDirError(f"{self.path}: run directory exists and is not empty; choose "
                              "another --out, or --resume it (nothing was overwritten)")

    def create(self) -> RunProgress:
        """Make a new run directory (it must not hold files yet); no completed stages."""
        self.check_new()
        for sub in ("scores", "checkpoints", "logs"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, to_yaml(self.cfg))
        self._write_status(0, None, False, 0.0)
        return RunProgress()

    def open_existing(self) -> RunProgress:
        """The stages an interrupted run completed (for resuming it).

        Refuses a directory that is not an unfinished run, a damaged ``run.json`` or
        ``eer_matrix.csv``, missing checkpoints, and a config — ``self.cfg`` or the
        directory's ``config.yaml`` — that differs from the one the run started with.
        """
        config = self.config_file
        if not self.path.is_dir() or not config.is_file():
            raise RunDirError(f"{self.path}: not a run directory (no config.yaml)")
        status = self.status()
        on_disk = load_config(config)
        if status is not None and status.get("config") is not None:
            check_same_config(status["config"], on_disk, str(config))
            check_same_config(status["config"], self.cfg, str(self.status_file))
        elif config_differences(on_disk, self.cfg):  # a run.json of an older cl-spoof
            check_same_config(to_dict(on_disk), self.cfg, str(config))
        if status is None and (self.stages_present() or self.matrix_file.exists()):
            raise RunDirError(f"{self.status_file}: missing although the run completed stages "
                              f"({self.matrix_file.name}, checkpoints/stage_<k>.pt); how many "
                              "is unknown, so it cannot be resumed: put run.json back, or start "
                              "a new run")
        if status is None or status["completed_stages"] == 0:
            return RunProgress()  # interrupted before the first stage ended
        if status["finished"]:
            raise RunDirError(f"{self.path}: the run already finished; nothing to resume")
        matrix_file = self.matrix_file
        try:
            matrix = pd.read_csv(matrix_file)
        except FileNotFoundError:
            raise RunDirError(f"{matrix_file}: missing although run.json says "
                              f"{status['completed_stages']} stage(s) completed") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{matrix_file}: unreadable ({type(exc).__name__})") from None
        done = status["completed_stages"]
        if list(matrix.columns[:2]) != ["stage", "trained_on"] or len(matrix) < done:
            raise RunDirError(f"{matrix_file}: damaged (expected columns stage, trained_on and "
                              f"{done} row(s), as run.json says)")
        rows = matrix.to_dict("records")[:done]
        for k in range(len(rows)):
            if not self.checkpoint_path(k).is_file():
                raise RunDirError(f"{self.path}: checkpoints/stage_{k}.pt is missing")
        return RunProgress(rows=tuple(rows), official=tuple(self.read_official(len(rows))))

    # ------------------------------------------------------------------ stages

    def read_official(self, completed: int) -> list[dict]:
        """The official metrics of the first ``completed`` stages (from ``metrics.json``)."""
        path = self._read(self.metrics_file)
        if completed == 0 or not path.is_file():
            return []
        return list(json.loads(path.read_text()).get("official", []))[:completed]

    def read_metrics(self) -> dict:
        """``metrics.json`` of a finished run (committed: read inside :meth:`reading`)."""
        with self.reading("compare"):
            path = self._read(self.metrics_file)
            if not path.is_file():
                raise RunDirError(f"{self.metrics_file}: missing (the run did not finish)")
            return _read_json_object(path)

    def read_matrix(self) -> pd.DataFrame:
        """``eer_matrix.csv`` as written (``stage``, ``trained_on``, one column per attack)."""
        try:
            return pd.read_csv(self._read(self.matrix_file))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.matrix_file}: unreadable "
                              f"({type(exc).__name__})") from None

    def frames(self, progress: RunProgress, attacks: Sequence[str]) -> tuple[pd.DataFrame, dict]:
        """The EER matrix and metrics of ``progress`` (what :meth:`write_stage` writes)."""
        attacks = list(attacks)
        learned = progress.learned
        official = list(progress.official)
        matrix = pd.DataFrame(list(progress.rows)).set_index("stage")
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
        """The score file (:meth:`score_file`) and ``checkpoints/stage_<k>.pt`` of one stage."""
        fmt = self.cfg.metrics.score_format
        write_scores(self.score_file(stage, fmt), scores, fmt)
        from cl_spoof.infra.checkpoints import save_checkpoint  # torch: only when needed

        save_checkpoint(self.checkpoint_path(stage), checkpoint)

    def write_stage(self, progress: RunProgress, attacks: Sequence[str], finished: bool,
                    seconds: float) -> tuple[pd.DataFrame, dict]:
        """``eer_matrix.csv``, ``metrics.json`` and ``run.json`` after a stage."""
        matrix, metrics = self.frames(progress, attacks)
        with atomic_path(self.matrix_file) as tmp:
            matrix.to_csv(tmp, float_format="%.4f")
        atomic_write_text(self.metrics_file, json.dumps(metrics, indent=2) + "\n")
        self._write_status(progress.completed, progress.completed if finished else None,
                           finished, seconds)
        return matrix, metrics

    def _write_status(self, completed: int, total: int | None, finished: bool,
                      seconds: float) -> None:
        """``run.json``: progress, the config the run was started with (and its digest),
        and what data it was started on (kept from the run's ``run.json``)."""
        stored = to_dict(self.cfg)
        status = {"completed_stages": completed, "total_stages": total, "finished": finished,
                  "seconds": round(seconds, 2), "strategy": self.cfg.strategy.name,
                  "seed": self.cfg.seed, "config_digest": config_digest(stored),
                  "config": stored}
        data = self._data
        if data is None and self.status_file.is_file():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                data = json.loads(self.status_file.read_text(encoding="utf-8")).get("data")
        if data is not None:
            status["data"] = data
        atomic_write_text(self.status_file, json.dumps(status, indent=2) + "\n")

    # ------------------------------------------------------------------ the data

    def record_data(self, record: dict) -> None:
        """Record in ``run.json`` what data a new run starts on (a
        :func:`~cl_spoof.data.table.data_record`)."""
        status = self.status() or {"completed_stages": 0, "finished": False}
        self._data = record
        self._write_status(status["completed_stages"], status.get("total_stages"),
                           status["finished"], float(status.get("seconds") or 0.0))

    def check_data(self, record: dict) -> None:
        """Refuse to resume on data other than the run was started on, naming what changed
        (a run recorded before cl-spoof kept this record is not checked)."""
        from cl_spoof.data.table import data_differences  # cl_spoof.data loads torch

        status = self.status() or {}
        started = status.get("data")
        if started is None:
            return
        diff = data_differences(started, record)
        if diff:
            shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
            raise RunDirError(f"{self.status_file}: the run was started on other data ({shown}); "
                              "a resumed run must read the data it was started on: put the "
                              "data back, or start a new run")
        self._data = started

    # ------------------------------------------------------------------ added attacks

    def added_entries(self) -> list[dict]:
        """What earlier ``add-attack`` commands recorded in ``added/added.json`` (oldest
        first)."""
        index = self.added_index
        if not self._read(index).is_file():
            return []
        try:
            entries = json.loads(self._read(index).read_text(encoding="utf-8"))["attacks"]
            for entry in entries:
                check_name(entry["name"], f"{index}: attack name")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise RunDirError(f"{index}: damaged ({type(exc).__name__}: {exc})") from None
        return list(entries)

    def added_rows(self) -> pd.DataFrame | None:
        """Utterances of the attacks added so far (``added/<NAME>.csv``), or None."""
        names = self.added_entries()
        if not names:
            return None
        frames = []
        for n in names:
            path = inside(self.path, "added", f"{n['name']}.csv")
            try:
                frames.append(pd.read_csv(self._read(path), dtype=str, keep_default_na=False))
            except (OSError, ValueError) as exc:
                raise RunDirError(f"{path}: unreadable ({type(exc).__name__}); the attacks "
                                  "added earlier cannot be re-evaluated") from None
        return pd.concat(frames, ignore_index=True)

    def write_added_log(self, name: str, text: str) -> None:
        """``logs/added_<NAME>/log.txt``: the training log of an added attack."""
        atomic_write_text(inside(self.path, "logs", f"added_{name}", "log.txt"), text)

    def write_added(self, name: str, rows: pd.DataFrame, entries: Sequence[dict]) -> None:
        """``added/<NAME>.csv`` (the new attack's utterances) and ``added/added.json``
        (``entries``: every added attack, oldest first, this one last)."""
        with atomic_path(inside(self.path, "added", f"{name}.csv")) as tmp:
            write_csv(rows, tmp)
        atomic_write_text(self.added_index, json.dumps({"attacks": list(entries)}, indent=2)
                          + "\n")

    # ------------------------------------------------------------------ reports

    def read_record(self) -> RunRecord:
        """The finished run as reports read it (committed stages only); :class:`RunDirError`
        names what is missing or wrong."""
        with self.reading("report"):
            return self._read_record()

    def _read_record(self) -> RunRecord:
        path = self.path
        missing = [name for name in RUN_FILES if not self._read(path / name).is_file()]
        if missing:
            raise RunDirError(f"{path}: incomplete run directory, missing {', '.join(missing)}")
        status = _read_json_object(self._read(self.status_file))
        if status.get("finished") is not True:
            raise RunDirError(f"{path}: run not finished (run.json: finished is "
                              f"{status.get('finished')!r}, completed_stages "
                              f"{status.get('completed_stages')!r})")
        try:
            cfg = yaml.safe_load(self._read(self.config_file).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RunDirError(f"{self.config_file}: unreadable ({exc})") from None
        strategy = (cfg.get("strategy") or {}).get("name") if isinstance(cfg, dict) else None
        seed = cfg.get("seed") if isinstance(cfg, dict) else None
        if not isinstance(strategy, str) or not isinstance(seed, int):
            raise RunDirError(f"{self.config_file}: missing strategy.name or seed")
        try:
            matrix = pd.read_csv(self._read(self.matrix_file))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.matrix_file}: unreadable ({exc})") from None
        cols = list(matrix.columns)
        if cols[:2] != ["stage", "trained_on"] or len(cols) < 3 or matrix.empty:
            raise RunDirError(f"{self.matrix_file}: expected columns stage, trained_on, "
                              f"<attacks...> and at least one row; found "
                              f"{', '.join(map(str, cols))}")
        attacks = [str(c) for c in cols[2:]]
        try:
            eer = matrix[cols[2:]].to_numpy(dtype=np.float64)
        except ValueError:
            raise RunDirError(f"{self.matrix_file}: non-numeric EER values") from None
        done = status.get("completed_stages")
        if isinstance(done, int) and done != len(matrix):
            raise RunDirError(f"{path}: run.json says {done} completed stages but "
                              f"eer_matrix.csv has {len(matrix)} rows")
        return RunRecord(path=path, strategy=strategy, seed=seed, attacks=tuple(attacks),
                         learned=tuple(str(a) for a in matrix["trained_on"]), eer=eer,
                         metrics=_read_json_object(self._read(self.metrics_file)),
                         data_config=cfg.get("data"))
