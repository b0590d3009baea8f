"""Copy-synthesis attack families for the demo corpus.

Each family re-synthesises a bona fide waveform the way one kind of real
spoofing system would (Griffin-Lim, a mel-spectrogram TTS back end, a parametric
source-filter vocoder, unit selection, spectral-filtering voice conversion, a
phase vocoder), so a detector has a different artefact to learn per attack.

Every family is a function ``(wave, rng, **params) -> wave`` on mono float32 at
16 kHz that returns the same number of samples, level-normalised with
:func:`normalise_level` so loudness is never a cue. All randomness comes from
``rng``; the strength of each family is set by keyword parameters whose defaults
live in :data:`FAMILIES` (``Family.params``), so tuning is a one-line change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF
from scipy.signal import lfilter

from cl_spoof.labels import SAMPLE_RATE

TARGET_DBFS = -26.0  # RMS level of every demo clip, bona fide and spoof
PEAK_LIMIT = 0.99  # gain is lowered (never clipped) when a peak would exceed this
RESAMPLE_BASE = 100  # pitch ratios are n / 100: small sinc-resampling kernels, fast

FamilyFn = Callable[..., np.ndarray]


# --------------------------------------------------------------------------- helpers


def normalise_level(wave: np.ndarray, target_dbfs: float = TARGET_DBFS,
                    peak_limit: float = PEAK_LIMIT) -> np.ndarray:
    """Scale ``wave`` to an RMS of ``target_dbfs``, lowering the gain if a peak would clip.

    Scaling (not clipping) keeps the waveform free of clipping distortion, which
    would otherwise be a cue; the rare peak-limited clip ends up a little quieter.
    Silent input is returned as float32 zeros.
    """
    x = np.asarray(wave, dtype=np.float64)
    rms = math.sqrt(float(np.mean(x**2))) if x.size else 0.0
    if rms < 1e-9:
        return np.zeros(x.shape, dtype=np.float32)
    gain = 10.0 ** (target_dbfs / 20.0) / rms
    peak = float(np.max(np.abs(x))) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return (x * gain).astype(np.float32)


def level_dbfs(wave: np.ndarray) -> float:
    """RMS level of ``wave`` in dB relative to full scale."""
    rms = math.sqrt(float(np.mean(np.asarray(wave, dtype=np.float64) ** 2)))
    return 20.0 * math.log10(max(rms, 1e-12))


@lru_cache(maxsize=8)
def _hann(n: int) -> torch.Tensor:
    return torch.hann_window(n, dtype=torch.float32)


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT (Hann window, centred frames), shape ``(freq, frames)``."""
    return torch.stft(x, n_fft, hop, window=_hann(n_fft), center=True, return_complex=True)


