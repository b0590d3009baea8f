"""Detection cost functions of the ASVspoof challenges, as the organisers compute them.

Scores are countermeasure (CM) scores, higher = more bona fide; "miss" is a bona
fide trial rejected, "false alarm" a spoof trial accepted. Minimum costs sweep
the threshold over the organisers' DET curve (:func:`cl_spoof.metrics.eer.compute_det_curve`,
ties split as they split them), so values match the official packages.

**ASVspoof 2019 min t-DCF, legacy cost model** (Kinnunen et al., "t-DCF: a
detection cost function for the tandem assessment of spoofing countermeasures
and automatic speaker verification", Odyssey 2018; ASVspoof 2019 evaluation
plan; organisers' ``evaluate_tDCF_asvspoof19.py`` / ``eval_metrics.py``,
``compute_tDCF_legacy``): priors ``Pspoof = 0.05``, ``Ptar = 0.95 * 0.99``,
``Pnon = 0.95 * 0.01``; costs ``Cmiss_asv = 1``, ``Cfa_asv = 10``,
``Cmiss_cm = 1``, ``Cfa_cm = 10``. The organisers' ASV system is fixed at its
EER threshold ``t`` on target vs nontarget trials (``compute_eer``), giving
``Pfa_asv = P(nontarget >= t)``, ``Pmiss_asv = P(target < t)`` and
``Pmiss_spoof_asv = P(spoof < t)``. Then

    C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv
    C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv)
    t-DCF_norm(s) = (C1 Pmiss_cm(s) + C2 Pfa_cm(s)) / min(C1, C2)

and min t-DCF is its minimum over CM thresholds ``s`` (at most 1: the ends of
the curve are C2/min and C1/min).

The ASV scores are the organisers' file of the same partition,
``ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{dev,eval}.gi.trl.scores.txt``
with lines ``SOURCE KEY SCORE``: ``SOURCE`` is ``bonafide`` or the attack id
(A01-A06 in dev, A07-A19 in eval), ``KEY`` is ``target``, ``nontarget`` or
``spoof``. A file of the other partition is refused: its spoof trials come
from other attacks than the CM scores'.

**ASVspoof 5 minDCF / actDCF** (ASVspoof 5 evaluation plan; organisers'
``evaluation-package/calculate_modules.py``, ``compute_mindcf`` /
``compute_actDCF``): ``Pspoof = 0.05``, ``Cmiss = 1``, ``Cfa = 10``,

    DCF(s) = (Cmiss (1 - Pspoof) Pmiss(s) + Cfa Pspoof Pfa(s)) / min(Cmiss (1 - Pspoof), Cfa Pspoof)

minDCF is its minimum over the DET curve; actDCF evaluates it at the Bayes
threshold ``s* = -log(Cmiss (1 - Pspoof) / (Cfa Pspoof)) = log(0.5 / 0.95)``
applied to LLRs, a trial being accepted when ``llr >= s*``. actDCF and Cllr
need calibrated LLRs (:mod:`cl_spoof.metrics.calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from cl_spoof.errors import ConfigError, DataError
from cl_spoof.metrics.calibration import LogisticCalibration, as_array, cllr
from cl_spoof.metrics.eer import compute_det_curve, compute_eer

ArrayLike = npt.ArrayLike | Sequence[float]


@dataclass(frozen=True)
class LegacyTDCFCosts:
    """Priors and costs of the ASVspoof 2019 (legacy) t-DCF."""

    p_spoof: float = 0.05
    p_tar: float = (1 - 0.05) * 0.99
    p_non: float = (1 - 0.05) * 0.01
    c_miss_asv: float = 1.0
    c_fa_asv: float = 10.0
    c_miss_cm: float = 1.0
    c_fa_cm: float = 10.0


@dataclass(frozen=True)
class DCFCosts:
    """Prior and costs of the ASVspoof 5 normalised DCF."""

    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0


#: The ASVspoof 2019 challenge's legacy t-DCF model.
ASVSPOOF2019_TDCF = LegacyTDCFCosts()
#: The ASVspoof 5 Track 1 DCF parameters.
ASVSPOOF5_DCF = DCFCosts()

#: Spoof attacks in the ASV trials of each ASVspoof 2019 LA partition.
ASV_PARTITION_ATTACKS: dict[str, frozenset[str]] = {
    "dev": frozenset(f"A{i:02d}" for i in range(1, 7)),
    "eval": frozenset(f"A{i:02d}" for i in range(7, 20)),
}
ASV_SCORE_FILES: dict[str, str] = {
    p: f"ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{p}.gi.trl.scores.txt"
    for p in ("dev", "eval")
}
ASV_KEYS: tuple[str, ...] = ("target", "nontarget", "spoof")


# ----------------------------------------------------------------------------- helpers


def _cm_scores(scores: pd.DataFrame) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                              set[str]]:
    """Bona fide scores, spoof scores and spoof attacks of a score frame."""
    missing = [c for c in ("attack", "key", "score") if c not in scores.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}; has {list(scores.columns)}")
    keys = scores["key"].astype(str)
    bad = sorted(set(keys) - {"bonafide", "spoof"})
    if bad:
        raise ValueError(f"score table column 'key' has values {bad}; expected 'bonafide'/'spoof'")
    bona = as_array(scores.loc[keys == "bonafide", "score"], "bona fide")
    spoof = as_array(scores.loc[keys == "spoof", "score"], "spoof")
    attacks = set(scores.loc[keys == "spoof", "attack"].astype(str))
    return bona, spoof, attacks


# ----------------------------------------------------------------- ASVspoof 2019 t-DCF


@dataclass(frozen=True)
class AsvScores:
    """The organisers' ASV scores of one partition."""

    source: str  # where they came from (file path)
    sources: npt.NDArray[np.str_]  # "bonafide" or the attack id, per trial
    keys: npt.NDArray[np.str_]  # target / nontarget / spoof
    scores: npt.NDArray[np.float64]

    def spoof_attacks(self) -> set[str]:
        return set(self.sources[self.keys == "spoof"].tolist())

    def partition(self) -> str | None:
        """``dev``/``eval`` when the spoof trials are exactly those of one partition's attacks."""
        attacks = self.spoof_attacks()
        for name, known in ASV_PARTITION_ATTACKS.items():
            if attacks and attacks <= known:
                return name
        return None


