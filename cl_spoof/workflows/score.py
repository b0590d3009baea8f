"""Score audio files with a trained checkpoint (``checkpoints/stage_<k>.pt`` of a run).

A checkpoint is loaded with ``torch.load(..., weights_only=True)`` (no code from the
file is ever executed) and its model is rebuilt from the checkpoint's own config, so
a checkpoint scores exactly as it was evaluated during its run
(:func:`cl_spoof.models.loading.load_checkpoint`). A run's own
``checkpoints/stage_<k>.pt`` is read as the run committed it
(:meth:`~cl_spoof.rundir.RunDir.reading`): a stage ``run.json`` does not record is
refused, and one a stopped command left half-added is rolled back first.

Inputs (:func:`cl_spoof.data.inputs.collect_inputs`) may be audio files, folders (every
audio file under them, recursive, sorted) and CSV manifests (their ``path`` column),
mixed; every file is decoded to mono at the checkpoint's sample rate (its config's
``data.sample_rate``) by :func:`cl_spoof.data.audio.stream_audio` whatever its format
and rate, and its level set as in training (``data.level``: the gain is measured on the
file's start, as long as the start a run caches of each utterance, and applied to the
whole file).

Scoring of one file (scores: higher = more bona fide, ``logit[1] - logit[0]``):

- a file shorter than (or as long as) one window is repeated to the window length, as
  in training (:func:`~cl_spoof.data.audio.fix_length`), and scored once;
- a longer file is cut into windows of ``window`` samples (default: the checkpoint's
  input length) starting every ``hop`` samples (default: half a window), plus one
  window ending at the last sample when the hops do not reach it; its score is the
  **mean** of its window scores (:attr:`FileScore.num_windows` says how many).

Windows of many files are batched together. Waveforms are clipped to [-1, 1] as the
training cache does. Files that cannot be decoded are reported in
:attr:`ScoreResult.failed` while the others are still scored; so are the entries of a
folder with an audio name that are not audio files (a FIFO, a device, a folder, a
dangling link: each said what it is, never opened).

The file the scores go to (``cl-spoof score --out``) is checked before any file is
scored (:func:`check_score_output`): an existing file is replaced only when forced, and
never the checkpoint, an input or a file inside a run directory.

Memory does not grow with a file's length: files are decoded and resampled block by
block and their windows scored as they come (:class:`cl_spoof.data.windows.FileWindows`).
Output lines escape white space in paths (:func:`~cl_spoof.infra.formats.join_fields`),
so a file name cannot forge a line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from cl_spoof.data.cache import cache_samples
from cl_spoof.data.inputs import collect_inputs
from cl_spoof.data.table import BONAFIDE, SPOOF
from cl_spoof.data.windows import FileWindows
from cl_spoof.errors import CLSpoofError, ConfigError, DataError
from cl_spoof.infra.checkpoints import CheckpointError
from cl_spoof.infra.files import atomic_write_text, check_output_file
from cl_spoof.infra.formats import join_fields
from cl_spoof.labels import PRETRAINED
from cl_spoof.metrics.eer import logits_to_scores
from cl_spoof.models.loading import LoadedCheckpoint, load_checkpoint
from cl_spoof.rundir import CompareDir, RunDir, results_folder_of

__all__ = [
    "CheckpointRef",
    "FileScore",
    "ScoreResult",
    "ScoreSummary",
    "check_score_output",
    "load_committed",
    "resolve_checkpoint",
    "score_lines",
    "score_paths",
    "write_score_file",
]


Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FileScore:
    """The score of one file: mean of its ``num_windows`` window scores."""

    path: Path
    score: float
    decision: str  # "bonafide" (score >= threshold) or "spoof"
    num_windows: int
    seconds: float  # duration after decoding


@dataclass(frozen=True)
class ScoreSummary:
    """Counts of decisions and the threshold that made them."""

    bonafide: int
    spoof: int
    failed: int
    threshold: float
    threshold_source: Literal["eer", "user"]
    threshold_origin: str  # human-readable: where the threshold came from


@dataclass
class ScoreResult:
    """Scores of every readable file, in input order, and the files that failed."""

    checkpoint: Path
    files: list[FileScore]
    failed: list[tuple[Path, str]]  # (path, problem)
    threshold: float
    threshold_source: Literal["eer", "user"]
    threshold_origin: str
    window: int
    hop: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> ScoreSummary:
        """Counts of bona fide / spoof decisions and failed files, with the threshold."""
        n_bona = sum(f.decision == BONAFIDE for f in self.files)
        return ScoreSummary(bonafide=n_bona, spoof=len(self.files) - n_bona,
                            failed=len(self.failed), threshold=self.threshold,
                            threshold_source=self.threshold_source,
                            threshold_origin=self.threshold_origin)


def _window_scores(model: nn.Module, batch: np.ndarray, device: torch.device) -> np.ndarray:
    """Scores (bona fide logit minus spoof logit) of a ``(B, window)`` batch."""
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
    return logits_to_scores(model(x)).double().cpu().numpy()


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint file and the run directory it belongs to (None when it is elsewhere)."""

    path: Path
    run: RunDir | None = None