def _istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`_stft` trimmed/padded to ``length`` samples."""
    return torch.istft(spec, n_fft, hop, window=_hann(n_fft), center=True, length=length)


def _as_tensor(wave: np.ndarray) -> torch.Tensor:
    """float32 tensor (float32 FFTs are about twice as fast and precise enough here)."""
    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))


def griffin_lim(mag: torch.Tensor, n_fft: int, hop: int, length: int, n_iter: int,
                rng: np.random.Generator, momentum: float = 0.99) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from a magnitude, random initial phase.

    torchaudio's version draws its initial phase from torch's global generator;
    this one takes it from ``rng`` so results are reproducible per clip.
    """
    phase0 = rng.uniform(0.0, 2.0 * np.pi, size=tuple(mag.shape)).astype(np.float32)
    angles = torch.polar(torch.ones_like(mag), torch.from_numpy(phase0))
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = _stft(_istft(mag * angles, n_fft, hop, length), n_fft, hop)
        angles = rebuilt - prev * momentum
        angles = angles / (angles.abs() + 1e-16)
        prev = rebuilt
    return _istft(mag * angles, n_fft, hop, length)


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """Centred frames of ``x`` (zero-padded by ``size // 2``), shape ``(n, size)``; a view."""
    pad = np.pad(x, (size // 2, size // 2 + hop))
    n = 1 + (len(x) + hop - 1) // hop
    view = np.lib.stride_tricks.sliding_window_view(pad, size)
    return view[: n * hop : hop][:n]


# --------------------------------------------------------------------------- S01 Griffin-Lim


def griffin_lim_copy(wave: np.ndarray, rng: np.random.Generator, *, n_fft: int = 512,
                     hop: int = 128, n_iter: int = 4) -> np.ndarray:
    """S01: keep the linear STFT magnitude, rebuild the phase with Griffin-Lim.

    Fewer ``n_iter`` leave more phase incoherence (stronger artefacts). The
    defaults of all families were tuned on the demo benchmark until the small
    detector learned every family under joint training (README, "The demo corpus").
    """
    x = _as_tensor(wave)
    mag = _stft(x, n_fft, hop).abs()
    y = griffin_lim(mag, n_fft, hop, len(wave), n_iter, rng)
    return normalise_level(y.numpy())


# --------------------------------------------------------------------------- S02 mel + GL


@lru_cache(maxsize=4)
def _mel_bases(n_fft: int, n_mels: int, f_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mel filterbank ``(freq, mels)`` and an approximate inverse ``(freq, mels)``.

    The inverse spreads each band's mean power back over its bins (a flat
    spectrum maps back to flat, no negative values), giving the smooth spectra
    of a mel TTS model. It is computed without BLAS/LAPACK, so the cached
    matrices are bit-identical whatever torch's thread count was at first use.
    """
    fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, f_max, n_mels, SAMPLE_RATE, norm="slaney",
                            mel_scale="slaney").numpy().astype(np.float64)
    per_band = fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-12)
    row = fb.sum(axis=1, keepdims=True)
    inverse = per_band * np.where(row > 0, 1.0 / np.maximum(row, 1e-12), 0.0)
    return (torch.from_numpy(fb.astype(np.float32)),
            torch.from_numpy(inverse.astype(np.float32)))


def mel_griffin_lim(wave: np.ndarray, rng: np.random.Generator, *, n_fft: int = 1024,
                    hop: int = 256, n_mels: int = 80, f_max: float = 8000.0,
                    quant_db: float = 1.0, floor_db: float = -100.0,
                    n_iter: int = 24) -> np.ndarray:
    """S02: 80-band log-mel (quantised like a TTS acoustic model's output) -> GL.

    The mel envelope loses the harmonic fine structure above a few hundred Hz
    and the coarse hop smears onsets, as a neural TTS front end would; the
    inverse interpolates band powers back to linear bins, then Griffin-Lim.
    """
    x = _as_tensor(wave)
    power = _stft(x, n_fft, hop).abs() ** 2
    fb, fb_inv = _mel_bases(n_fft, n_mels, f_max)
    mel = fb.T @ power
    mel_db = 10.0 * torch.log10(mel.clamp_min(10.0 ** (floor_db / 10.0)))
    if quant_db > 0:
        mel_db = torch.round(mel_db / quant_db) * quant_db
    mel = 10.0 ** (mel_db / 10.0)
    lin = fb_inv @ mel
    y = griffin_lim(lin.sqrt(), n_fft, hop, len(wave), n_iter, rng)
    return normalise_level(y.numpy())


# --------------------------------------------------------------------------- S03 LPC vocoder


def _levinson(r: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched Levinson-Durbin: autocorrelations ``(n, order+1)`` -> (a ``(n, order+1)``, err)."""
    n = r.shape[0]
    a = np.zeros((n, order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        acc = r[:, i] + np.einsum("nj,nj->n", a[:, 1:i], r[:, i - 1 : 0 : -1])
        k = -acc / np.maximum(err, 1e-12)
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err = err * (1.0 - k**2)
    return a, np.maximum(err, 0.0)


def _pitch_track(x: np.ndarray, hop: int, f0_min: float, f0_max: float,
                 voicing_threshold: float) -> np.ndarray:
    """Per-frame F0 in Hz (0 = unvoiced) from the normalised autocorrelation peak."""
    win = 640  # 40 ms: two periods of the lowest F0
    frames = _frames(x, win, hop) * np.hanning(win)
    nfft = 2048
    spec = np.fft.rfft(frames, nfft)
    ac = np.fft.irfft(np.abs(spec) ** 2, nfft)[:, :win]
    wac = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(win), nfft)) ** 2, nfft)[:win]
    ac = ac / np.maximum(wac, 1e-9)  # undo the window's taper bias
    lag_min, lag_max = int(SAMPLE_RATE / f0_max), int(SAMPLE_RATE / f0_min)
    energy = ac[:, 0]
    search = ac[:, lag_min : lag_max + 1] / np.maximum(energy[:, None], 1e-12)
    best = np.argmax(search, axis=1)
    peak = search[np.arange(len(best)), best]
    loud = energy > energy.max() * 10 ** (-45 / 10)
    f0 = np.where((peak > voicing_threshold) & loud, SAMPLE_RATE / (best + lag_min), 0.0)
    # 5-frame median smoothing removes isolated octave jumps and voicing flips
    padded = np.pad(f0, 2, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)


def lpc_vocoder(wave: np.ndarray, rng: np.random.Generator, *, order: int = 20,
                hop: int = 80, win: int = 400, f0_min: float = 60.0, f0_max: float = 400.0,
                voicing_threshold: float = 0.45, breath: float = 0.05,
                preemph: float = 0.97) -> np.ndarray:
    """S03: LPC source-filter resynthesis with pulse-train / noise excitation.

    Order-``order`` LPC every ``hop`` samples, an autocorrelation pitch and
    voicing track, then an all-pole filter driven by glottal pulses (voiced,
    plus ``breath`` noise) or white noise (unvoiced) at the frame's residual
    gain: the buzzy, phase-free sound of a parametric (WORLD/STRAIGHT-like) TTS.
    """
    x = np.asarray(wave, dtype=np.float64)
    n = len(x)
    xp = lfilter([1.0, -preemph], [1.0], x)
    frames = _frames(xp, win, hop) * np.hanning(win)
    n_frames = frames.shape[0]
    nfft = 1 << ((win + order).bit_length())
    r = np.fft.irfft(np.abs(np.fft.rfft(frames, nfft)) ** 2, nfft)[:, : order + 1]
    r[:, 0] *= 1.0 + 1e-6  # white-noise correction keeps the filters stable
    r[:, 1:] *= np.exp(-0.5 * (2 * np.pi * 60.0 / SAMPLE_RATE * np.arange(1, order + 1)) ** 2)
    a, err = _levinson(r, order)
    gain = np.sqrt(err / np.sum(np.hanning(win) ** 2))

    f0 = _pitch_track(x, hop, f0_min, f0_max, voicing_threshold)[:n_frames]
    f0_samples = np.repeat(f0, hop)[:n]
    if len(f0_samples) < n:
        f0_samples = np.pad(f0_samples, (0, n - len(f0_samples)), mode="edge")
    voiced = f0_samples > 0
    phase = np.cumsum(np.where(voiced, f0_samples, 0.0) / SAMPLE_RATE)
    phase += rng.uniform()
    pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0])) > 0
    period = np.where(voiced, SAMPLE_RATE / np.maximum(f0_samples, 1.0), 1.0)
    noise = rng.standard_normal(n)
    excitation = np.where(voiced, pulses * np.sqrt(period) + breath * noise, noise)

    # time-varying all-pole synthesis, frame by frame with carried filter state
    out = np.empty(n)
    zi = np.zeros(order)
    for i in range(n_frames):
        lo, hi = i * hop, min(n, (i + 1) * hop)
        if lo >= n:
            break
        out[lo:hi], zi = lfilter([gain[i]], a[i], excitation[lo:hi], zi=zi)
    y = lfilter([1.0], [1.0, -preemph], out)
    return normalise_level(y)


