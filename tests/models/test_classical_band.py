"""The band-limited yardsticks (``ltas_bl``, ``lfcc_bl``): blind above 4 kHz, the same
features at any input rate."""

from __future__ import annotations

import numpy as np
import pytest

from cl_spoof.metrics.eer import compute_eer
from cl_spoof.models.classical import BAND_LIMIT_HZ, Yardstick, band_limited


def _band_noise(rng: np.random.Generator, n: int, sr: int, band: tuple[float, float]
                ) -> np.ndarray:
    """White noise kept only in ``band`` (Hz), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    hz = np.fft.rfftfreq(n, 1 / sr)
    spectrum[(hz < band[0]) | (hz > band[1])] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise ** 2))


def _set(n: int, sr: int, seed: int, band: tuple[float, float]
         ) -> tuple[list[np.ndarray], list[bool]]:
    """Bona fide: low harmonic tones; spoof: the same plus quiet noise in ``band`` (Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(sr // 2) / sr
    waves, bona = [], []
    for i in range(n):
        f0 = rng.uniform(120, 250)
        w = sum(0.1 / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) for h in (1, 2, 3))
        w = w + 0.002 * rng.standard_normal(len(t))
        if i % 2:
            w = w + 0.01 * _band_noise(rng, len(t), sr, band)
        waves.append(w.astype(np.float32))
        bona.append(i % 2 == 0)
    return waves, bona


def _eer(kind: str, sr: int, band: tuple[float, float]) -> float:
    x_train, y_train = _set(40, sr, 0, band)
    x_test, y_test = _set(40, sr, 1, band)
    scores = Yardstick(kind, sr).fit(x_train, y_train).scores(x_test)
    y = np.asarray(y_test)
    return 100 * compute_eer(scores[y], scores[~y])[0]


@pytest.mark.parametrize(("full", "limited"), [("ltas", "ltas_bl"), ("lfcc", "lfcc_bl")])
def test_a_difference_above_4_khz_is_invisible_to_the_band_limited_yardstick(
        full: str, limited: str) -> None:
    assert _eer(full, 16_000, (5_000, 7_000)) == 0.0  # the full band sees the 5-7 kHz noise
    assert _eer(limited, 16_000, (5_000, 7_000)) > 30.0  # blind to it: near chance
    assert _eer(limited, 16_000, (1_500, 3_000)) == 0.0  # inside the band it is seen


def test_band_limited_features_do_not_depend_on_the_input_rate() -> None:
    for kind, size in (("ltas_bl", 2 * 257), ("lfcc_bl", 80)):
        at16 = Yardstick(kind, 16_000).features([np.zeros(16_000, np.float32) + 0.01])
        at24 = Yardstick(kind, 24_000).features([np.zeros(24_000, np.float32) + 0.01])
        assert at16.shape == at24.shape == (1, size)
    t16, t24 = np.arange(16_000) / 16_000, np.arange(24_000) / 24_000
    low16 = band_limited([np.sin(2 * np.pi * 1000 * t16).astype(np.float32)], 16_000)[0]
    low24 = band_limited([np.sin(2 * np.pi * 1000 * t24).astype(np.float32)], 24_000)[0]
    assert len(low16) == len(low24) == 2 * BAND_LIMIT_HZ  # one second at 8 kHz
    np.testing.assert_allclose(low16[200:-200], low24[200:-200], atol=1e-3)


def test_band_limitation_removes_everything_above_4_khz() -> None:
    t = np.arange(24_000) / 24_000
    for hz, kept in ((1_000, 1.0), (3_500, 1.0), (4_000, 0.0), (4_500, 0.0), (9_000, 0.0)):
        out = band_limited([np.sin(2 * np.pi * hz * t).astype(np.float32)], 24_000)[0]
        rms = float(np.sqrt(np.mean(out[400:-400] ** 2)) * np.sqrt(2))
        assert rms == pytest.approx(kept, abs=1e-3), hz