def read_asv_scores(path: str | Path) -> AsvScores:
    """Parse an ASVspoof 2019 ASV score file (``SOURCE KEY SCORE`` lines).

    Raises :class:`DataError` naming the file (and line) when it is absent,
    malformed, or lacks target, nontarget or spoof trials.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the ASV score file ({exc.strerror}); min t-DCF"
                        " needs the organisers' file of the matching partition, e.g."
                        f" {ASV_SCORE_FILES['eval']}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text ASV score file") from exc
    sources, keys, values = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise DataError(f"{path}:{lineno}: expected 3 fields 'SOURCE KEY SCORE' of an ASV"
                            f" score file, got {len(fields)}: {line.strip()!r}")
        src, key, val = fields
        if key not in ASV_KEYS:
            raise DataError(f"{path}:{lineno}: unknown ASV key {key!r} (expected one of"
                            f" {', '.join(ASV_KEYS)})")
        try:
            score = float(val)
        except ValueError:
            raise DataError(f"{path}:{lineno}: score {val!r} is not a number") from None
        sources.append(src)
        keys.append(key)
        values.append(score)
    k = np.asarray(keys)
    absent = [key for key in ASV_KEYS if not (k == key).any()]
    if absent:
        raise DataError(f"{path}: no {', '.join(absent)} trials; not an ASV score file of"
                        " target, nontarget and spoof trials")
    return AsvScores(str(path), np.asarray(sources), k, np.asarray(values, dtype=np.float64))


@dataclass(frozen=True)
class AsvOperatingPoint:
    """The ASV system at its EER threshold, as the t-DCF uses it."""

    threshold: float
    eer: float
    pfa: float  # nontarget accepted
    pmiss: float  # target rejected
    pmiss_spoof: float  # spoof rejected


def asv_operating_point(asv: AsvScores) -> AsvOperatingPoint:
    """ASV error rates at the ASV EER threshold (``>=`` accepts, as the organisers)."""
    tar = asv.scores[asv.keys == "target"]
    non = asv.scores[asv.keys == "nontarget"]
    spf = asv.scores[asv.keys == "spoof"]
    eer, thr = compute_eer(tar, non)
    return AsvOperatingPoint(
        threshold=thr, eer=eer,
        pfa=float(np.mean(non >= thr)),
        pmiss=float(np.mean(tar < thr)),
        pmiss_spoof=float(np.mean(spf < thr)),
    )


def tdcf_legacy_curve(bonafide_scores: ArrayLike, spoof_scores: ArrayLike,
                      asv: AsvOperatingPoint, costs: LegacyTDCFCosts = ASVSPOOF2019_TDCF
                      ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Normalised legacy t-DCF at every CM threshold of the DET curve: ``(tdcf, thresholds)``."""
    if abs(costs.p_tar + costs.p_non + costs.p_spoof - 1.0) > 1e-10 or min(
            costs.p_tar, costs.p_non, costs.p_spoof) < 0:
        raise ValueError(f"t-DCF priors must be non-negative and sum to 1: {costs}")
    pmiss_cm, pfa_cm, thresholds = compute_det_curve(bonafide_scores, spoof_scores)
    c1 = costs.p_tar * (costs.c_miss_cm - costs.c_miss_asv * asv.pmiss) \
        - costs.p_non * costs.c_fa_asv * asv.pfa
    c2 = costs.c_fa_cm * costs.p_spoof * (1.0 - asv.pmiss_spoof)
    if c1 <= 0 or c2 <= 0:
        raise ValueError(f"t-DCF weights C1={c1:g}, C2={c2:g} are not both positive, so the"
                         f" normalised t-DCF is undefined for these ASV error rates ({asv})")
    return (c1 * pmiss_cm + c2 * pfa_cm) / min(c1, c2), thresholds


