"""Cllr and logistic calibration of detection scores into log-likelihood ratios.

ASVspoof 5's actDCF and Cllr (evaluation plan, Wang et al. 2024; organisers'
``evaluation-package/calculate_modules.py``) read the submitted scores as
natural-log likelihood ratios ``LLR = log p(s | bona fide) / p(s | spoof)``,
higher = more bona fide. A detector's raw score is not one, so cl-spoof maps
scores to LLRs with an affine logistic calibration fitted on *development*
scores (Brümmer & du Preez 2006, "Application-independent evaluation of
speaker detection"):

    posterior log-odds(s) = a * s + b        (scikit-learn LogisticRegression)
    LLR(s) = a * s + b - log(N_bona / N_spoof)

The last term removes the prior log-odds of the fitting data, so the LLR does
not depend on how many bona fide and spoof trials the development set had.
The returned :class:`LogisticCalibration` records which scores it was fitted on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

ArrayLike = npt.ArrayLike | Sequence[float]

#: L2 strength used only when the development scores are perfectly separable
#: (the maximum-likelihood slope is then infinite): scikit-learn's default C.
SEPARABLE_C = 1.0


def as_array(values: ArrayLike, name: str, finite: bool = False) -> npt.NDArray[np.float64]:
    """1-D float array; ``ValueError`` for empty input, NaN (or non-finite when asked)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"need at least one {name} score; got none")
    bad = ~np.isfinite(arr) if finite else np.isnan(arr)
    if bad.any():
        kind = "non-finite values" if finite else "NaN"
        raise ValueError(f"{name} scores contain {kind} ({int(bad.sum())} of {arr.size})")
    return arr


def cllr(bonafide_llrs: ArrayLike, spoof_llrs: ArrayLike) -> float:
    """Log-likelihood-ratio cost in bits (0 = perfect, 1 = uninformative LLRs of 0).

    ``Cllr = (mean log2(1 + e^-l) over bona fide + mean log2(1 + e^l) over spoof) / 2``,
    as ``calculate_CLLR`` of the ASVspoof 5 evaluation package (computed with
    ``logaddexp`` so large LLRs do not overflow).
    """
    bona = as_array(bonafide_llrs, "bona fide")
    spoof = as_array(spoof_llrs, "spoof")
    c_bona = float(np.mean(np.logaddexp(0.0, -bona)))
    c_spoof = float(np.mean(np.logaddexp(0.0, spoof)))
    return 0.5 * (c_bona + c_spoof) / math.log(2.0)


def _digest(bona: npt.NDArray[np.float64], spoof: npt.NDArray[np.float64]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(bona).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(spoof).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class LogisticCalibration:
    """Affine map from scores to LLRs, ``llr = slope * score + offset``."""

    slope: float
    offset: float
    prior_log_odds: float  # log(n_bonafide / n_spoof) of the fitting scores, removed
    n_bonafide: int
    n_spoof: int
    fitted_on: str  # what the scores were (e.g. "dev scores after stage 2, run X")
    digest: str  # sha256 prefix of the fitting scores, to tell two fits apart
    separable: bool  # fitting scores were (quasi-)separable: L2 with SEPARABLE_C used
    C: float  # inverse L2 strength used (inf = plain maximum likelihood)

    def llr(self, scores: ArrayLike) -> npt.NDArray[np.float64]:
        """LLRs (natural log, higher = more bona fide) of ``scores``."""
        return self.slope * as_array(scores, "calibrated") + self.offset

    def to_dict(self) -> dict:
        """JSON-ready record (``C`` as a string when infinite)."""
        d = asdict(self)
        d["C"] = "inf" if math.isinf(self.C) else self.C
        return d


def fit_logistic_calibration(bonafide_scores: ArrayLike, spoof_scores: ArrayLike,
                             fitted_on: str = "", C: float = math.inf) -> LogisticCalibration:
    """Fit the score-to-LLR calibration on development scores (higher = more bona fide).

    Plain maximum-likelihood logistic regression (``C=inf``) unless the scores
    are (quasi-)separable, where the slope would be infinite; then L2 with
    ``C=SEPARABLE_C`` is used and ``separable`` is set on the result.
    """
    bona = as_array(bonafide_scores, "bona fide", finite=True)
    spoof = as_array(spoof_scores, "spoof", finite=True)
    separable = bool(bona.min() >= spoof.max() or spoof.min() >= bona.max())
    used_c = SEPARABLE_C if separable and math.isinf(C) else C
    x = np.concatenate([bona, spoof]).reshape(-1, 1)
    y = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])
    model = LogisticRegression(C=used_c, solver="lbfgs", tol=1e-12, max_iter=10_000)
    model.fit(x, y)
    prior = math.log(bona.size / spoof.size)
    return LogisticCalibration(
        slope=float(model.coef_[0, 0]),
        offset=float(model.intercept_[0]) - prior,
        prior_log_odds=prior,
        n_bonafide=int(bona.size),
        n_spoof=int(spoof.size),
        fitted_on=fitted_on,
        digest=_digest(bona, spoof),
        separable=separable,
        C=float(used_c),
    )
