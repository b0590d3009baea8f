"""The official metrics of one training stage, from that stage's scores.

After every stage cl-spoof computes, from the test scores (higher = more bona fide):

- ``pooled_eer`` (%): every test bona fide trial against every test spoof trial,
  all experiences together (each utterance once);
- ``min_dcf``: ASVspoof 5 minimum normalised DCF (:func:`cl_spoof.metrics.dcf.min_dcf`);
- ``act_dcf`` and ``cllr``: ASVspoof 5 actual DCF and Cllr of the scores mapped to
  LLRs by a logistic calibration fitted on that stage's *calibration* scores
  (``data.calibration_split``, never trained on); ``calibration`` records the fit
  and the scores it used;
- ``min_tdcf``: ASVspoof 2019 LA min t-DCF (legacy model) of the ASVspoof 2019 test
  trials, with the organisers' ASV scores of the same partition.

:class:`OfficialInputs` says which of them a run computes; it is prepared (and the
ASV file read and checked) before training starts.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

import pandas as pd

from cl_spoof.metrics.calibration import cllr, fit_logistic_calibration
from cl_spoof.metrics.dcf import AsvOperatingPoint, act_dcf, min_dcf, min_tdcf_legacy
from cl_spoof.metrics.eer import compute_eer

#: Keys of a stage's official metrics that are numbers (in metrics.json, "official").
NUMBERS: tuple[str, ...] = ("pooled_eer", "min_dcf", "act_dcf", "cllr", "min_tdcf")


@dataclass(frozen=True)
class OfficialInputs:
    """Which official metrics to compute, and what they need."""

    names: frozenset[str] = frozenset({"min_dcf"})  # of min_dcf, act_dcf, cllr, min_tdcf
    calibration_split: str | None = None  # the split the calibration scores come from
    asv: AsvOperatingPoint | None = None  # organisers' ASV at its EER threshold
    asv_file: str | None = None
    tdcf_utts: Set[str] | None = None  # utterances whose scores enter min t-DCF (None: all)
    tdcf_trials: str = "every test trial"  # what those utterances are, for metrics.json


def _split(scores: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    key = scores["key"].astype(str)
    return scores.loc[key == "bonafide", "score"], scores.loc[key == "spoof", "score"]


def stage_metrics(scores: pd.DataFrame, inputs: OfficialInputs, stage: int,
                  calibration_scores: pd.DataFrame | None = None) -> dict:
    """The official metrics of one stage (see the module docstring); ``None`` where a
    metric is not computed or its trials are missing (e.g. no bona fide)."""
    bona, spoof = _split(scores)
    both = len(bona) > 0 and len(spoof) > 0
    out: dict = {"stage": stage,
                 "pooled_eer": 100.0 * compute_eer(bona, spoof)[0] if both else None}
    if "min_dcf" in inputs.names:
        out["min_dcf"] = min_dcf(bona, spoof)[0] if both else None
    if {"act_dcf", "cllr"} & inputs.names:
        if calibration_scores is None:
            raise ValueError("act_dcf/cllr need the stage's calibration scores")
        cal_bona, cal_spoof = _split(calibration_scores)
        cal = fit_logistic_calibration(
            cal_bona, cal_spoof,
            fitted_on=f"{len(cal_bona)} bona fide + {len(cal_spoof)} spoof scores of the "
                      f"{inputs.calibration_split!r} split after stage {stage}")
        for name, fn in (("act_dcf", act_dcf), ("cllr", cllr)):
            if name in inputs.names:
                out[name] = fn(cal.llr(bona), cal.llr(spoof)) if both else None
        out["calibration"] = cal.to_dict()
    if "min_tdcf" in inputs.names:
        if inputs.asv is None:
            raise ValueError("min_tdcf needs the organisers' ASV operating point")
        sel = scores if inputs.tdcf_utts is None else \
            scores[scores["utt_id"].isin(inputs.tdcf_utts)]
        t_bona, t_spoof = _split(sel)
        out["min_tdcf"] = (min_tdcf_legacy(t_bona, t_spoof, inputs.asv)[0]
                           if len(t_bona) and len(t_spoof) else None)
        out["tdcf"] = {"asv_scores": inputs.asv_file, "trials": inputs.tdcf_trials,
                       "bonafide": len(t_bona), "spoof": len(t_spoof)}
    return out
