"""Waveform augmentation (RawBoost, codec stand-in, gain) and level handling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import signal

from cl_spoof.benchmark.datasets import ClipDataset, FixedCrop, RandomCrop
from cl_spoof.config import AugmentConfig
from cl_spoof.data import augment as aug
from cl_spoof.data.audio import set_level
from cl_spoof.data.cache import CachedWaveforms

FS = 16_000


def _speech_like(seed: int = 0, n: int = 8_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    x = sum(np.sin(2 * np.pi * 140 * h * t + rng.uniform(0, 6)) / h for h in range(1, 8))
    return (0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("algo", range(9))
def test_every_rawboost_algorithm_is_deterministic_per_seed(algo: int) -> None:
    x = _speech_like()
    cfg = AugmentConfig(rawboost=algo, p_codec=0.5, p_gain=0.5)
    a = aug.augment(x, FS, cfg, np.random.default_rng([3, 1, 4]))
    b = aug.augment(x, FS, cfg, np.random.default_rng([3, 1, 4]))
    assert a.dtype == np.float32 and a.shape == x.shape and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    others = [aug.augment(x, FS, cfg, np.random.default_rng([3, 1, k])) for k in range(5, 9)]
    if algo:  # RawBoost always applies (p_rawboost = 1): other seeds, other clips
        assert all(not np.array_equal(a, o) for o in others)
    else:
        assert any(not np.array_equal(a, o) for o in others)  # codec / gain still random


def test_band_stop_filters_are_scipy_firwin_designs() -> None:
    cfg = AugmentConfig(n_bands=1, lnl_n_f=1)
    rng = np.random.default_rng(7)
    for _ in range(5):
        state = rng.bit_generator.state
        resp = aug.notch_responses(FS, cfg, rng, [(0.0, 0.0)])[0]
        # redraw the same filter and design it with scipy
        again = np.random.default_rng()
        again.bit_generator.state = state
        fc = again.uniform(cfg.min_f, FS / 2, 1)[0]
        bw = again.uniform(cfg.min_bw, cfg.max_bw, 1)[0]
        taps = int(again.uniform(cfg.min_coeff, cfg.max_coeff, 1).astype(np.int64)[0])
        taps += 1 - taps % 2
        f1 = np.clip(fc - bw / 2, 1e-3, FS / 2 - 1e-3)
        f2 = max(np.clip(fc + bw / 2, 1e-3, FS / 2 - 1e-3), f1 + 1e-3)
        h = signal.firwin(taps, [f1, f2], window="hamming", fs=FS)
        _, ref = signal.freqz(h, worN=513, include_nyquist=True)
        ref = np.abs(ref) / np.abs(ref).max()
        np.testing.assert_allclose(np.abs(resp), ref, atol=1e-6)


def test_lnl_matches_time_domain_filtering() -> None:
    """The FFT path with interpolated responses equals direct convolution of x ** j with
    the exact filters (to -60 dB)."""
    x = _speech_like(1)
    cfg = AugmentConfig()
    y = aug.lnl(x, FS, cfg, np.random.default_rng(5))
    gains = [(0.0, 0.0)] + [(-20.0, -5.0)] * 4
    resp = aug.notch_responses(FS, cfg, np.random.default_rng(5), gains)
    grid = 2 * (resp.shape[1] - 1)
    ref = np.zeros(len(x))
    for j, r in enumerate(resp, start=1):
        h = np.roll(np.fft.irfft(r, grid), grid // 2)  # zero-phase, centred
        ref += np.convolve(x.astype(np.float64) ** j, h)[grid // 2:grid // 2 + len(x)]
    ref -= ref.mean()
    ref = ref / max(1.0, np.abs(ref).max())
    err = np.sqrt(np.mean((y - ref) ** 2)) / np.sqrt(np.mean(ref ** 2))
    assert err < 1e-3


def test_isd_touches_at_most_p_percent_and_ssi_keeps_the_snr() -> None:
    x = _speech_like(2)
    cfg = AugmentConfig(isd_p=10.0)
    for seed in range(10):
        y = aug.isd(x, cfg, np.random.default_rng(seed))
        assert (y != x).mean() <= 0.10 + 1e-9
    y = aug.ssi(x, FS, cfg, np.random.default_rng(0))
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x) ** 2))
    assert cfg.ssi_snr_min - 0.01 <= snr <= cfg.ssi_snr_max + 0.01


def test_band_limit_removes_the_band_above_the_codec_rate() -> None:
    x = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    y = aug.band_limit(x, FS, 8_000)
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / FS)
    high = spec[freqs > 4_300].sum() / spec[freqs < 3_700].sum()
    assert y.shape == x.shape and high < 1e-2  # white noise: 1


def test_gain_stays_in_range_without_clipping() -> None:
    x = _speech_like(3)
    for seed in range(20):
        y = aug.random_gain(x, -6.0, 6.0, np.random.default_rng(seed))
        db = 20 * np.log10(np.abs(y).max() / np.abs(x).max())
        assert -6.001 <= db <= 6.001 and np.abs(y).max() < 1.0
    loud = x / np.abs(x).max() * 0.9
    assert np.abs(aug.random_gain(loud, 12.0, 12.0, np.random.default_rng(0))).max() <= 0.999


def test_probabilities_switch_steps_off() -> None:
    x = _speech_like()
    off = AugmentConfig(p_rawboost=0.0, p_codec=0.0, p_gain=0.0)
    np.testing.assert_array_equal(aug.augment(x, FS, off, np.random.default_rng(0)), x)
    half = dataclasses.replace(off, p_rawboost=0.5)
    changed = [not np.array_equal(aug.augment(x, FS, half, np.random.default_rng(s)), x)
               for s in range(40)]
    assert 8 <= sum(changed) <= 32


def test_training_transform_is_seeded_per_clip_and_eval_is_untouched() -> None:
    """A clip's crop and augmentation come from the torch RNG state alone: the same seed
    gives the same clip, whatever else is in the batch; evaluation clips are never
    augmented."""
    waves = np.stack([_speech_like(s, 12_000) for s in range(4)])
    view = CachedWaveforms(data=np.round(waves * 32767).astype(np.int16),
                           lengths=np.full(4, 12_000))
    ds = ClipDataset(view, np.arange(4), [1, 0, 1, 0], level="rms")
    crop = RandomCrop(8_000, AugmentConfig(), FS)
    torch.manual_seed(0)
    first = [crop(ds[i][0]) for i in range(4)]
    torch.manual_seed(0)
    alone = crop(ds[0][0])
    torch.manual_seed(0)
    again = [crop(ds[i][0]) for i in range(4)]
    assert torch.equal(first[0], alone)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    plain = RandomCrop(8_000, None, FS)
    torch.manual_seed(0)
    assert not torch.equal(plain(ds[0][0]), first[0])  # the augmentation changed the clip
    evaluated = FixedCrop(8_000)(ds[1][0])
    torch.testing.assert_close(evaluated, torch.from_numpy(set_level(view.raw(1), "rms")[:8_000]))


def test_level_modes() -> None:
    x = np.full(1_000, 0.5, dtype=np.float32)
    def db(y: np.ndarray) -> float:
        return float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))))

    assert db(set_level(x, "rms")) == pytest.approx(-26, abs=1e-4)
    assert db(set_level(x, "rms", -20.0)) == pytest.approx(-20, abs=1e-4)
    assert np.abs(set_level(x, "peak")).max() == pytest.approx(1.0)
    assert np.abs(set_level(x, "peak", -6.0)).max() == pytest.approx(10 ** (-6 / 20))
    assert set_level(x, "none") is x
    silent = np.zeros(100, dtype=np.float32)
    np.testing.assert_array_equal(set_level(silent, "rms"), silent)
    with pytest.raises(ValueError, match="level mode"):
        set_level(x, "loud")
