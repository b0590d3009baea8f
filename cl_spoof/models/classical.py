"""Classical yardsticks: utterance statistics + logistic regression (scikit-learn).

A yardstick says what a simple, fully classical detector achieves on the same
utterances, so a neural detector's numbers can be read against it:

- ``lfcc``: 20 LFCCs (torchaudio ``LFCC``: 128 linear triangular filters of a power
  spectrum, log, DCT; 20-ms frames every 10 ms) and their deltas
  (``compute_deltas``), mean and standard deviation over time: 80 numbers;
- ``ltas``: the long-term average spectrum at full resolution: mean and standard
  deviation over time of the log power of every bin of 64-ms Hann frames every
  16 ms (1,026 numbers at 16 kHz, 1,538 at 24 kHz);
- ``ltas128``: the same with 128-ms frames (2,050 / 3,074 numbers), for comparison
  with a detector given ``spec_win_ms: 128``;
- ``ltas_bl`` and ``lfcc_bl``: ``ltas`` and ``lfcc`` of the clip band-limited to
  0-4 kHz: resampled to 8 kHz first with a Kaiser-windowed sinc low-pass (64 zero
  crossings, β 14.77, roll-off 0.948: flat to 3.5 kHz, -6 dB at 3.8 kHz, below -140 dB
  from 4 kHz), the same features whatever the input rate: a yardstick that can no
  longer tell corpora apart by their upper band, so a gap between it and the
  full-band one measures what that band gives away.

All feed ``StandardScaler`` + ``LogisticRegression(class_weight="balanced")``; the
score is its decision function for bona fide (higher = more bona fide). Fitting is
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torchaudio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["BAND_LIMIT_HZ", "YARDSTICKS", "Yardstick", "band_limited", "lfcc_stats",
           "ltas_stats"]

N_LFCC = 20


def _batches(waves: Sequence[np.ndarray], size: int = 64):
    """Equal-length waveforms as ``(B, L)`` float32 tensors, ``size`` at a time."""
    for i in range(0, len(waves), size):
        yield torch.from_numpy(np.stack([np.asarray(w, dtype=np.float32)
                                         for w in waves[i:i + size]]))


def lfcc_stats(waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """``(n, 80)``: mean and std over time of 20 LFCCs and their deltas per clip.

    The clips must all have the same length (the detectors' fixed-length input).
    """
    win = int(round(0.020 * sample_rate))
    hop = int(round(0.010 * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    lfcc = torchaudio.transforms.LFCC(
        sample_rate=sample_rate, n_filter=128, n_lfcc=N_LFCC,
        speckwargs={"n_fft": n_fft, "win_length": win, "hop_length": hop, "center": True})
    out = []
    with torch.no_grad():
        for x in _batches(waves):
            c = lfcc(x)  # (B, 20, T)
            f = torch.cat([c, torchaudio.functional.compute_deltas(c)], dim=1)
            out.append(torch.cat([f.mean(dim=2), f.std(dim=2)], dim=1).double().numpy())
    return np.concatenate(out)


def ltas_stats(waves: Sequence[np.ndarray], sample_rate: int, frame_s: float = 0.064
               ) -> np.ndarray:
    """``(n, 2 (n_fft/2 + 1))``: mean and std over time of the log power of every FFT bin
    of ``frame_s`` Hann frames every 16 ms (no centring), per clip of equal length."""
    n_fft = int(round(frame_s * sample_rate))
    hop = int(round(0.016 * sample_rate))
    window = torch.hann_window(n_fft)
    out = []
    with torch.no_grad():
        for x in _batches(waves):
            spec = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)
            logp = torch.log(spec.real.square() + spec.imag.square() + 1e-8)
            out.append(torch.cat([logp.mean(dim=2), logp.std(dim=2)], dim=1).double().numpy())
    return np.concatenate(out)


#: Upper edge (Hz) of the band the band-limited yardsticks see.
BAND_LIMIT_HZ = 4_000


def band_limited(waves: Sequence[np.ndarray], sample_rate: int) -> list[np.ndarray]:
    """Equal-length clips resampled to ``2 * BAND_LIMIT_HZ`` (nothing above 4 kHz left)."""
    target = 2 * BAND_LIMIT_HZ
    if sample_rate == target:
        return [np.asarray(w, dtype=np.float32) for w in waves]
    out: list[np.ndarray] = []
    with torch.no_grad():
        for x in _batches(waves):
            y = torchaudio.functional.resample(
                x, sample_rate, target, lowpass_filter_width=64, rolloff=0.9475937167399596,
                resampling_method="sinc_interp_kaiser", beta=14.769656459379492)
            out.extend(y.numpy())
    return out


def _band_limited_stats(extract: Callable[[Sequence[np.ndarray], int], np.ndarray],
                        waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """``extract`` of the clips band-limited to 0-4 kHz (at 8 kHz)."""
    return extract(band_limited(waves, sample_rate), 2 * BAND_LIMIT_HZ)


#: Every yardstick by name: (feature extractor, one-line description).
YARDSTICKS: dict[str, tuple[Callable[[Sequence[np.ndarray], int], np.ndarray], str]] = {
    "lfcc": (lfcc_stats, "LFCC statistics (20 LFCCs + deltas, mean and std: 80 numbers) "
                         "+ logistic regression"),
    "ltas": (ltas_stats, "long-term average spectrum (mean and std of every bin of a 64-ms "
                         "FFT) + logistic regression"),
    "ltas128": (partial(ltas_stats, frame_s=0.128),
                "long-term average spectrum of 128-ms frames + logistic regression"),
    "ltas_bl": (partial(_band_limited_stats, ltas_stats),
                "ltas of the clip band-limited to 0-4 kHz (resampled to 8 kHz) + logistic "
                "regression"),
    "lfcc_bl": (partial(_band_limited_stats, lfcc_stats),
                "lfcc of the clip band-limited to 0-4 kHz (resampled to 8 kHz) + logistic "
                "regression"),
}


@dataclass
class Yardstick:
    """One yardstick (``kind`` of :data:`YARDSTICKS`) at ``sample_rate``: fit, then score."""

    kind: str
    sample_rate: int
    pipeline: Pipeline | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in YARDSTICKS:
            raise ValueError(f"unknown yardstick {self.kind!r}; choose from "
                             f"{', '.join(YARDSTICKS)}")

    def features(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """The feature vectors of equal-length clips."""
        return YARDSTICKS[self.kind][0](waves, self.sample_rate)

    def fit(self, waves: Sequence[np.ndarray], bonafide: Sequence[bool]) -> Yardstick:
        """Fit the scaler and the class-balanced logistic regression."""
        y = np.asarray(bonafide, dtype=np.int64)
        if len(set(y.tolist())) < 2:
            raise ValueError("a yardstick needs bona fide and spoof training clips")
        self.pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
        self.pipeline.fit(self.features(waves), y)
        return self

    def scores(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Score per clip: the bona fide decision function (higher = more bona fide)."""
        if self.pipeline is None:
            raise RuntimeError("fit the yardstick before scoring")
        result: Any = self.pipeline.decision_function(self.features(waves))
        return np.asarray(result, dtype=np.float64)