def _stages(run: RunDir) -> str:
    present = run.stages_present()
    return ", ".join(map(str, present)) if present else "none"


def resolve_checkpoint(path: str | Path, stage: int | None = None) -> CheckpointRef:
    """The checkpoint ``path`` means: a checkpoint file, or a run directory's last
    completed stage (or its stage ``stage``).

    A missing checkpoint of a run names the stages whose checkpoints are there; a
    compare directory names its runs.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        compare = CompareDir(path)
        if compare.is_compare():
            runs = ", ".join(str(r.path) for r in compare.present_runs()) or "none yet"
            raise CLSpoofError(f"{path}: a compare folder, not a run; give one of its runs: "
                               f"{runs}")
        run = RunDir(path)
        if not run.is_run():
            raise CheckpointError(f"{path}: a folder but not a run directory (no config.yaml);"
                                  " give a run directory or a checkpoint file")
        with run.reading("score"):  # the last committed stage, not one being added
            target = run.last_checkpoint() if stage is None else run.checkpoint_path(stage)
            if target is None:
                raise CheckpointError(f"{path}: no stage has completed yet, so there is no "
                                      "checkpoint to use")
            if not target.is_file():
                raise CheckpointError(f"{target}: checkpoint not found; stages present in "
                                      f"{path}: {_stages(run)}")
        return CheckpointRef(target, run)
    if stage is not None:
        raise CLSpoofError(f"--stage picks a stage of a run directory; {path} is not one (give "
                           "the run directory, or no --stage)")
    run = RunDir(path.parent.parent)
    own = run.is_run() and run.checkpoint_path(0).parent == path.parent
    if not path.exists() and own:
        raise CheckpointError(f"{path}: checkpoint not found; stages present in {run.path}: "
                              f"{_stages(run)}")
    return CheckpointRef(path, run if own else None)


# --------------------------------------------------------------------------- scoring


def _resolve_threshold(threshold: str | float, ckpt: LoadedCheckpoint
                       ) -> tuple[float, Literal["eer", "user"], str]:
    """The threshold value, its source and a description of where it came from."""
    if isinstance(threshold, str) and threshold.strip().lower() == "eer":
        if not math.isfinite(ckpt.eer_threshold):
            raise CheckpointError(f"{ckpt.path}: the checkpoint has no finite EER threshold; "
                                  "give a numeric threshold instead")
        origin = "EER threshold of the checkpoint"
        if ckpt.stage is not None:
            origin += f" (stage {ckpt.stage}"
            origin += (", the pretrained starting model" if ckpt.trained_on == PRETRAINED
                       else f", trained on {ckpt.trained_on}" if ckpt.trained_on else "")
            origin += f", pooled EER {ckpt.pooled_eer:.2f} %" if ckpt.pooled_eer is not None \
                else ""
            origin += ")"
        return ckpt.eer_threshold, "eer", origin
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"threshold must be 'eer' or a number; got {threshold!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"threshold must be finite; got {threshold!r}")
    return value, "user", "given by the user"


def load_committed(checkpoint: Path, device: str) -> LoadedCheckpoint:
    """The checkpoint, or, for a run's ``checkpoints/stage_<k>.pt``, the committed one:
    a stage a stopped command left half-added is never scored (it is rolled back)."""
    found = RunDir.of_checkpoint(checkpoint)
    if found is None:
        return load_checkpoint(checkpoint, device)
    run, stage = found
    with run.reading("score"):
        return load_checkpoint(run.committed_checkpoint(stage), device)


def check_score_output(out: Path, checkpoint: Path, inputs: Sequence[Path],
                       files: Sequence[Path], force: bool = False) -> None:
    """Refuse, before any work, an ``out`` file that must not be written: one that exists
    (unless ``force``), and never — not even forced — the checkpoint, an input (a file or
    manifest given, or an audio file found), by any of its names, or a file inside a run
    or compare directory (:func:`~cl_spoof.infra.files.check_output_file`)."""
    check_output_file(out, force=force, inputs=[checkpoint, *inputs, *files],
                      guard=results_folder_of)


def window_means(ckpt: LoadedCheckpoint, paths: Sequence[Path], win: int, step: int,
                 batch_size: int, progress: Progress | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """Mean window score of every file of ``paths`` (module docstring: windows of ``win``
    samples every ``step``, level set on the file's start, windows of many files batched):
    ``(means, windows per file, samples per file, {file index: problem})``; a file that
    could not be decoded has a problem and no mean."""
    total = len(paths)
    sums = np.zeros(total, dtype=np.float64)
    counts = np.zeros(total, dtype=np.int64)
    lengths = np.zeros(total, dtype=np.int64)
    problems: dict[int, str] = {}
    pending: list[tuple[int, np.ndarray]] = []  # (file index, (k, win) windows)
    n_pending = 0

    def flush(final: bool) -> None:
        """Score full batches of pending windows (and the rest when ``final``)."""
        nonlocal n_pending
        while n_pending >= batch_size or (final and n_pending):
            take = min(batch_size, n_pending)
            owners, parts, need = [], [], take
            while need:
                idx, arr = pending[0]
                k = min(need, arr.shape[0])
                parts.append(arr[:k])
                owners.append(np.full(k, idx, dtype=np.int64))
                if k == arr.shape[0]:
                    pending.pop(0)
                else:
                    pending[0] = (idx, arr[k:])
                need -= k
            scores = _window_scores(ckpt.model, np.concatenate(parts), ckpt.device)
            owner = np.concatenate(owners)
            np.add.at(sums, owner, scores)
            np.add.at(counts, owner, 1)
            n_pending -= take

    if progress is not None:
        progress(0, total)
    with torch.inference_mode():
        for i, path in enumerate(paths):
            windows = FileWindows(path, win, step, ckpt.sample_rate, ckpt.level,
                                   ckpt.level_db, cache_samples(ckpt.num_samples))
            try:
                for piece in windows:
                    pending.append((i, piece))
                    n_pending += piece.shape[0]
                    flush(final=False)
            except DataError as exc:
                msg, prefix = str(exc), f"{path}: "
                problems[i] = msg[len(prefix):] if msg.startswith(prefix) else msg
            lengths[i] = windows.length
            if progress is not None:  # a file is done once all its windows are scored
                progress(pending[0][0] if pending else i + 1, total)
        flush(final=True)
    if progress is not None:
        progress(total, total)

    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means, counts, lengths, problems


def score_paths(
    checkpoint: Path,
    inputs: Sequence[Path],
    threshold: str | float = "eer",
    window: int | None = None,
    hop: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    progress: Progress | None = None,
    out: Path | None = None,
    force: bool = False,
) -> ScoreResult:
    """Score every audio file of ``inputs`` with ``checkpoint``; see the module docstring.

    ``window``/``hop`` are in samples at the checkpoint's rate (defaults: its input length
    and half of it). ``threshold`` is ``"eer"`` (the checkpoint's pooled EER threshold)
    or a number; a file is ``bonafide`` when its score >= threshold. ``progress`` gets
    ``(files done, files total)``. ``out`` (with ``force``) is the file the caller will
    write the scores to: checked once the inputs are listed, before any file is scored
    (:func:`check_score_output`), not written. Raises :class:`CLSpoofError` for a bad
    checkpoint, bad settings, no audio input, a refused ``out``, or when no file at all
    could be scored.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer; got {batch_size!r}")
    ckpt = load_committed(checkpoint, device)
    value, source, origin = _resolve_threshold(threshold, ckpt)
    win = ckpt.num_samples if window is None else window
    min_len = ckpt.model.min_length()
    if isinstance(win, bool) or not isinstance(win, int) or win < min_len:
        raise ConfigError(f"window must be an integer of at least {min_len} samples for this "
                          f"model; got {window!r}")
    step = max(1, win // 2) if hop is None else hop
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= win:
        raise ConfigError(f"hop must be an integer between 1 and the window ({win}); "
                          f"got {hop!r}")
    paths = collect_inputs(inputs)
    if out is not None:
        check_score_output(out, checkpoint, inputs, paths, force)
    total = len(paths)

    means, counts, lengths, problems = window_means(ckpt, paths, win, step, batch_size,
                                                    progress)

    files: list[FileScore] = []
    failed: list[tuple[Path, str]] = []
    for i, p in enumerate(paths):
        if i in problems:
            failed.append((p, problems[i]))
            continue
        score = float(means[i])
        if not math.isfinite(score):
            failed.append((p, "the model gave a non-finite score"))
            continue
        files.append(FileScore(path=p, score=score,
                               decision=BONAFIDE if score >= value else SPOOF,
                               num_windows=int(counts[i]),
                               seconds=float(lengths[i]) / ckpt.sample_rate))
    if not files:
        shown = "; ".join(f"{p}: {why}" for p, why in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        raise DataError(f"none of the {total} input file(s) could be scored: {shown}{more}")
    return ScoreResult(checkpoint=ckpt.path, files=files, failed=failed, threshold=value,
                       threshold_source=source, threshold_origin=origin, window=win, hop=step,
                       extra={"preset": ckpt.preset, "stage": ckpt.stage,
                              "trained_on": ckpt.trained_on})


def score_lines(result: ScoreResult) -> list[str]:
    """``path score decision`` lines (score with 6 decimals), fields escaped
    (:func:`~cl_spoof.infra.formats.split_fields` reads them back)."""
    return [join_fields([f.path, f"{f.score:.6f}", f.decision]) for f in result.files]


def write_score_file(path: str | Path, result: ScoreResult) -> None:
    """Write :func:`score_lines` to ``path`` atomically.

    Only scored files are listed (failed ones are in ``result.failed``). White space,
    line breaks and ``%`` in a path are escaped as ``%XX`` (as in URLs), so every line
    has exactly three space-separated fields.
    """
    atomic_write_text(path, "".join(line + "\n" for line in score_lines(result)))