# --------------------------------------------------------------------------- S04 unit concat


def _unit_features(cum_e: np.ndarray, cum_z: np.ndarray, cum_d: np.ndarray,
                   starts: np.ndarray, length: int) -> np.ndarray:
    """(log energy, zero-crossing rate, spectral tilt) of windows via cumulative sums."""
    e = (cum_e[starts + length] - cum_e[starts]) / length
    z = (cum_z[starts + length - 1] - cum_z[starts]) / length
    d = (cum_d[starts + length - 1] - cum_d[starts]) / length
    return np.stack([np.log10(e + 1e-10),  # level in units of 10 dB
                     z * 10.0,  # ZCR per sample, scaled to ~unit range
                     np.log10((d + 1e-10) / (e + 1e-10))], axis=-1)


def _cumulative(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = np.concatenate([[0.0], np.cumsum(x**2)])
    zc = (np.signbit(x[1:]) != np.signbit(x[:-1])).astype(np.float64)
    z = np.concatenate([[0.0], np.cumsum(zc)])
    dd = np.diff(x) ** 2
    d = np.concatenate([[0.0], np.cumsum(dd)])
    return e, z, d


def unit_concatenation(wave: np.ndarray, rng: np.random.Generator, *,
                       pool: Sequence[np.ndarray] = (), unit_ms: tuple[float, float] = (15, 45),
                       crossfade_ms: float = 1.0, candidates: int = 256) -> np.ndarray:
    """S04: unit selection from *other* recordings (``pool``), like ASVspoof's A04.

    The target is cut into units of random length in ``unit_ms``; for each unit
    ``candidates`` random same-length windows of the pool are scored on log
    energy, zero-crossing rate and spectral tilt, the closest one is level-matched
    and joined with a raised-cosine crossfade of ``crossfade_ms``. Shorter units
    and crossfades leave more (and more audible) joins.
    """
    x = np.asarray(wave, dtype=np.float64)
    n = len(x)
    pieces = [np.asarray(p, dtype=np.float64) for p in pool]
    fade = max(1, int(crossfade_ms * SAMPLE_RATE / 1000))
    lo_len, hi_len = (int(ms * SAMPLE_RATE / 1000) for ms in unit_ms)
    pieces = [p for p in pieces if len(p) > hi_len + fade + 1]
    if not pieces:
        raise ValueError("unit_concatenation needs a pool of waveforms longer than one unit")
    bank = np.concatenate(pieces)
    offsets = np.cumsum([0] + [len(p) for p in pieces])
    cum_pool = _cumulative(bank)
    cum_tgt = _cumulative(x)

    lengths = rng.integers(lo_len, hi_len + 1, size=n // lo_len + 2)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    bounds = bounds[bounds < n]
    bounds = np.append(bounds, n)
    out = np.zeros(n + fade)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    sizes = np.array([len(p) for p in pieces])
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        length = int(stop - start)
        if length < 2:
            continue
        take = length + fade
        target = _unit_features(*cum_tgt, np.array([start]), length)[0]
        which = rng.integers(0, len(pieces), size=candidates)
        room = sizes[which] - take
        starts = offsets[which] + (rng.random(candidates) * room).astype(np.int64)
        feats = _unit_features(*cum_pool, starts, length)
        best = int(starts[np.argmin(np.sum((feats - target) ** 2, axis=1))])
        unit = bank[best : best + take].copy()
        src_rms = math.sqrt(np.mean(unit[:length] ** 2) + 1e-12)
        tgt_rms = math.sqrt(np.mean(x[start:stop] ** 2) + 1e-12)
        unit *= float(np.clip(tgt_rms / src_rms, 0.1, 10.0))
        unit[:fade] *= ramp if start > 0 else 1.0
        unit[-fade:] *= ramp[::-1]
        out[start : start + take] += unit
    return normalise_level(out[:n])


# --------------------------------------------------------------------------- S05 envelope warp


def _cepstral_envelope(mag: np.ndarray, lifter: int) -> np.ndarray:
    """Smooth log-spectral envelope per frame (``(frames, freq)`` magnitudes)."""
    log_mag = np.log(mag + 1e-7)
    cep = np.fft.irfft(log_mag, axis=1)
    cep[:, lifter:-lifter] = 0.0
    return np.fft.rfft(cep, axis=1).real[:, : mag.shape[1]]


def envelope_warp(wave: np.ndarray, rng: np.random.Generator, *, n_fft: int = 512,
                  hop: int = 128, lifter: int = 30,
                  warp_range: tuple[float, float] = (1.08, 1.22),
                  noise_above_hz: float = 400.0, transition_hz: float = 200.0) -> np.ndarray:
    """S05: frequency-warp the spectral envelope, overlap-add (VC by spectral filtering, A06).

    The cepstral envelope is warped by a factor ``alpha`` (or ``1/alpha``, random
    sign) drawn from ``warp_range``; below ``noise_above_hz`` the original fine
    structure and phase are kept and only filtered, which alone is undetectable
    (the prototype's 50 % EER). Above it the band is re-excited with
    envelope-shaped noise (random phase, no harmonics), as many VC vocoders do
    with aperiodicity; lower ``noise_above_hz`` for a stronger trace.
    """
    x = _as_tensor(wave)
    spec = _stft(x, n_fft, hop).numpy().T  # (frames, freq)
    mag = np.abs(spec)
    env = _cepstral_envelope(mag, lifter)
    alpha = float(rng.uniform(*warp_range))
    if rng.random() < 0.5:
        alpha = 1.0 / alpha
    n_freq = mag.shape[1]
    src = np.clip(np.arange(n_freq) / alpha, 0, n_freq - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_freq - 1)
    w = src - i0
    env_w = env[:, i0] * (1.0 - w) + env[:, i1] * w
    low = spec * np.exp(env_w - env)

    freqs = np.arange(n_freq) * SAMPLE_RATE / n_fft
    high_weight = np.clip((freqs - noise_above_hz) / max(transition_hz, 1.0) + 0.5, 0.0, 1.0)
    # noise band: envelope magnitude (rescaled to the band's energy) with random phase
    noise_phase = np.exp(2j * np.pi * rng.random(mag.shape))
    env_mag = np.exp(env_w)
    band = high_weight[None, :] > 0
    energy_low = np.sum(np.abs(low) ** 2 * band, axis=1, keepdims=True)
    energy_env = np.sum(env_mag**2 * band, axis=1, keepdims=True)
    noise = env_mag * np.sqrt(energy_low / np.maximum(energy_env, 1e-20)) * noise_phase
    mixed = low * (1.0 - high_weight) + noise * high_weight
    y = _istft(torch.from_numpy(np.ascontiguousarray(mixed.T, dtype=np.complex64)), n_fft, hop,
               len(wave))
    return normalise_level(y.numpy())


# --------------------------------------------------------------------------- S06 phase vocoder


def phase_vocoder_round_trip(wave: np.ndarray, rng: np.random.Generator, *,
                             semitones: tuple[float, float] = (6.0, 8.0),
                             n_fft: int = 1024, hop: int = 512) -> np.ndarray:
    """S06: phase-vocoder pitch shift down by ``semitones`` and back up (prosody modification).

    Each shift is a phase-vocoder time stretch plus resampling, as in
    ``torchaudio.functional.pitch_shift``; the round trip keeps pitch and
    duration but leaves phasiness and transient smearing. Shifting down first
    keeps the full band: up-then-down would empty the top 20 % of the spectrum,
    a trivial low-pass cue that would swamp the phase-vocoder artefacts.
    """
    steps = float(rng.uniform(*semitones))
    up = int(round(RESAMPLE_BASE * 2.0 ** (steps / 12.0)))  # ratio to ~0.5 % (0.1 semitone)
    x = _as_tensor(wave)
    y = _pitch_shift(_pitch_shift(x, (RESAMPLE_BASE, up), n_fft, hop), (up, RESAMPLE_BASE),
                     n_fft, hop)
    return normalise_level(y.numpy())


def _pitch_shift(x: torch.Tensor, ratio: tuple[int, int], n_fft: int, hop: int) -> torch.Tensor:
    """Pitch shift by the frequency ratio ``up / down`` (small integers), keeping the length.

    The stretch rate is taken from the same integers as the resampling, so a shift
    by ``(a, b)`` followed by ``(b, a)`` restores pitch and timing exactly.
    """
    up, down = ratio
    n = x.shape[-1]
    rate = down / up
    spec = _stft(x, n_fft, hop)
    advance = torch.linspace(0, math.pi * hop, spec.shape[0], dtype=x.dtype)[..., None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    y = _istft(stretched, n_fft, hop, int(round(n / rate)))
    g = math.gcd(up, down)
    y = AF.resample(y, up // g, down // g)
    if y.shape[-1] >= n:
        return y[..., :n]
    return torch.nn.functional.pad(y, (0, n - y.shape[-1]))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Family:
    """One attack family: how it is made and what it stands for."""

    attack_id: str
    fn: FamilyFn
    description: str
    imitates: str
    needs_pool: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, **overrides: Any
                 ) -> np.ndarray:
        """Apply the family with its default ``params`` updated by ``overrides``."""
        return self.fn(wave, rng, **{**self.params, **overrides})


FAMILIES: dict[str, Family] = {
    "S01": Family("S01", griffin_lim_copy,
                  "linear STFT magnitude, phase rebuilt by 4 Griffin-Lim iterations",
                  "Griffin-Lim waveform generation (early neural TTS, ASVspoof A01/A02 style)"),
    "S02": Family("S02", mel_griffin_lim,
                  "80-band log-mel quantised to 1 dB, pseudo-inverse mel + Griffin-Lim",
                  "mel-spectrogram TTS back end without a neural vocoder"),
    "S03": Family("S03", lpc_vocoder,
                  "order-20 LPC every 5 ms, pulse-train or noise excitation",
                  "parametric source-filter vocoder (WORLD/STRAIGHT TTS, ASVspoof A03/A05)"),
    "S04": Family("S04", unit_concatenation,
                  "15-45 ms units from other speakers, level-matched, 1 ms crossfades",
                  "unit-selection waveform concatenation (ASVspoof A04)", needs_pool=True),
    "S05": Family("S05", envelope_warp,
                  "spectral envelope warped by 8-22 %, noise-excited above 400 Hz, OLA",
                  "voice conversion by spectral filtering with overlap-add (ASVspoof A06)"),
    "S06": Family("S06", phase_vocoder_round_trip,
                  "phase-vocoder pitch shift by 6-8 semitones and back (50 % overlap)",
                  "signal-processing prosody/pitch modification (phase vocoder)"),
}


def apply_family(attack_id: str, wave: np.ndarray, rng: np.random.Generator,
                 pool: Sequence[np.ndarray] | None = None, **overrides: Any) -> np.ndarray:
    """Run family ``attack_id`` on ``wave``; ``pool`` is passed to families that need one."""
    try:
        family = FAMILIES[attack_id]
    except KeyError:
        raise ValueError(f"unknown attack family {attack_id!r}; known: {sorted(FAMILIES)}"
                         ) from None
    if family.needs_pool:
        overrides = {"pool": pool if pool is not None else (), **overrides}
    out = family(wave, rng, **overrides)
    if out.shape != np.shape(wave):
        raise RuntimeError(f"{attack_id} returned {out.shape}, expected {np.shape(wave)}")
    return out
