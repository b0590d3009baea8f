"""Windows over audio files of any length, streamed: what scoring a long file feeds the model.

A file no longer than one window is repeated to the window length, as in training
(:func:`~cl_spoof.data.audio.fix_length`); a longer one is cut into windows starting
every ``hop`` samples, plus one window ending at the last sample when the hops do not
reach it (:func:`window_starts`). :class:`FileWindows` decodes and resamples a file
block by block (:func:`~cl_spoof.data.audio.stream_audio`), sets its level as in
training and yields its windows as they come, so memory does not grow with the file's
length. Samples are clipped to [-1, 1] as the training cache does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cl_spoof.data.audio import fix_length, level_gain, stream_audio
from cl_spoof.errors import DataError
from cl_spoof.labels import SAMPLE_RATE

__all__ = ["WINDOW_CHUNK", "FileWindows", "window_starts"]


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


class FileWindows:
    """The windows of one file (:func:`window_starts`), streamed: iterating yields
    ``(k, window)`` arrays; :attr:`length` is the file's length in samples at
    ``sample_rate`` once iterated. Raises :class:`DataError` for what decoding refuses
    (:func:`~cl_spoof.data.audio.stream_audio`: an unreadable file, NaN/Inf samples, ...).

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
            if not np.isfinite(piece).all():  # decoding refuses NaN/Inf: only a gain gives one
                raise DataError(f"{self.path}: samples too large to set the level of")
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
