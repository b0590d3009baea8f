"""Waveform augmentation of training batches (RawBoost, codec stand-in, gain) and level
handling.

The batched torch implementation is checked against a per-clip NumPy/SciPy reference
(``tests/helpers/per_clip_augment.py``) in distribution: for each generator, summary statistics
of what it does over a few hundred draws (filter responses, output levels, impulse
densities, SNRs, bandwidths, gains) must not differ by a two-sample Kolmogorov-Smirnov
test (or a chi-square test for the discrete codec rates) at ``ALPHA``. Every draw is
seeded, so each test is deterministic; the same tests reject a deliberately wrong
parameter, so they can fail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import signal, stats

from cl_spoof.benchmark.datasets import ClipDataset, FixedCrop, RandomCrop
from cl_spoof.config import AugmentConfig
from cl_spoof.data import augment as aug
from cl_spoof.data.audio import set_level
from cl_spoof.data.cache import CachedWaveforms
from tests.helpers import per_clip_augment as ref

FS = 16_000
DRAWS = 300  # per side of each comparison
ALPHA = 0.01  # significance of each equivalence test (fixed seeds: deterministic)


def _speech_like(seed: int = 0, n: int = 4_000, fs: int = FS, peak: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    x = sum(np.sin(2 * np.pi * 140 * h * t + rng.uniform(0, 6)) / h for h in range(1, 8))
    return (peak * x / np.abs(x).max() + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(x: np.ndarray, n: int = DRAWS) -> torch.Tensor:
    return torch.from_numpy(x).repeat(n, 1)


def _db(v: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(np.abs(v), 1e-12))


def _rms(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(v, dtype=np.float64) ** 2, axis=-1))


def _high_share(v: np.ndarray, fs: int, cut: float) -> np.ndarray:
    """Share of each row's energy above ``cut`` Hz."""
    spec = np.abs(np.fft.rfft(v, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(v.shape[-1], 1 / fs)
    return spec[..., freqs > cut].sum(-1) / np.maximum(spec.sum(-1), 1e-30)


def _same(new: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> dict[str, float]:
    """KS p-value of every statistic (new sample vs reference sample)."""
    return {k: float(stats.ks_2samp(new[k], old[k]).pvalue) for k in new}


# ------------------------------------------------------------- the statistics compared

def _response_stats(resp: np.ndarray) -> dict[str, np.ndarray]:
    db = _db(resp)
    return {"mean_db": db.mean(-1), "notch_depth_db": db.min(-1),
            "notch_bin": db.argmin(-1).astype(float), "db_at_quarter": db[:, db.shape[1] // 4]}


def _lnl_stats(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    return {"level_db": _db(_rms(y) / _rms(x)),
            "correlation": np.array([np.corrcoef(x, row)[0, 1] for row in y]),
            "high_share": _high_share(y, FS, FS / 4)}


def _isd_stats(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    changed = y != x[None, :]
    ratio = np.where(changed, np.abs(y / np.where(x == 0, 1, x) - 1), 0.0)
    return {"density": changed.mean(-1),
            "mean_impulse": ratio.sum(-1) / np.maximum(changed.sum(-1), 1)}


def _ssi_stats(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    noise = y - x[None, :]
    power = np.abs(np.fft.rfft(noise)) ** 2 + 1e-20
    return {"snr_db": _db(_rms(x) / _rms(noise)),
            "noise_high_share": _high_share(noise, FS, FS / 4),
            "noise_flatness": stats.gmean(power, axis=-1) / power.mean(-1)}


def _new_rows(x: np.ndarray, step: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
              seed: int = 1) -> np.ndarray:
    return step(_batch(x), _gen(seed)).numpy()


def _old_rows(x: np.ndarray, step: Callable[[np.ndarray, np.random.Generator], np.ndarray],
              seed: int = 2) -> np.ndarray:
    return np.stack([step(x, np.random.default_rng([seed, i])) for i in range(DRAWS)])


# ------------------------------------------------------------- equivalence in distribution

def test_notch_filters_match_the_reference_in_distribution() -> None:
    cfg = AugmentConfig()
    new = aug.notch_responses(FS, cfg, torch.zeros(DRAWS), _gen(1)).numpy()
    old = np.concatenate([ref.notch_responses(FS, cfg, np.random.default_rng([2, i]), [(0.0, 0.0)])
                          for i in range(DRAWS)])
    assert new.shape == old.shape
    np.testing.assert_allclose(np.abs(new).max(-1), 1.0, rtol=1e-5)  # peak at 0 dB
    p = _same(_response_stats(new), _response_stats(old))
    assert min(p.values()) > ALPHA, p


def test_lnl_matches_the_reference_in_distribution() -> None:
    cfg = AugmentConfig()
    x = _speech_like()
    new = _new_rows(x, lambda b, g: aug.lnl(b, FS, cfg, g))
    old = _old_rows(x, lambda c, r: ref.lnl(c, FS, cfg, r))
    p = _same(_lnl_stats(x, new), _lnl_stats(x, old))
    assert min(p.values()) > ALPHA, p


def test_isd_matches_the_reference_in_distribution() -> None:
    cfg = AugmentConfig()
    x = _speech_like()  # peak 0.2: the impulses never reach full scale
    new = _new_rows(x, lambda b, g: aug.isd(b, cfg, g))
    old = _old_rows(x, lambda c, r: ref.isd(c, cfg, r))
    p = _same(_isd_stats(x, new), _isd_stats(x, old))
    assert min(p.values()) > ALPHA, p


def test_ssi_matches_the_reference_in_distribution() -> None:
    cfg = AugmentConfig()
    x = _speech_like()
    new = _new_rows(x, lambda b, g: aug.ssi(b, FS, cfg, g))
    old = _old_rows(x, lambda c, r: ref.ssi(c, FS, cfg, r))
    p = _same(_ssi_stats(x, new), _ssi_stats(x, old))
    assert min(p.values()) > ALPHA, p


def test_gain_matches_the_reference_in_distribution() -> None:
    x = _speech_like(peak=0.5)  # +12 dB would clip: the limit is part of what is compared
    new = _new_rows(x, lambda b, g: aug.random_gain(b, -12.0, 12.0, g))
    old = _old_rows(x, lambda c, r: ref.random_gain(c, -12.0, 12.0, r))
    assert np.abs(new).max() <= 0.999 + 1e-6

    def gain_db(y: np.ndarray) -> np.ndarray:  # to 0.001 dB: the limited gains are one value
        return np.round(_db(_rms(y) / _rms(x)), 3)

    p = _same({"gain_db": gain_db(new)}, {"gain_db": gain_db(old)})
    assert min(p.values()) > ALPHA, p


def test_band_limitation_is_the_reference_and_picks_rates_alike() -> None:
    fs = 24_000
    cfg = AugmentConfig(rawboost=0, p_codec=1.0)
    x = _speech_like(n=4_800, fs=fs, peak=0.3)
    rates = [r for r in cfg.codec_rates if r < fs]
    limited = np.stack([ref.band_limit(x, fs, r) for r in rates])
    batch = aug.band_limit(torch.from_numpy(x)[None], fs, rates[0]).numpy()[0]
    np.testing.assert_allclose(batch, limited[0], atol=1e-6)

    def picked(rows: np.ndarray) -> np.ndarray:
        dist = np.abs(rows[:, None, :] - limited[None]).max(-1)
        assert (dist.min(-1) < 1e-5).all()  # every output is one of the band limitations
        return np.bincount(dist.argmin(-1), minlength=len(rates))

    new = picked(aug.augment_batch(_batch(x), fs, cfg, _gen(1)).numpy())
    old = picked(_old_rows(x, lambda c, r: ref.augment(c, fs, cfg, r)))
    assert stats.chi2_contingency(np.stack([new, old])).pvalue > ALPHA, (new, old)


@pytest.mark.parametrize("algo", [4, 5, 8])
def test_the_whole_augmentation_matches_the_reference_in_distribution(algo: int) -> None:
    """RawBoost chains with probabilities, codec and gain together: output level,
    likeness to the input and spectral balance of the augmented clips."""
    cfg = AugmentConfig(rawboost=algo, p_rawboost=0.7, p_codec=0.3, p_gain=0.5)
    x = _speech_like()
    new = aug.augment_batch(_batch(x), FS, cfg, _gen(1)).numpy()
    old = _old_rows(x, lambda c, r: ref.augment(c, FS, cfg, r))
    p = _same(_lnl_stats(x, new), _lnl_stats(x, old))
    assert min(p.values()) > ALPHA, p


@pytest.mark.parametrize("wrong", [{"isd_p": 5.0}, {"lnl_n_f": 1}, {"ssi_snr_min": 15.0},
                                   {"max_bw": 500.0}])
def test_the_equivalence_tests_reject_a_different_augmentation(wrong: dict) -> None:
    """The same statistics, drawn with one range changed, are told apart at ALPHA."""
    cfg, other = AugmentConfig(), dataclasses.replace(AugmentConfig(), **wrong)
    x = _speech_like()
    if "isd_p" in wrong:
        new = _isd_stats(x, _new_rows(x, lambda b, g: aug.isd(b, other, g)))
        old = _isd_stats(x, _old_rows(x, lambda c, r: ref.isd(c, cfg, r)))
    elif "lnl_n_f" in wrong:
        new = _lnl_stats(x, _new_rows(x, lambda b, g: aug.lnl(b, FS, other, g)))
        old = _lnl_stats(x, _old_rows(x, lambda c, r: ref.lnl(c, FS, cfg, r)))
    elif "ssi_snr_min" in wrong:
        new = _ssi_stats(x, _new_rows(x, lambda b, g: aug.ssi(b, FS, other, g)))
        old = _ssi_stats(x, _old_rows(x, lambda c, r: ref.ssi(c, FS, cfg, r)))
    else:
        new = _response_stats(aug.notch_responses(FS, other, torch.zeros(DRAWS), _gen(1)).numpy())
        old = _response_stats(np.concatenate([
            ref.notch_responses(FS, cfg, np.random.default_rng([2, i]), [(0.0, 0.0)])
            for i in range(DRAWS)]))
    p = _same(new, old)
    assert min(p.values()) < ALPHA, p


# ------------------------------------------------------------- the batched generators

@pytest.mark.parametrize("algo", range(9))
def test_every_rawboost_algorithm_is_deterministic_per_seed(algo: int) -> None:
    x = _batch(_speech_like(), 6)
    cfg = AugmentConfig(rawboost=algo, p_codec=0.5, p_gain=0.5)
    a = aug.augment_batch(x, FS, cfg, _gen(3))
    b = aug.augment_batch(x, FS, cfg, _gen(3))
    assert a.dtype == torch.float32 and a.shape == x.shape and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, aug.augment_batch(x, FS, cfg, _gen(4)))  # other seed, other clips
    if algo:  # RawBoost always applies (p_rawboost = 1): every clip of the batch its own
        assert all(not torch.equal(a[0], a[i]) for i in range(1, 6))


def test_band_stop_cascades_are_scipy_firwin_designs() -> None:
    fc = torch.tensor([[1_000.0, 5_000.0], [300.0, 7_000.0], [7_900.0, 50.0]])
    bw = torch.tensor([[200.0, 900.0], [100.0, 1_000.0], [400.0, 120.0]])
    taps = torch.tensor([[11, 99], [31, 101], [3, 57]])
    resp = aug.cascade_responses(FS, fc, bw, taps, 101, 1024).numpy()
    for row in range(3):
        want = np.ones(513)
        for band in range(2):
            f1 = max(fc[row, band].item() - bw[row, band].item() / 2, 1e-3)
            f2 = min(fc[row, band].item() + bw[row, band].item() / 2, FS / 2 - 1e-3)
            h = signal.firwin(int(taps[row, band]), [f1, f2], window="hamming", fs=FS)
            want *= np.abs(signal.freqz(h, worN=513, include_nyquist=True)[1])
        np.testing.assert_allclose(np.abs(resp[row]), want, atol=2e-6)


def test_lnl_matches_time_domain_filtering() -> None:
    """The FFT path with interpolated responses equals direct convolution of x ** j with
    the exact filters (to -60 dB), clip by clip."""
    cfg = AugmentConfig()
    x = torch.from_numpy(np.stack([_speech_like(s, 8_000) for s in range(3)]))
    g = _gen(5)
    replay = torch.Generator()
    replay.set_state(g.get_state())
    y = aug.lnl(x, FS, cfg, g).numpy()
    low = torch.tensor([0.0, -20.0, -20.0, -20.0, -20.0])
    gains = low + (torch.tensor([0.0, -5.0, -5.0, -5.0, -5.0]) - low) \
        * torch.rand((3, 5), generator=replay)
    resp = aug.notch_responses(FS, cfg, gains, replay).numpy()
    grid = 2 * (resp.shape[-1] - 1)
    for clip in range(3):
        xc = x[clip].double().numpy()
        want = np.zeros(len(xc))
        for j, r in enumerate(resp[clip], start=1):
            h = np.roll(np.fft.irfft(r, grid), grid // 2)  # zero-phase, centred
            want += np.convolve(xc ** j, h)[grid // 2:grid // 2 + len(xc)]
        want -= want.mean()
        want = want / max(1.0, np.abs(want).max())
        err = np.sqrt(np.mean((y[clip] - want) ** 2)) / np.sqrt(np.mean(want ** 2))
        assert err < 1e-3


def test_isd_touches_at_most_p_percent_of_distinct_samples() -> None:
    x = _batch(_speech_like(2), 50)
    cfg = AugmentConfig(isd_p=10.0)
    y = aug.isd(x, cfg, _gen(0))
    changed = (y != x).double().mean(dim=1)
    assert changed.max() <= 0.10 + 1e-9 and changed.min() < 0.02 and changed.max() > 0.08
    dense = aug.isd(x, dataclasses.replace(cfg, isd_p=100.0), _gen(0))  # the sort path
    assert (dense != x).double().mean(dim=1).max() > 0.5


def test_distinct_positions_are_distinct_and_uniform() -> None:
    counts = torch.tensor([0, 1, 50, 400, 400])
    pos, used = aug._distinct_positions(counts, 1_000, _gen(0))
    for row, count in enumerate(counts.tolist()):
        chosen = pos[row][used[row]]
        assert len(chosen) == count == len(set(chosen.tolist()))
    hits = torch.zeros(20)
    for seed in range(400):  # 400 positions of 20: each ~ Binomial(400 * 5, 1 / 20)
        pos, used = aug._distinct_positions(torch.tensor([5]), 20, _gen(seed))
        hits += torch.bincount(pos[0][used[0]], minlength=20)
    assert stats.chisquare(hits.numpy()).pvalue > ALPHA


def test_ssi_keeps_the_drawn_snr() -> None:
    x = _batch(_speech_like(2), 40)
    cfg = AugmentConfig()
    y = aug.ssi(x, FS, cfg, _gen(0)).double()
    snr = 10 * torch.log10((x.double() ** 2).sum(1) / ((y - x) ** 2).sum(1))
    assert snr.min() >= cfg.ssi_snr_min - 0.01 and snr.max() <= cfg.ssi_snr_max + 0.01


def test_band_limit_removes_the_band_above_the_codec_rate() -> None:
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16_000)).astype(np.float32))
    y = aug.band_limit(0.1 * x, FS, 8_000).numpy()
    above, below = _high_share(y, FS, 4_300), 1 - _high_share(y, FS, 3_700)
    assert y.shape == x.shape and (above < 1e-2 * below).all()  # white noise: 1


def test_gain_stays_in_range_without_clipping() -> None:
    x = _batch(_speech_like(3), 20)
    y = aug.random_gain(x, -6.0, 6.0, _gen(0))
    db = 20 * torch.log10(y.abs().amax(1) / x.abs().amax(1))
    assert db.min() >= -6.001 and db.max() <= 6.001 and y.abs().max() < 1.0
    loud = x / x.abs().amax(1, keepdim=True) * 0.9
    assert aug.random_gain(loud, 12.0, 12.0, _gen(0)).abs().max() <= 0.999 + 1e-6


def test_probabilities_switch_steps_off() -> None:
    x = _batch(_speech_like(), 40)
    off = AugmentConfig(p_rawboost=0.0, p_codec=0.0, p_gain=0.0)
    assert torch.equal(aug.augment_batch(x, FS, off, _gen(0)), x)
    half = aug.augment_batch(x, FS, dataclasses.replace(off, p_rawboost=0.5), _gen(0))
    changed = (half != x).any(dim=1)
    assert 8 <= int(changed.sum()) <= 32
    assert torch.equal(half[~changed], x[~changed])


def test_the_input_batch_is_left_alone() -> None:
    x = _batch(_speech_like(), 4)
    before = x.clone()
    aug.augment_batch(x, FS, AugmentConfig(rawboost=4, p_codec=1.0, p_gain=1.0), _gen(0))
    assert torch.equal(x, before)


# ------------------------------------------------------------- loading and level

def test_training_crop_is_seeded_per_clip_and_eval_is_untouched() -> None:
    """A clip's crop comes from the torch RNG state alone: the same seed gives the same
    clip, whatever else is in the batch; evaluation clips start at the beginning. Neither
    transform augments (training batches are augmented on the device)."""
    waves = np.stack([_speech_like(s, 12_000) for s in range(4)])
    view = CachedWaveforms(data=np.round(waves * 32767).astype(np.int16),
                           lengths=np.full(4, 12_000))
    ds = ClipDataset(view, np.arange(4), [1, 0, 1, 0], level="rms")
    crop = RandomCrop(8_000)
    torch.manual_seed(0)
    first = [crop(ds[i][0]) for i in range(4)]
    torch.manual_seed(0)
    alone = crop(ds[0][0])
    torch.manual_seed(0)
    again = [crop(ds[i][0]) for i in range(4)]
    assert torch.equal(first[0], alone)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    whole = set_level(view.raw(0), "rms")
    starts = [k for k in range(4_001) if np.array_equal(whole[k:k + 8_000], first[0].numpy())]
    assert len(starts) == 1  # a plain crop of the clip
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