def min_tdcf_legacy(bonafide_scores: ArrayLike, spoof_scores: ArrayLike, asv: AsvOperatingPoint,
                    costs: LegacyTDCFCosts = ASVSPOOF2019_TDCF) -> tuple[float, float]:
    """``(min t-DCF, CM threshold)`` of the legacy ASVspoof 2019 model."""
    curve, thresholds = tdcf_legacy_curve(bonafide_scores, spoof_scores, asv, costs)
    i = int(np.argmin(curve))
    return float(curve[i]), float(thresholds[i])


def check_asv_partition(asv: AsvScores, cm_attacks: set[str], partition: str | None = None
                        ) -> None:
    """Refuse ASV scores of another partition than the CM scores (or than ``partition``)."""
    asv_attacks = asv.spoof_attacks()
    asv_part = asv.partition()
    listed = ", ".join(sorted(asv_attacks))
    if partition is not None:
        if partition not in ASV_PARTITION_ATTACKS:
            raise ConfigError(f"partition: expected dev or eval, got {partition!r}")
        if asv_part is not None and asv_part != partition:
            raise DataError(f"{asv.source}: ASV scores of the {asv_part} partition (spoof trials"
                            f" of {listed}), but the CM scores are of {partition}; use"
                            f" {ASV_SCORE_FILES[partition]}")
    foreign = sorted(cm_attacks - asv_attacks)
    if foreign:
        hint = f" (this file is the {asv_part} partition's)" if asv_part else ""
        want = next((p for p, a in ASV_PARTITION_ATTACKS.items() if set(foreign) <= a), None)
        use = f"; use {ASV_SCORE_FILES[want]}" if want else ""
        raise DataError(f"{asv.source}: ASV score file of another partition{hint}: it has spoof"
                        f" trials of {listed} but none of the CM scores' attack(s)"
                        f" {', '.join(foreign)}{use}")


def min_tdcf_2019(scores: pd.DataFrame, asv: AsvScores | str | Path | None,
                  partition: str | None = None) -> float:
    """ASVspoof 2019 LA min t-DCF (legacy) of a CM score frame.

    ``scores`` has columns ``attack, key, score`` (as written by cl-spoof's score
    files); ``asv`` is the organisers' ASV score file of the same partition (or
    its parsed :class:`AsvScores`). Raises :class:`ConfigError` when ``asv`` is
    not given and :class:`DataError` for a file of another partition.
    """
    if asv is None:
        raise ConfigError("min t-DCF needs the organisers' ASV score file of the partition"
                          f" the CM scores are from ({ASV_SCORE_FILES['dev']} or"
                          f" {ASV_SCORE_FILES['eval']} in the ASVspoof 2019 LA download)")
    asv_scores = asv if isinstance(asv, AsvScores) else read_asv_scores(asv)
    bona, spoof, attacks = _cm_scores(scores)
    check_asv_partition(asv_scores, attacks, partition)
    return min_tdcf_legacy(bona, spoof, asv_operating_point(asv_scores))[0]


