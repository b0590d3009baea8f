"""Tests for the ASVspoof-style EER in ``cl_spoof.metrics.eer``."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from cl_spoof.metrics.eer import compute_det_curve, compute_eer, eer_per_attack, pooled_eer


def _sklearn_eer(bona: npt.NDArray[np.float64], spoof: npt.NDArray[np.float64]) -> float:
    """Independent EER: the ROC point where fpr and 1 - tpr are closest."""
    y = np.r_[np.ones(bona.size), np.zeros(spoof.size)]
    fpr, tpr, _ = roc_curve(y, np.r_[bona, spoof], drop_intermediate=False)
    fnr = 1.0 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fnr[i] + fpr[i]) / 2.0)


def _sklearn_eer_interpolated(
    bona: npt.NDArray[np.float64], spoof: npt.NDArray[np.float64]
) -> float:
    """Independent EER: linear interpolation where fnr - fpr changes sign."""
    y = np.r_[np.ones(bona.size), np.zeros(spoof.size)]
    fpr, tpr, _ = roc_curve(y, np.r_[bona, spoof], drop_intermediate=False)
    diff = (1.0 - tpr) - fpr  # starts at 1, ends at -1
    j = int(np.nonzero(diff <= 0)[0][0])
    if diff[j] == 0:
        return float(fpr[j])
    w = diff[j - 1] / (diff[j - 1] - diff[j])
    return float(fpr[j - 1] + w * (fpr[j] - fpr[j - 1]))


def test_perfect_separation_gives_zero() -> None:
    eer, thr = compute_eer([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0])
    assert eer == 0.0
    # The threshold lies between the classes: rejects all spoof, accepts all bona fide.
    assert 1.0 <= thr < 2.0


def test_perfectly_wrong_scores_give_one() -> None:
    eer, _ = compute_eer([-1.0, 0.0], [5.0, 6.0])
    assert eer == 1.0


def test_identical_distributions_give_about_half() -> None:
    rng = np.random.default_rng(0)
    eer, _ = compute_eer(rng.normal(size=5000), rng.normal(size=5000))
    assert abs(eer - 0.5) < 0.03


def test_hand_worked_example() -> None:
    # bona fide: 0.8, 0.4, 0.6      spoof: 0.2, 0.5, 0.1, 0.3
    # sorted: 0.1s 0.2s 0.3s 0.4b 0.5s 0.6b 0.8b; threshold t rejects scores <= t.
    #   t      frr (bona rejected/3)   far (spoof accepted/4)   |frr - far|
    #   0.099  0                       4/4                      1
    #   0.1    0                       3/4                      0.75
    #   0.2    0                       2/4                      0.5
    #   0.3    0                       1/4                      0.25
    #   0.4    1/3                     1/4                      1/12   <- minimum
    #   0.5    1/3                     0                        1/3
    #   0.6    2/3                     0                        2/3
    #   0.8    1                       0                        1
    # EER = (1/3 + 1/4) / 2 = 7/24 at threshold 0.4.
    eer, thr = compute_eer([0.8, 0.4, 0.6], [0.2, 0.5, 0.1, 0.3])
    assert eer == pytest.approx(7 / 24, abs=1e-12)
    assert thr == pytest.approx(0.4)


def test_det_curve_endpoints() -> None:
    frr, far, thr = compute_det_curve([0.8, 0.4], [0.2, 0.5, 0.1])
    assert len(frr) == len(far) == len(thr) == 6
    assert (frr[0], far[0]) == (0.0, 1.0)
    assert (frr[-1], far[-1]) == (1.0, 0.0)
    assert np.all(np.diff(frr) >= 0) and np.all(np.diff(far) <= 0)
    assert thr[0] == pytest.approx(0.1 - 0.001)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_sklearn_roc_on_random_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bona = rng.normal(1.0, 1.0, size=rng.integers(50, 400))
    spoof = rng.normal(-0.5, 1.5, size=rng.integers(50, 400))
    eer, _ = compute_eer(bona, spoof)
    assert eer == pytest.approx(_sklearn_eer(bona, spoof), abs=1e-12)
    # The interpolated crossing differs by less than one step of the coarser rate.
    step = 1.0 / min(bona.size, spoof.size)
    assert abs(eer - _sklearn_eer_interpolated(bona, spoof)) <= step


def test_ties_follow_the_organisers_convention() -> None:
    # Among equal scores bona fide trials sort first and are rejected first.
    # bona 0.5, 0.9; spoof 0.5, 0.1 -> sorted 0.1s 0.5b 0.5s 0.9b
    #   t=0.1: frr 0, far 1/2; t=0.5 (after 0.5b): frr 1/2, far 1/2 -> EER 0.5
    eer, thr = compute_eer([0.5, 0.9], [0.5, 0.1])
    assert eer == 0.5
    assert thr == 0.5
    # All scores tied: after rejecting both bona fide, frr = far = 1 -> EER 1.0.
    assert compute_eer([1.0, 1.0], [1.0, 1.0])[0] == 1.0
    # Order of the input does not matter.
    assert compute_eer([0.9, 0.5], [0.1, 0.5]) == (eer, thr)


def test_errors_on_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="bona fide"):
        compute_eer([], [0.1])
    with pytest.raises(ValueError, match="spoof"):
        compute_eer([0.1], np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([0.1, math.nan], [0.2])
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([0.1], [math.nan])


def _score_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "attack": ["-", "-", "-", "A07", "A07", "A19", "A19", "A19"],
            "key": ["bonafide"] * 3 + ["spoof"] * 5,
            "score": [3.0, 2.0, 1.0, -1.0, -2.0, 2.5, 0.0, 1.5],
        }
    )


def test_eer_per_attack_and_pooled() -> None:
    frame = _score_frame()
    per_attack = eer_per_attack(frame)
    assert list(per_attack) == ["A07", "A19"]
    assert per_attack["A07"] == 0.0
    bona = np.array([3.0, 2.0, 1.0])
    assert per_attack["A19"] == compute_eer(bona, [2.5, 0.0, 1.5])[0]
    assert per_attack["A19"] > 0
    assert pooled_eer(frame) == compute_eer(bona, [-1.0, -2.0, 2.5, 0.0, 1.5])[0]


def test_frame_validation() -> None:
    with pytest.raises(ValueError, match="score"):
        pooled_eer(pd.DataFrame({"attack": ["-"], "key": ["bonafide"]}))
    bad = _score_frame()
    bad.loc[0, "key"] = "genuine"
    with pytest.raises(ValueError, match="genuine"):
        eer_per_attack(bad)
