"""RawBoost, codec stand-in and gain clip by clip in NumPy/SciPy: the reference that
``tests/data/test_augment.py`` compares :mod:`cl_spoof.data.augment` (whole batches in torch)
against, draw for draw in distribution.

The same published algorithm and ranges (Tak et al., ICASSP 2022), every draw from a
``numpy.random.Generator``; filters zero-phase by FFT with their responses computed on
a grid of at least 1024 points and interpolated linearly to the clip's FFT grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from scipy import fft as sfft

from cl_spoof.config import AugmentConfig

#: The steps of each RawBoost algorithm id (1 LnL, 2 ISD, 3 SSI), applied in series.
_CHAINS: dict[int, tuple[int, ...]] = {0: (), 1: (1,), 2: (2,), 3: (3,), 4: (1, 2, 3),
                                       5: (1, 2), 6: (1, 3), 7: (2, 3)}


def _grid_size(cfg: AugmentConfig) -> int:
    """FFT size of the coarse grid: at least 1024 (RawBoost's 512-point response)
    and longer than any cascade, so the cascade's response on it is exact."""
    longest = cfg.n_bands * (cfg.max_coeff + 1)
    return max(1024, 1 << int(np.ceil(np.log2(longest + 1))))


def notch_responses(fs: int, cfg: AugmentConfig, rng: np.random.Generator,
                    gains_db: list[tuple[float, float]]) -> np.ndarray:
    """Zero-phase magnitude responses of random notch filters on the coarse grid.

    One filter per ``(min_g, max_g)`` of ``gains_db``; returns ``(len(gains_db),
    grid // 2 + 1)`` real responses over [0, fs/2], each scaled to its peak gain.
    """
    nyq = fs / 2
    max_f = nyq if cfg.max_f is None else min(cfg.max_f, nyq)
    n = len(gains_db) * cfg.n_bands
    fc = rng.uniform(cfg.min_f, max_f, n)
    bw = rng.uniform(cfg.min_bw, cfg.max_bw, n)
    taps = rng.uniform(cfg.min_coeff, cfg.max_coeff, n).astype(np.int64)
    taps += 1 - taps % 2  # odd: a zero-phase (type I) filter
    gains = np.array([rng.uniform(lo, hi) if hi > lo else lo for lo, hi in gains_db])
    f1 = np.clip(fc - bw / 2, 1e-3, nyq - 1e-3)
    f2 = np.maximum(np.clip(fc + bw / 2, 1e-3, nyq - 1e-3), f1 + 1e-3)
    # Every band-stop at once: a Hamming-windowed ideal band-stop (pass band at DC),
    # normalised to unit DC gain, on taps -half..half of the longest filter.
    half = (taps - 1) // 2
    k = int(half.max())
    m = np.arange(-k, k + 1, dtype=np.float64)[None, :]
    a, b = (f1 / nyq)[:, None], (f2 / nyq)[:, None]
    h = np.sinc(m) - b * np.sinc(b * m) + a * np.sinc(a * m)
    inside = np.abs(m) <= half[:, None]
    window = 0.54 + 0.46 * np.cos(np.pi * m / np.maximum(half[:, None], 1))
    h = np.where(inside, h * window, 0.0)
    h /= h.sum(axis=1, keepdims=True)
    grid = _grid_size(cfg)
    buf = np.zeros((n, grid))
    buf[:, np.arange(-k, k + 1) % grid] = h
    resp = sfft.rfft(buf, axis=1).real.reshape(len(gains_db), cfg.n_bands, -1).prod(axis=1)
    peak = np.abs(resp).max(axis=1, keepdims=True)
    return resp * (10 ** (gains[:, None] / 20) / np.maximum(peak, 1e-12))


def _fine(responses: np.ndarray, nfft: int) -> torch.Tensor:
    """Coarse-grid responses interpolated linearly to the ``rfft`` bins of an even
    ``nfft`` (both grids run from 0 to fs/2, end points included)."""
    coarse = torch.from_numpy(responses.astype(np.float32))[None]
    return F.interpolate(coarse, size=nfft // 2 + 1, mode="linear", align_corners=True)[0]


def _nfft(n: int, cfg: AugmentConfig) -> int:
    """Even FFT size for zero-phase filtering of ``n`` samples without wrap-around."""
    return 2 * sfft.next_fast_len(-(-(n + cfg.n_bands * cfg.max_coeff) // 2), real=True)


def _peak_normalised(y: np.ndarray) -> np.ndarray:
    peak = float(np.abs(y).max()) if y.size else 0.0
    return y / peak if peak > 1 else y


def lnl(x: np.ndarray, fs: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """(1) Linear and non-linear convolutive noise ``sum_j f_j(x ** j)``."""
    bias = [(cfg.lnl_min_g - cfg.lnl_max_bias, cfg.lnl_max_g - cfg.lnl_min_bias)]
    gains = [(cfg.lnl_min_g, cfg.lnl_max_g)] + bias * (cfg.lnl_n_f - 1)
    responses = notch_responses(fs, cfg, rng, gains)
    n = x.shape[0]
    nfft = _nfft(n, cfg)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    powers = [xt]
    for _ in range(cfg.lnl_n_f - 1):
        powers.append(powers[-1] * xt)
    spec = torch.fft.rfft(torch.stack(powers), nfft)
    y = torch.fft.irfft((spec * _fine(responses, nfft)).sum(dim=0), nfft)[:n].numpy()
    return _peak_normalised(y - y.mean())


def isd(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """(2) Impulsive signal-dependent noise."""
    y = x.copy()
    n = int(x.shape[0] * rng.uniform(0, cfg.isd_p) / 100)
    if n > 0:
        pos = rng.choice(x.shape[0], size=n, replace=False)
        r = (2 * rng.random(n) - 1) * (2 * rng.random(n) - 1)
        y[pos] = x[pos] * (1 + cfg.isd_g_sd * r)
    return _peak_normalised(y)


def ssi(x: np.ndarray, fs: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """(3) Stationary signal-independent (coloured) additive noise."""
    n = x.shape[0]
    white = rng.standard_normal(n, dtype=np.float32)
    response = notch_responses(fs, cfg, rng, [(0.0, 0.0)])
    snr = rng.uniform(cfg.ssi_snr_min, cfg.ssi_snr_max)
    nfft = _nfft(n, cfg)
    noise = torch.fft.irfft(torch.fft.rfft(torch.from_numpy(white), nfft)
                            * _fine(response, nfft)[0], nfft)[:n].numpy()
    noise = noise / max(float(np.abs(noise).max()), 1e-12)
    scale = np.linalg.norm(x) / max(float(np.linalg.norm(noise)), 1e-12) * 10 ** (-snr / 20)
    return x + np.float32(scale) * noise


def rawboost(x: np.ndarray, fs: int, cfg: AugmentConfig, rng: np.random.Generator
             ) -> np.ndarray:
    """RawBoost algorithm ``cfg.rawboost`` (ids as published; see the module docstring)."""
    if cfg.rawboost == 8:
        return _peak_normalised(lnl(x, fs, cfg, rng) + isd(x, cfg, rng))
    y = x
    for step in _CHAINS[cfg.rawboost]:
        y = lnl(y, fs, cfg, rng) if step == 1 else isd(y, cfg, rng) if step == 2 else \
            ssi(y, fs, cfg, rng)
    return y


def band_limit(x: np.ndarray, fs: int, rate: int) -> np.ndarray:
    """Resampled to ``rate`` and back (torchaudio): a codec's bandwidth, same length."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    y = AF.resample(AF.resample(t, fs, rate), rate, fs).numpy()
    out = np.zeros_like(x, dtype=np.float32)
    k = min(x.shape[0], y.shape[0])
    out[:k] = y[:k]
    return out


def random_gain(x: np.ndarray, low_db: float, high_db: float, rng: np.random.Generator
                ) -> np.ndarray:
    """``x`` times a gain of U(low_db, high_db) dB, limited so the peak stays below 1."""
    gain = 10 ** (rng.uniform(low_db, high_db) / 20)
    peak = float(np.abs(x).max()) * gain
    if peak > 0.999:
        gain *= 0.999 / peak
    return x * np.float32(gain)


def augment(x: np.ndarray, fs: int, cfg: AugmentConfig, rng: np.random.Generator
            ) -> np.ndarray:
    """Augmented float32 copy of the clip ``x`` (same length) at ``fs`` Hz.

    RawBoost with probability ``p_rawboost``, band limitation with ``p_codec`` (to a
    rate of ``codec_rates`` below ``fs``), gain with ``p_gain``. Each decision draws
    from ``rng`` whatever the probability, so the draws after it do not shift.
    """
    y = np.asarray(x, dtype=np.float32)
    if rng.random() < cfg.p_rawboost and cfg.rawboost:
        y = rawboost(y, fs, cfg, rng)
    if rng.random() < cfg.p_codec:
        rates = [r for r in cfg.codec_rates if r < fs]
        if rates:
            y = band_limit(y, fs, int(rates[rng.integers(len(rates))]))
    if rng.random() < cfg.p_gain:
        y = random_gain(y, cfg.gain_db[0], cfg.gain_db[1], rng)
    return np.ascontiguousarray(y, dtype=np.float32)