# ------------------------------------------------------------------- ASVspoof 5 DCFs


def dcf_normaliser(costs: DCFCosts = ASVSPOOF5_DCF) -> float:
    """Cost of the best default decision, ``min(Cmiss (1 - Pspoof), Cfa Pspoof)``."""
    if not 0.0 < costs.p_spoof < 1.0 or costs.c_miss <= 0 or costs.c_fa <= 0:
        raise ValueError(f"DCF needs 0 < Pspoof < 1 and positive costs: {costs}")
    return min(costs.c_miss * (1 - costs.p_spoof), costs.c_fa * costs.p_spoof)


def min_dcf(bonafide_scores: ArrayLike, spoof_scores: ArrayLike,
            costs: DCFCosts = ASVSPOOF5_DCF) -> tuple[float, float]:
    """``(minDCF, threshold)``: the normalised DCF minimised over the DET curve."""
    norm = dcf_normaliser(costs)
    pmiss, pfa, thresholds = compute_det_curve(bonafide_scores, spoof_scores)
    curve = (costs.c_miss * (1 - costs.p_spoof) * pmiss + costs.c_fa * costs.p_spoof * pfa) / norm
    i = int(np.argmin(curve))
    return float(curve[i]), float(thresholds[i])


def bayes_threshold(costs: DCFCosts = ASVSPOOF5_DCF) -> float:
    """LLR threshold of the Bayes decision, ``-log(Cmiss (1 - Pspoof) / (Cfa Pspoof))``."""
    dcf_normaliser(costs)
    return -math.log(costs.c_miss * (1 - costs.p_spoof) / (costs.c_fa * costs.p_spoof))


def act_dcf(bonafide_llrs: ArrayLike, spoof_llrs: ArrayLike,
            costs: DCFCosts = ASVSPOOF5_DCF) -> float:
    """Normalised DCF of deciding at the Bayes threshold (accept when ``llr >= threshold``)."""
    bona = as_array(bonafide_llrs, "bona fide")
    spoof = as_array(spoof_llrs, "spoof")
    thr = bayes_threshold(costs)
    pmiss = float(np.mean(bona < thr))
    pfa = float(np.mean(spoof >= thr))
    return (costs.c_miss * (1 - costs.p_spoof) * pmiss
            + costs.c_fa * costs.p_spoof * pfa) / dcf_normaliser(costs)


def asvspoof5_metrics(scores: pd.DataFrame, calibration: LogisticCalibration | None = None,
                      scores_are_llrs: bool = False) -> dict:
    """minDCF, EER, actDCF and Cllr of a CM score frame (``attack, key, score``).

    minDCF and EER use the scores as they are; actDCF and Cllr use
    ``calibration.llr(score)`` or, with ``scores_are_llrs``, the scores
    themselves. Asking for them with neither raises :class:`ConfigError`.
    The result records which calibration was used.
    """
    if calibration is None and not scores_are_llrs:
        raise ConfigError("actDCF and Cllr need calibrated log-likelihood ratios: pass a"
                          " calibration fitted on development scores"
                          " (fit_logistic_calibration) or scores_are_llrs=True")
    bona, spoof, _ = _cm_scores(scores)
    llr_b = calibration.llr(bona) if calibration is not None else bona
    llr_s = calibration.llr(spoof) if calibration is not None else spoof
    return {
        "min_dcf": min_dcf(bona, spoof)[0],
        "eer": compute_eer(bona, spoof)[0],
        "act_dcf": act_dcf(llr_b, llr_s),
        "cllr": cllr(llr_b, llr_s),
        "llr": calibration.to_dict() if calibration is not None else "scores_are_llrs",
    }
