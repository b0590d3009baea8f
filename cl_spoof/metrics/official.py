"""The official metrics of one training stage, from that stage's scores.

After every stage cl-spoof computes, from the test scores (higher = more bona fide),
every stage metric of the registry (:mod:`cl_spoof.metrics.definitions`):

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

import pandas as pd

from cl_spoof.metrics.definitions import OfficialInputs, StageScores, per_stage_metrics


def stage_metrics(scores: pd.DataFrame, inputs: OfficialInputs, stage: int,
                  calibration_scores: pd.DataFrame | None = None) -> dict:
    """The official metrics of one stage (see the module docstring), in registry order;
    ``None`` where a metric is not computed or its trials are missing (e.g. no bona
    fide). What an input was (the calibration, the t-DCF trials) is recorded after the
    last metric that used it."""
    s = StageScores(scores, inputs, stage, calibration_scores)
    chosen = [m for m in per_stage_metrics() if not m.optional or m.key in inputs.names]
    out: dict = {"stage": stage}
    for i, metric in enumerate(chosen):
        assert metric.per_stage is not None
        out[metric.key] = metric.per_stage(s)
        for need in metric.needs:
            if need.record is not None and not any(need in m.needs for m in chosen[i + 1:]):
                key, value = need.record(s)
                out[key] = value
    return out
