"""Score audio files with a trained checkpoint (``checkpoints/stage_<k>.pt`` of a run).

A checkpoint is loaded with ``torch.load(..., weights_only=True)`` (no code from the
file is ever executed) and its model is rebuilt from the checkpoint's own config, so
a checkpoint scores exactly as it was evaluated during its run.

Inputs may be audio files, folders (every audio file under them, recursive, sorted)
and CSV manifests (their ``path`` column), mixed; every file is decoded to mono at the
checkpoint's sample rate (its config's ``data.sample_rate``) by
:func:`cl_spoof.data.audio.stream_audio` whatever its format and rate, and its level set
as in training (``data.level``: the gain is measured on the file's start, as long as
the start a run caches of each utterance, and applied to the whole file).

Scoring of one file (scores: higher = more bona fide, ``logit[1] - logit[0]``):

- a file shorter than (or as long as) one window is repeated to the window length, as
  in training (:func:`~cl_spoof.data.audio.fix_length`), and scored once;
- a longer file is cut into windows of ``window`` samples (default: the checkpoint's
  input length) starting every ``hop`` samples (default: half a window), plus one
  window ending at the last sample when the hops do not reach it; its score is the
  **mean** of its window scores (:attr:`FileScore.num_windows` says how many).

Windows of many files are batched together. Waveforms are clipped to [-1, 1] as the
training cache does. Files that cannot be decoded are reported in
:attr:`ScoreResult.failed` while the others are still scored.

Memory does not grow with a file's length: files are decoded and resampled block by
block (:func:`~cl_spoof.data.audio.stream_audio`) and their windows scored as they
come. Output lines escape white space in paths
(:func:`~cl_spoof.infra.formats.join_fields`), so a file name cannot forge a line.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from cl_spoof.data.audio import (
    SAMPLE_RATE,
    fix_length,
    level_gain,
    list_audio_files,
    stream_audio,
)
from cl_spoof.data.cache import cache_samples
from cl_spoof.data.manifest import read_manifest
from cl_spoof.data.table import BONAFIDE, SPOOF
from cl_spoof.errors import ConfigError, DataError, FileSystemError, os_error_message
from cl_spoof.infra.checkpoints import CheckpointError, load_model_state, read_checkpoint
from cl_spoof.infra.files import atomic_write_text
from cl_spoof.infra.formats import join_fields
from cl_spoof.infra.runtime import resolve_device
from cl_spoof.metrics.eer import logits_to_scores
from cl_spoof.models import Detector, build_model
from cl_spoof.models.exits import strip_exits

__all__ = [
    "FileScore",
    "LoadedCheckpoint",
    "ScoreResult",
    "ScoreSummary",
    "check_output_file",
    "collect_inputs",
    "load_checkpoint",
    "score_lines",
    "score_paths",
    "window_starts",
    "write_score_file",
]


Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's model (eval mode, on its device) and what scoring needs from it."""

    path: Path
    model: Detector
    device: torch.device
    num_samples: int  # the model's training input length (samples at sample_rate)
    eer_threshold: float  # NaN when the checkpoint has none
    preset: str
    stage: int | None = None
    trained_on: str | None = None
    pooled_eer: float | None = None  # percent
    sample_rate: int = SAMPLE_RATE  # data.sample_rate of the run
    level: str = "none"  # data.level of the run (checkpoints from before it: none)
    level_db: float | None = None


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


