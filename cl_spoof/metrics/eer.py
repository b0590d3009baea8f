"""Equal error rate (EER) as defined by the ASVspoof challenge organisers.

The organisers' evaluation package sorts all scores, sweeps the decision
threshold over every score (plus one point below the lowest), and at each
threshold computes the false-rejection rate of bona fide trials (miss) and the
false-acceptance rate of spoof trials. The EER is taken at the threshold where
``|frr - far|`` is smallest and equals the mean of the two rates there. Higher
scores mean "more bona fide". Reproducing that procedure exactly (including
its handling of ties) keeps our numbers comparable with published ones.

Tie quirk (inherited on purpose): among equal scores the bona fide trials are
rejected first, so a detector that gives every trial the same score gets
EER = 1.0, not 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from cl_spoof.labels import BONAFIDE_TARGET, SPOOF_TARGET

if TYPE_CHECKING:  # the EER and DET functions need no torch (reports draw DET curves)
    import torch

__all__ = [
    "compute_det_curve",
    "compute_eer",
    "eer_per_attack",
    "pooled_eer",
]

ArrayLike = npt.ArrayLike | Sequence[float]


def _as_scores(values: ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Convert ``values`` to a 1-D float array; reject empty input and NaNs."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"EER needs at least one {name} score; got none")
    if np.isnan(arr).any():
        raise ValueError(f"{name} scores contain NaN ({int(np.isnan(arr).sum())} of {arr.size})")
    return arr


def compute_det_curve(
    bonafide_scores: ArrayLike, spoof_scores: ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return ``(frr, far, thresholds)`` swept over every score.

    Point 0 has its threshold just below the lowest score (nothing rejected:
    frr = 0, far = 1). Point ``i >= 1`` uses the ``i``-th smallest score as
    threshold and rejects that score and everything sorted before it. Sorting
    is stable with bona fide scores placed before spoof scores, so tied scores
    are split the same way as in the organisers' code.
    """
    bona = _as_scores(bonafide_scores, "bona fide")
    spoof = _as_scores(spoof_scores, "spoof")
    scores = np.concatenate([bona, spoof])
    is_bona = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    bona_rejected = np.cumsum(is_bona[order])
    spoof_rejected = np.arange(1, scores.size + 1) - bona_rejected
    frr = np.concatenate([[0.0], bona_rejected / bona.size])
    far = np.concatenate([[1.0], (spoof.size - spoof_rejected) / spoof.size])
    thresholds = np.concatenate([[sorted_scores[0] - 0.001], sorted_scores])
    return frr, far, thresholds


def compute_eer(bonafide_scores: ArrayLike, spoof_scores: ArrayLike) -> tuple[float, float]:
    """Return ``(eer, threshold)``; EER is a fraction in [0, 1].

    Raises ``ValueError`` if either side is empty or contains NaN.
    """
    frr, far, thresholds = compute_det_curve(bonafide_scores, spoof_scores)
    best = int(np.argmin(np.abs(frr - far)))
    return float((frr[best] + far[best]) / 2.0), float(thresholds[best])


def _check_frame(scores: pd.DataFrame) -> None:
    """Raise ``ValueError`` if the score frame lacks a required column."""
    missing = [c for c in ("attack", "key", "score") if c not in scores.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}; has {list(scores.columns)}")
    bad = sorted(set(scores["key"].astype(str)) - {"bonafide", "spoof"})
    if bad:
        raise ValueError(f"score table column 'key' has values {bad}; expected 'bonafide'/'spoof'")


def eer_per_attack(scores: pd.DataFrame) -> dict[str, float]:
    """EER (fraction) of all bona fide trials against each attack's spoof trials.

    ``scores`` has columns ``attack`` (``"-"`` for bona fide), ``key``
    (``"bonafide"``/``"spoof"``) and ``score``. Attacks keep their order of
    first appearance in the frame.
    """
    _check_frame(scores)
    bona = scores.loc[scores["key"] == "bonafide", "score"].to_numpy()
    spoof_rows = scores[scores["key"] == "spoof"]
    result: dict[str, float] = {}
    for attack in pd.unique(spoof_rows["attack"]):
        attack_scores = spoof_rows.loc[spoof_rows["attack"] == attack, "score"].to_numpy()
        result[str(attack)] = compute_eer(bona, attack_scores)[0]
    return result


def matched_eer_per_attack(scores: pd.DataFrame) -> dict[str, float]:
    """EER (fraction) of each attack against the bona fide of its own sub-corpus only.

    ``scores`` is an :func:`eer_per_attack` frame plus a ``group`` column (the
    sub-corpus of each trial, :func:`cl_spoof.data.table.utterance_groups`). An
    attack's spoofs are scored against the bona fide trials of the group(s) its
    spoofs come from, so nothing that only tells sub-corpora apart (recording level,
    normalisation, duration) can lower it. NaN where that group has no bona fide.
    """
    _check_frame(scores)
    if "group" not in scores.columns:
        raise ValueError("score table lacks column 'group' (the sub-corpus of each trial)")
    bona = scores[scores["key"] == "bonafide"]
    spoof_rows = scores[scores["key"] == "spoof"]
    result: dict[str, float] = {}
    for attack in pd.unique(spoof_rows["attack"]):
        rows = spoof_rows[spoof_rows["attack"] == attack]
        own = bona.loc[bona["group"].isin(set(rows["group"])), "score"].to_numpy()
        result[str(attack)] = (compute_eer(own, rows["score"].to_numpy())[0] if len(own)
                               else float("nan"))
    return result


def pooled_eer(scores: pd.DataFrame) -> float:
    """EER (fraction) of all bona fide trials against all spoof trials."""
    _check_frame(scores)
    bona = scores.loc[scores["key"] == "bonafide", "score"].to_numpy()
    spoof = scores.loc[scores["key"] == "spoof", "score"].to_numpy()
    return compute_eer(bona, spoof)[0]


def logits_to_scores(logits: torch.Tensor) -> torch.Tensor:
    """Score = bona fide logit minus spoof logit (higher = more bona fide)."""
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ValueError(f"expected logits of shape (batch, 2); got {tuple(logits.shape)}")
    return logits[:, BONAFIDE_TARGET] - logits[:, SPOOF_TARGET]
