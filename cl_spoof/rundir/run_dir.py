"""A run directory: its layout, and the only code that reads or writes its files.

- ``config.yaml``: the resolved config;
- ``run.json``: status (``completed_stages``: how many trained stages completed;
  ``stage_0``: whether stage 0 is recorded; the finished flag; ``stage_base``: the
  number of the first trained stage, 1), the run's label (what the reports call it:
  ``--label``, or the strategy with its hyper-parameters that differ from the
  defaults), a digest of its data (:func:`data_digest`), the versions of cl-spoof,
  torch and Avalanche it was started with, and the resolved config with its digest,
  written when the run starts; ``--resume`` refuses a ``config.yaml`` that no longer
  says what the run was started with, and a run folder of an older cl-spoof that
  numbered its stages from 0;
- ``eer_matrix.csv``: ``stage, trained_on`` then one column per attack (EER %), one
  row per stage (stage 0: ``trained_on`` is ``pretrained``), then with
  ``data.pretrained_eval`` one column ``pretrained:<attack>`` per attack of that set;
- ``metrics.json``: :func:`cl_spoof.metrics.continual.summarize` of the matrix, the
  other continual metrics of the registry (:mod:`cl_spoof.metrics.definitions`: the
  average forgetting), and ``official``: one entry per stage with the stage metrics
  of its scores (:mod:`cl_spoof.metrics.official`), the last stage's also as
  ``final_<key>`` (``final_pooled_eer``, ``final_min_dcf``, ...);
Stages are numbered alike in every file, column and message: the trained stages
1..N, and stage 0 for the starting model of a run that starts from a pretrained one
(``model.init``), evaluated before any training (a run without ``model.init`` has no
stage 0). :meth:`RunDir.checkpoint_path` and :meth:`RunDir.score_file` are the only
place that turns a stage number into a file name.

- ``scores/stage_<k>.txt``: ASVspoof 2019-style score lines ``utt_id attack key score``
  (``metrics.score_format: asvspoof2019``, the default), or
  ``scores/stage_<k>.tsv`` in the ASVspoof 5 Track 1 submission format
  (``filename<TAB>cm-score``) with its key file ``scores/stage_<k>.keys.tsv``
  (``filename<TAB>cm-label``) for the organisers' ``evaluation.py --cm_keys``;
- ``checkpoints/stage_<k>.pt``: model, optimizer and strategy state, loadable with
  ``torch.load(..., weights_only=True)``;
- ``logs/``: Avalanche's text log (``log.txt``) and CSV logs (a resumed run's in
  ``logs/resumed_at_stage_<k>/``, an added attack's in ``logs/added_<NAME>/``), and
  with ``train.loggers: [tensorboard]`` the TensorBoard log in ``tensorboard/`` there;
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
started on (:meth:`RunDir.record_start_data`), and ``--resume`` refuses other data
(:meth:`RunDir.check_data`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
from cl_spoof.infra.formats import read_csv_exact, write_csv
from cl_spoof.infra.names import check_name, inside
from cl_spoof.infra.transaction import UNDO_PREFIX, OwnedFolder, Transaction, View, is_hidden
from cl_spoof.labels import PRETRAINED_PREFIX
from cl_spoof.metrics.definitions import continual_metrics, per_stage_metrics

if TYPE_CHECKING:  # numpy and pandas load when a table is read or written: a question
    import numpy as np  # about a run (finished? which stages?) is answered without them
    import pandas as pd

#: The files of a finished run (what a report reads).
RUN_FILES = ("config.yaml", "eer_matrix.csv", "metrics.json", "run.json")
#: The folders of a run that commands write into.
RUN_FOLDERS = ("scores", "checkpoints", "logs", "added", "report")
#: The number of a run's first trained stage (``run.json``'s ``stage_base``); stage 0 is
#: the starting model of a run from a pretrained model. Run folders of older cl-spoof
#: versions have no ``stage_base``: they numbered the trained stages from 0.
STAGE_BASE = 1


class RunDirError(CLSpoofError):
    """A run or compare directory that is not what its reader needs (named in the message)."""


@dataclass(frozen=True)
class RunProgress:
    """What a run has recorded so far, carried from stage to stage: one EER-matrix row
    per recorded stage (``stage``, ``trained_on``, one EER per attack; stage 0, the
    starting model, first when there is one) and the official metrics of each stage."""

    rows: tuple[dict[str, Any], ...] = ()
    official: tuple[dict[str, Any], ...] = ()

    @property
    def completed(self) -> int:
        """Trained stages recorded (stage 0, the starting model, is not one)."""
        return sum(1 for row in self.rows if int(row["stage"]) >= STAGE_BASE)

    @property
    def has_stage_0(self) -> bool:
        """Whether stage 0 (the starting model, evaluated before training) is recorded."""
        return any(int(row["stage"]) == 0 for row in self.rows)

    @property
    def last_stage(self) -> int | None:
        """The number of the last recorded stage (None before any)."""
        return int(self.rows[-1]["stage"]) if self.rows else None

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
    stages: tuple[int, ...] = ()  # the number of each row's stage (0: the starting model)
    label: str = ""  # what reports call the run (run.json; the default label for older runs)
    config: dict = field(default_factory=dict)  # config.yaml as stored
    # run.json's record of how the run was made: data_digest, versions, config_digest
    info: dict = field(default_factory=dict)
    # the attacks each stage label learns, when stages learn families of attacks
    families: dict[str, tuple[str, ...]] | None = None


def pretrained_columns(columns: Sequence[Any]) -> list[str]:
    """The ``pretrained:<attack>`` columns among ``columns`` (the EER on
    ``data.pretrained_eval``), in their order."""
    return [str(c) for c in columns if str(c).startswith(PRETRAINED_PREFIX)]


def _number_or_none(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _mean_or_none(values: np.ndarray) -> float | None:
    import numpy as np

    return None if np.isnan(values).all() else float(np.nanmean(values))


def pretrained_summary(columns: pd.DataFrame) -> dict[str, Any]:
    """``metrics.json``'s ``pretrained_eval``: the mean EER over the ``pretrained:<attack>``
    columns after every stage, its last value and (with a stage 0) its change since
    stage 0, the forgetting of the pretraining (positive = forgot)."""
    import numpy as np

    means = [_mean_or_none(row) for row in columns.to_numpy(dtype=np.float64)]
    stages = [int(k) for k in columns.index]
    final = means[-1]
    start = means[0] if stages[0] == 0 else None
    return {"columns": list(columns.columns), "stages": stages, "avg_eer": means,
            "final_avg_eer": final,
            "forgetting": None if final is None or start is None else final - start}


def write_scores(path: Path, scores: pd.DataFrame, fmt: str = "asvspoof2019") -> None:
    """A stage's score file (higher score = more bona fide) in format ``fmt``, written
    atomically; the ASVspoof 5 format also gets its key file (``<stem>.keys.tsv``)."""
    from cl_spoof.metrics.score_files import write_asvspoof5_keys, write_score_file

    write_score_file(path, scores, fmt)
    if fmt == "asvspoof5":
        write_asvspoof5_keys(path.with_suffix(".keys.tsv"), scores)


#: The longest label a run may have (it heads table columns and legend entries).
MAX_LABEL = 80


def check_label(label: str, what: str = "--label") -> str:
    """``label`` stripped, if it can name a run: 1 to :data:`MAX_LABEL` printable characters
    on one line; :class:`RunDirError` naming ``what`` otherwise."""
    text = label.strip()
    if not text or len(text) > MAX_LABEL or not text.isprintable():
        raise RunDirError(f"{what}: a label is 1 to {MAX_LABEL} printable characters on one "
                          f"line, got {label!r}")
    return text


#: The columns of the utterance table a data digest covers (not the paths: the same
#: corpus at another place on disk has the same digest).
DIGEST_COLUMNS = ("utt_id", "label", "attack", "speaker", "split")


def data_digest(table: pd.DataFrame) -> str:
    """SHA-256 of a run's utterance table: its ids, labels, attacks, speakers and splits,
    in utterance-id order. Equal digests: the same utterances, labelled and split alike."""
    cols = [c for c in DIGEST_COLUMNS if c in table.columns]
    rows = table[cols].astype(str).sort_values(cols[:1] or cols).to_csv(index=False)
    return hashlib.sha256(rows.encode("utf-8")).hexdigest()


def software_versions() -> dict[str, str]:
    """The versions of cl-spoof, torch and Avalanche installed (read from the package
    metadata: nothing is imported)."""
    from importlib import metadata

    out = {}
    for name, dist in (("cl-spoof", "cl-spoof"), ("torch", "torch"),
                       ("avalanche", "avalanche-lib")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def default_run_label(cfg: RunConfig) -> str:
    """The label of a run given none: its strategy with the hyper-parameters that differ
    from the strategy's defaults (``dfwf (kd_weight=3)``)."""
    from cl_spoof.strategies.registry import default_label  # light: no torch, no Avalanche

    return default_label(cfg.strategy.name, cfg.strategy.hyperparameters)


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