# --------------------------------------------------------------------------- checkpoint


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """Load a run checkpoint safely and rebuild its model (eval mode, on ``device``).

    Raises :class:`CheckpointError` naming the file for a missing, truncated or
    corrupt file, a file that is not a cl-spoof checkpoint, and a model state that
    does not fit the model the checkpoint's config describes.
    """
    path = Path(path).expanduser()
    dev = resolve_device(device)
    ckpt = read_checkpoint(path)
    for key in ("config", "model_state"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: damaged checkpoint: no {key!r} entry")
    config = ckpt["config"]
    model_cfg = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("preset"), str):
        raise CheckpointError(f"{path}: damaged checkpoint: its config has no model.preset")
    preset = model_cfg["preset"]
    overrides = model_cfg.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise CheckpointError(f"{path}: damaged checkpoint: model.overrides is not a mapping")
    data_cfg = config.get("data") if isinstance(config.get("data"), dict) else {}
    sample_rate = data_cfg.get("sample_rate", SAMPLE_RATE)
    level, level_db = data_cfg.get("level", "none"), data_cfg.get("level_db")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1000 \
            or level not in ("none", "rms", "peak") \
            or not (level_db is None or isinstance(level_db, (int, float))):
        raise CheckpointError(f"{path}: damaged checkpoint: data.sample_rate {sample_rate!r}, "
                              f"data.level {level!r}, data.level_db {level_db!r}")
    try:
        model = build_model(preset, sample_rate=sample_rate, **overrides)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config describes no valid model: {exc}") from None

    # Self-distillation exits are training-only: scoring uses the deepest exit (the head).
    state = ckpt["model_state"]
    if isinstance(state, dict):
        state = strip_exits(state)
    load_model_state(model, state, path,
                     f"the {preset!r} model its config describes (overrides {overrides or 'none'})")

    num_samples = ckpt.get("num_samples")
    if num_samples is None:
        num_samples = data_cfg.get("num_samples")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise CheckpointError(f"{path}: damaged checkpoint: no valid num_samples "
                              f"(got {num_samples!r})")
    try:
        threshold = float(ckpt.get("eer_threshold", math.nan))
    except (TypeError, ValueError):
        threshold = math.nan
    pooled = ckpt.get("pooled_eer")
    stage = ckpt.get("stage")
    trained_on = ckpt.get("trained_on")
    model.to(dev).eval()
    return LoadedCheckpoint(
        path=path, model=model, device=dev, num_samples=num_samples, eer_threshold=threshold,
        preset=preset, stage=stage if isinstance(stage, int) else None,
        trained_on=trained_on if isinstance(trained_on, str) else None,
        pooled_eer=float(pooled) if isinstance(pooled, (int, float)) else None,
        sample_rate=sample_rate, level=level,
        level_db=float(level_db) if level_db is not None else None,
    )


# --------------------------------------------------------------------------- inputs


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files, folders and ``.csv`` manifests into audio paths (first occurrence kept).

    Folders give every audio file under them (recursive, sorted); manifests give their
    ``path`` column. Raises :class:`DataError` for a missing input, an empty folder or
    manifest, or when no audio file is found at all.
    """
    if not inputs:
        raise DataError("no input given: name audio files, folders or CSV manifests")
    found: list[Path] = []
    for raw in inputs:
        item = Path(raw).expanduser()
        if item.is_dir():
            files = list_audio_files(item)
            if not files:
                raise DataError(f"{item}: no audio files under this folder")
        elif item.is_file() and item.suffix.lower() == ".csv":
            files = [Path(p) for p in read_manifest(item)["path"]]
        elif item.is_file():
            files = [item]
        else:
            raise DataError(f"{item}: no such file or folder")
        found.extend(files)
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


# --------------------------------------------------------------------------- windows


def window_starts(length: int, window: int, hop: int) -> np.ndarray:
    """Start samples of the windows scored for a ``length``-sample waveform.

    One window (start 0) when ``length <= window`` (the clip is then repeated to
    ``window``); otherwise every ``hop`` samples, plus a last window ending at the
    final sample when the hops do not reach it.
    """
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return starts


#: Windows handed over at a time (views into the decoded block, copied when batched).
WINDOW_CHUNK = 64


class _FileWindows:
    """The windows of one file (:func:`window_starts`), streamed: iterating yields
    ``(k, window)`` arrays; :attr:`length` is the file's length in samples at
    ``sample_rate`` once iterated. Raises :class:`DataError` for an unreadable file or
    NaN/Inf samples.

    With a level mode other than ``none`` (``data.level``) the gain is measured on the
    file's first ``level_prefix`` samples, as training and evaluation measure it on the
    cached start of each utterance (:func:`~cl_spoof.data.cache.cache_samples`), and
    applied to all of it; memory stays bounded whatever the file's length."""

    def __init__(self, path: Path, window: int, hop: int, sample_rate: int = SAMPLE_RATE,
                 level: str = "none", level_db: float | None = None,
                 level_prefix: int = 0) -> None:
        self.path, self.window, self.hop = path, window, hop
        self.sample_rate, self.level, self.level_db = sample_rate, level, level_db
        self.level_prefix = level_prefix
        self.length = 0

    def _pieces(self) -> Iterator[np.ndarray]:
        """Decoded pieces of the file at the checkpoint's rate, with its level set."""
        stream = stream_audio(self.path, self.sample_rate)
        if self.level == "none":
            yield from stream
            return
        head: list[np.ndarray] = []
        n = 0
        for piece in stream:  # enough of the start to measure the level on
            head.append(piece)
            n += piece.shape[0]
            if n >= self.level_prefix:
                break
        start = np.concatenate(head) if head else np.zeros(0, dtype=np.float32)
        gain = np.float32(level_gain(start[:self.level_prefix], self.level, self.level_db))
        yield start * gain
        for piece in stream:
            yield piece * gain

    def __iter__(self) -> Iterator[np.ndarray]:
        win, hop = self.window, self.hop
        buf = np.zeros(0, dtype=np.float32)
        buf_start = 0  # sample position of buf[0]
        next_start, last_end, total = 0, 0, 0
        for piece in self._pieces():
            bad = int((~np.isfinite(piece)).sum())
            if bad:
                raise DataError(f"{self.path}: NaN/Inf sample(s) ({bad} in one block)")
            buf = np.concatenate([buf, np.clip(piece, -1.0, 1.0)])
            total += piece.shape[0]
            if next_start + win <= total:
                view = sliding_window_view(buf, win)
                k = (total - win - next_start) // hop + 1  # windows that fit now
                first = next_start - buf_start
                for a in range(0, k, WINDOW_CHUNK):
                    b = min(k, a + WINDOW_CHUNK)
                    yield view[first + a * hop: first + (b - 1) * hop + 1: hop]
                last_end = next_start + (k - 1) * hop + win
                next_start += k * hop
            keep_from = max(buf_start, min(next_start, total - win))  # room for a last window
            buf, buf_start = buf[keep_from - buf_start:], keep_from
        self.length = total
        if last_end == 0:  # no full window: repeat the clip to the window, as in training
            yield fix_length(buf, win)[None]
        elif last_end < total:  # one more window ending at the last sample
            yield buf[total - win - buf_start: total - buf_start][None]


def _window_scores(model: nn.Module, batch: np.ndarray, device: torch.device) -> np.ndarray:
    """Scores (bona fide logit minus spoof logit) of a ``(B, window)`` batch."""
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
    return logits_to_scores(model(x)).double().cpu().numpy()


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
            origin += f", trained on {ckpt.trained_on}" if ckpt.trained_on else ""
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


def score_paths(
    checkpoint: Path,
    inputs: Sequence[Path],
    threshold: str | float = "eer",
    window: int | None = None,
    hop: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    progress: Progress | None = None,
) -> ScoreResult:
    """Score every audio file of ``inputs`` with ``checkpoint``; see the module docstring.

    ``window``/``hop`` are in samples at the checkpoint's rate (defaults: its input length
    and half of it). ``threshold`` is ``"eer"`` (the checkpoint's pooled EER threshold)
    or a number; a file is ``bonafide`` when its score >= threshold. ``progress`` gets
    ``(files done, files total)``. Raises :class:`CLSpoofError` for a bad checkpoint,
    bad settings, no audio input, or when no file at all could be scored.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer; got {batch_size!r}")
    ckpt = load_checkpoint(checkpoint, device)
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

    with torch.inference_mode():
        for i, path in enumerate(paths):
            windows = _FileWindows(path, win, step, ckpt.sample_rate, ckpt.level,
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

    files: list[FileScore] = []
    failed: list[tuple[Path, str]] = []
    for i, p in enumerate(paths):
        if i in problems:
            failed.append((p, problems[i]))
            continue
        score = float(sums[i] / counts[i])
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


def check_output_file(path: str | Path) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or a file
    in a folder that is missing and cannot be made, or is read-only."""
    path = Path(path)
    if path.is_dir():
        raise FileSystemError(f"{path}: is a folder; give a file name for the scores")
    folder = path.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise FileSystemError(f"{path}: {probe} is a file, not a folder; check the path")
    if probe == folder:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise FileSystemError(f"cannot write {os_error_message(exc, path)}") from None
    elif not os.access(probe, os.W_OK):
        raise FileSystemError(f"cannot write {path}: {probe} is not writable; choose a folder "
                              "you can write to")