def read_matrix_csv(path: Path) -> pd.DataFrame:
    """``eer_matrix.csv`` as written: ``trained_on`` and the attack columns' names exactly
    as the names they hold (an attack may be called ``NA``, ``None`` or ``null``), the
    EERs as numbers (an empty cell: not evaluated)."""
    return read_csv_exact(path, text_columns=["trained_on"])


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

    ``cfg`` is the config the run was started with; only writing needs it. ``label``
    names a new run (default: :func:`default_run_label`); an existing run keeps the
    label its ``run.json`` holds.
    """

    def __init__(self, path: str | Path, cfg: RunConfig | None = None,
                 label: str | None = None) -> None:
        self.path = Path(path)
        self._cfg = cfg
        self._label = None if label is None else check_label(label)
        self._data_digest: str | None = None
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
        """``scores/stage_<k>.txt`` (ASVspoof 2019 format) or ``.tsv`` (ASVspoof 5) of
        stage ``k`` (1..N: trained stages; 0: the starting model)."""
        return self.path / "scores" / f"stage_{stage}.{'tsv' if fmt == 'asvspoof5' else 'txt'}"

    def checkpoint_path(self, stage: int) -> Path:
        """``checkpoints/stage_<k>.pt`` of stage ``k`` (1..N: trained stages; 0: the
        starting model)."""
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
        """``logs/``, or ``logs/resumed_at_stage_<k>/`` for a run resumed after stage
        ``k`` (earlier logs are never overwritten)."""
        return self.path / "logs" / (f"resumed_at_stage_{resumed_at}"
                                     if resumed_at is not None else "")

    def tensorboard_dir(self, resumed_at: int | None = None) -> Path:
        """``tensorboard/`` in :meth:`log_dir` (``train.loggers: [tensorboard]``)."""
        return self.log_dir(resumed_at) / "tensorboard"

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
        if status is not None:
            done = status["completed_stages"]
            if status.get("stage_base") != STAGE_BASE:  # an older cl-spoof counted from 0
                recorded = range(done)
            else:
                recorded = range(0 if status.get("stage_0") is True else STAGE_BASE, done + 1)
            if stage not in recorded:
                raise RunDirError(f"{self.checkpoint_path(stage)}: stage {stage} is not part "
                                  f"of the run: run.json records {done} completed stage(s) (a "
                                  "command that was writing it stopped, or has not finished "
                                  "yet); use the checkpoint of a completed stage")
        return self._read(self.checkpoint_path(stage))

    # ------------------------------------------------------------------ questions

    def is_run(self) -> bool:
        """Whether this is a run directory (it has its ``config.yaml``)."""
        return self.config_file.is_file()

    def has_own_files(self) -> bool:
        """Whether the folder holds the two files every run writes first (``config.yaml``
        and ``run.json``): it is a run directory, finished or not."""
        return self.config_file.is_file() and self.status_file.is_file()

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
        return load_config(self._read(self.config_file), relative_to_file=False)

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
        """Trained stages ``run.json`` says completed; 0 when it is absent or unreadable
        (for what to say after an interruption, never for deciding what to train)."""
        try:
            done = json.loads(self.status_file.read_text())["completed_stages"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return done if isinstance(done, int) and not isinstance(done, bool) and done > 0 else 0

    def recorded_stages(self) -> int:
        """Stages ``run.json`` says are recorded, stage 0 included; 0 when it is absent or
        unreadable (for what to say after an interruption, never for deciding what to
        train)."""
        try:
            stage_0 = json.loads(self.status_file.read_text()).get("stage_0") is True
        except (OSError, ValueError, AttributeError):
            stage_0 = False
        return self.completed_stages() + (1 if stage_0 else 0)

    def stages_present(self) -> list[int]:
        """Stages whose checkpoint file is there, in order."""
        found = []
        for path in self._read(self.path).glob("checkpoints/stage_*.pt"):
            number = path.stem[len("stage_"):]
            if number.isdigit() and path.is_file():
                found.append(int(number))
        return sorted(found)

    def last_stage(self) -> int | None:
        """The number of the last stage ``run.json`` says is recorded: the last trained
        stage, else 0 when the starting model is, else None."""
        status = self.status()
        if status is None:
            return None
        done = status["completed_stages"]
        return done if done else (0 if status.get("stage_0") is True else None)

    def last_checkpoint(self) -> Path | None:
        """The checkpoint of the last stage ``run.json`` says is recorded (None before
        any); it may be missing on disk."""
        last = self.last_stage()
        return None if last is None else self.checkpoint_path(last)

    def check_stage_numbering(self) -> None:
        """Refuse a run folder written by a cl-spoof that numbered the trained stages from
        0 (its ``run.json`` has no ``stage_base``): its files cannot be continued."""
        status = self.status()
        if status is not None and status.get("stage_base") != STAGE_BASE:
            raise RunDirError(f"{self.path}: written by an older cl-spoof that numbered stages "
                              "from 0; it cannot be continued (start a new run; its scores, "
                              "checkpoints and report stay readable)")

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
        on_disk = load_config(config, relative_to_file=False)
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
        if status is not None:
            self.check_stage_numbering()
        recorded = 0 if status is None else \
            status["completed_stages"] + (1 if status.get("stage_0") is True else 0)
        if status is None or recorded == 0:
            return RunProgress()  # interrupted before the first stage ended
        if status["finished"]:
            raise RunDirError(f"{self.path}: the run already finished; nothing to resume")

        matrix_file = self.matrix_file
        try:
            matrix = read_matrix_csv(matrix_file)
        except FileNotFoundError:
            raise RunDirError(f"{matrix_file}: missing although run.json says "
                              f"{recorded} stage(s) are recorded") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{matrix_file}: unreadable ({type(exc).__name__})") from None
        if list(matrix.columns[:2]) != ["stage", "trained_on"] or len(matrix) < recorded:
            raise RunDirError(f"{matrix_file}: damaged (expected columns stage, trained_on and "
                              f"{recorded} row(s), as run.json says)")
        rows = matrix.to_dict("records")[:recorded]
        for row in rows:
            if not self.checkpoint_path(int(row["stage"])).is_file():
                path = self.checkpoint_path(int(row["stage"]))
                raise RunDirError(f"{self.path}: {path.relative_to(self.path)} is missing")
        return RunProgress(rows=tuple(rows), official=tuple(self.read_official(len(rows))))

    # ------------------------------------------------------------------ stages

    def read_official(self, recorded: int) -> list[dict]:
        """The official metrics of the first ``recorded`` stages (from ``metrics.json``)."""
        path = self._read(self.metrics_file)
        if recorded == 0 or not path.is_file():
            return []
        return list(json.loads(path.read_text()).get("official", []))[:recorded]

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
            return read_matrix_csv(self._read(self.matrix_file))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.matrix_file}: unreadable "
                              f"({type(exc).__name__})") from None

    def frames(self, progress: RunProgress, attacks: Sequence[str],
               families: Mapping[str, Sequence[str]] | None = None
               ) -> tuple[pd.DataFrame, dict]:
        """The EER matrix and metrics of ``progress`` (what :meth:`write_stage` writes).

        The continual metrics summarise the trained stages (1..N), so a run from a
        pretrained model compares with one from scratch; stage 0 adds ``zero_shot`` (its
        EER on every attack), and the ``pretrained:<attack>`` columns of
        ``data.pretrained_eval`` (after the attacks, never trained on) add
        ``pretrained_eval``. A run of stage 0 alone is summarised by that stage.
        ``families``: the attacks each stage label learns, when a stage learns several
        (recorded in ``metrics.json``).
        """
        import numpy as np
        import pandas as pd

        from cl_spoof.metrics.continual import summarize

        attacks = list(attacks)
        official = list(progress.official)
        matrix = pd.DataFrame(list(progress.rows)).set_index("stage")
        kept = pretrained_columns(matrix.columns)
        matrix = matrix[["trained_on", *attacks, *kept]]
        trained = matrix[matrix.index >= STAGE_BASE]
        basis = trained if len(trained) else matrix
        learned = [str(a) for a in basis["trained_on"]]
        metrics = summarize(basis[attacks], learned, families)
        for metric in continual_metrics():
            if metric.from_matrix is not None:
                metrics[metric.key] = metric.from_matrix(basis[attacks], learned, families)
        if progress.has_stage_0:
            zero = matrix.loc[0, attacks].to_numpy(dtype=np.float64)
            metrics["zero_shot"] = {"avg_eer": _mean_or_none(zero),
                                    "eer": {a: _number_or_none(v)
                                            for a, v in zip(attacks, zero, strict=True)}}
        if kept:
            metrics["pretrained_eval"] = pretrained_summary(matrix[kept])
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
                    seconds: float, families: Mapping[str, Sequence[str]] | None = None
                    ) -> tuple[pd.DataFrame, dict]:
        """``eer_matrix.csv``, ``metrics.json`` and ``run.json`` after a stage."""
        matrix, metrics = self.frames(progress, attacks, families)
        with atomic_path(self.matrix_file) as tmp:
            matrix.to_csv(tmp, float_format="%.4f")
        atomic_write_text(self.metrics_file, json.dumps(metrics, indent=2) + "\n")
        self._write_status(progress.completed, progress.completed if finished else None,
                           finished, seconds, progress.has_stage_0)
        return matrix, metrics

    def record_data(self, table: pd.DataFrame) -> None:
        """Remember the digest of the utterance table the run uses (:func:`data_digest`);
        ``run.json`` holds it from the next write on."""
        self._data_digest = data_digest(table)

    def _stored_status(self) -> dict:
        """``run.json`` as it is (empty when absent or unreadable), for what it keeps."""
        try:
            status = json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        return status if isinstance(status, dict) else {}

    def _write_status(self, completed: int, total: int | None, finished: bool,
                      seconds: float, stage_0: bool = False) -> None:
        """``run.json``: progress, the run's label, data digest and software versions
        (an existing run keeps its own), the config the run was started with (and its
        digest), and what data it was started on (kept from the run's ``run.json``)."""
        stored = to_dict(self.cfg)
        before = self._stored_status()
        label = self._label or before.get("label") or default_run_label(self.cfg)
        digest = self._data_digest or before.get("data_digest")
        status = {"stage_base": STAGE_BASE, "completed_stages": completed,
                  "total_stages": total, "stage_0": stage_0, "finished": finished,
                  "seconds": round(seconds, 2), "strategy": self.cfg.strategy.name,
                  "seed": self.cfg.seed, "label": label, "data_digest": digest,
                  "versions": before.get("versions") or software_versions(),
                  "config_digest": config_digest(stored), "config": stored}
        data = self._data if self._data is not None else before.get("data")
        if data is not None:
            status["data"] = data
        atomic_write_text(self.status_file, json.dumps(status, indent=2) + "\n")

    # ------------------------------------------------------------------ the data

    def record_start_data(self, record: dict) -> None:
        """Record in ``run.json`` what data a new run starts on (a
        :func:`~cl_spoof.data.table.data_record`, checked by :meth:`check_data` on
        resume)."""
        status = self.status() or {"completed_stages": 0, "finished": False}
        self._data = record
        self._write_status(status["completed_stages"], status.get("total_stages"),
                           status["finished"], float(status.get("seconds") or 0.0),
                           status.get("stage_0") is True)

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
        import pandas as pd

        names = self.added_entries()
        if not names:
            return None
        frames = []
        for n in names:
            path = inside(self.path, "added", f"{n['name']}.csv")
            try:
                frames.append(read_csv_exact(self._read(path)))
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
        import numpy as np

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
            matrix = read_matrix_csv(self._read(self.matrix_file))
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
        recorded = done + (1 if status.get("stage_0") is True else 0) \
            if isinstance(done, int) else None
        if recorded is not None and recorded != len(matrix):
            raise RunDirError(f"{path}: run.json says {recorded} recorded stage(s) but "
                              f"eer_matrix.csv has {len(matrix)} rows")
        try:
            stages = [int(k) for k in matrix["stage"]]
        except (TypeError, ValueError):
            raise RunDirError(f"{self.matrix_file}: non-integer stage numbers") from None
        if status.get("stage_base") != STAGE_BASE:  # an older cl-spoof counted from 0
            stages = [k + STAGE_BASE for k in stages]
        label = status.get("label")
        if not isinstance(label, str) or not label:  # a run of an older cl-spoof
            label = _label_of(cfg)
        info = {k: status.get(k) for k in ("data_digest", "versions", "config_digest")}
        metrics = _read_json_object(self._read(self.metrics_file))
        families = metrics.get("families")
        if families is not None and not (isinstance(families, dict) and all(
                isinstance(m, list) and all(isinstance(a, str) for a in m)
                for m in families.values())):
            raise RunDirError(f"{self.metrics_file}: damaged (families must map each family "
                              "to a list of attacks)")
        return RunRecord(path=path, strategy=strategy, seed=seed, attacks=tuple(attacks),
                         learned=tuple(str(a) for a in matrix["trained_on"]), eer=eer,
                         metrics=metrics, data_config=cfg.get("data"), stages=tuple(stages),
                         label=label, config=cfg, info=info,
                         families=None if families is None else {
                             str(f): tuple(m) for f, m in families.items()})

    def final_scores(self) -> pd.DataFrame | None:
        """The test scores of the run's last committed stage (``utt_id``, ``attack``,
        ``key``, ``score``; ``attack`` is empty for spoofs of an ASVspoof 5 score file,
        which does not name them), or None when the score file is not there. The last row
        of ``eer_matrix.csv`` numbers its stage as the score files do."""
        with self.reading("report"):
            return self._final_scores()

    def _final_scores(self) -> pd.DataFrame | None:
        import pandas as pd

        from cl_spoof.metrics.score_files import (
            read_asvspoof5_scores,
            read_asvspoof2019_scores,
        )

        matrix = self.read_matrix()
        if matrix.empty or "stage" not in matrix.columns:
            return None
        stage = int(matrix["stage"].iloc[-1])
        try:
            config = yaml.safe_load(self._read(self.config_file).read_text(encoding="utf-8")) \
                or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            config = {}
        metrics_section = config.get("metrics") if isinstance(config, dict) else None
        fmt = (metrics_section or {}).get("score_format", "asvspoof2019")
        path = self._read(self.score_file(stage, fmt))
        if not path.is_file():
            return None
        if fmt != "asvspoof5":
            return read_asvspoof2019_scores(path)
        keys = pd.read_csv(path.with_suffix(".keys.tsv"), sep="\t", dtype=str)
        scores = read_asvspoof5_scores(path).merge(
            keys.rename(columns={"filename": "utt_id", "cm-label": "key"}), on="utt_id")
        scores["attack"] = ["-" if k == "bonafide" else "" for k in scores["key"]]
        return scores[["utt_id", "attack", "key", "score"]]


def _label_of(config: Any) -> str:
    """The default label of a stored config (its strategy name when it does not validate)."""
    strategy = config.get("strategy") if isinstance(config, dict) else None
    if not isinstance(strategy, dict):
        return "?"
    name = str(strategy.get("name", "?"))
    from cl_spoof.strategies.registry import default_label

    return default_label(name, {k: v for k, v in strategy.items() if k != "name"})
