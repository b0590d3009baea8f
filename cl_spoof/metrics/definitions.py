"""Every metric cl-spoof reports, one :class:`Metric` each: **adding a metric is one entry
in** :data:`METRICS`.

An entry says what the metric is called in ``metrics.json`` and on screen, which
way is better, how its numbers are written, what it needs beyond the test scores
(a calibration split, the organisers' ASV scores), whether ``metrics.official`` may
ask for it, and, for a metric of each stage, how it is computed from that stage's
scores (:func:`cl_spoof.metrics.official.stage_metrics`). The run directory, the
console summary and the report tables are drawn from this registry, in its order.

Two kinds:

- **stage** metrics are computed after every stage from its scores; ``metrics.json``
  holds them per stage under ``official`` and the last stage's as ``final_<key>``;
- **continual** metrics summarise the stage x attack EER matrix
  (:mod:`cl_spoof.metrics.continual`); ``metrics.json`` holds them under their key.

This module imports no numerical library until a metric is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cl_spoof.config import RunConfig
from cl_spoof.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from cl_spoof.metrics.calibration import LogisticCalibration
    from cl_spoof.metrics.dcf import AsvOperatingPoint


@dataclass(frozen=True)
class OfficialInputs:
    """Which official metrics to compute, and what they need."""

    names: frozenset[str] = frozenset({"min_dcf"})  # the optional metrics asked for
    calibration_split: str | None = None  # the split the calibration scores come from
    asv: AsvOperatingPoint | None = None  # organisers' ASV at its EER threshold
    asv_file: str | None = None
    tdcf_utts: Set[str] | None = None  # utterances whose scores enter min t-DCF (None: all)
    tdcf_trials: str = "every test trial"  # what those utterances are, for metrics.json


@dataclass(frozen=True)
class Need:
    """An input a metric needs beyond the test scores, and how a config gives it."""

    what: str  # completes "... which needs <what>"
    how: str  # what to set, completes "...: <how>"
    given: Callable[[RunConfig], bool]
    # What a stage's metrics.json entry records about the input once used (after the
    # last metric that used it): (key, value).
    record: Callable[[StageScores], tuple[str, Any]] | None = None


class StageScores:
    """One stage's test scores (``key``: bonafide/spoof, ``score``: higher = more bona
    fide) and what several metrics share, computed once when first asked for."""

    def __init__(self, scores: pd.DataFrame, inputs: OfficialInputs, stage: int,
                 calibration_scores: pd.DataFrame | None = None) -> None:
        self.scores = scores
        self.inputs = inputs
        self.stage = stage
        self.calibration_scores = calibration_scores
        self.bona, self.spoof = split_scores(scores)
        self.both = len(self.bona) > 0 and len(self.spoof) > 0  # a metric needs both

    @cached_property
    def calibration(self) -> LogisticCalibration:
        """Score-to-LLR calibration fitted on the stage's calibration scores."""
        from cl_spoof.metrics.calibration import fit_logistic_calibration

        if self.calibration_scores is None:
            raise ValueError("act_dcf/cllr need the stage's calibration scores")
        cal_bona, cal_spoof = split_scores(self.calibration_scores)
        return fit_logistic_calibration(
            cal_bona, cal_spoof,
            fitted_on=f"{len(cal_bona)} bona fide + {len(cal_spoof)} spoof scores of the "
                      f"{self.inputs.calibration_split!r} split after stage {self.stage}")

    @cached_property
    def tdcf_trials(self) -> tuple[pd.Series, pd.Series]:
        """Bona fide and spoof scores of the trials min t-DCF is computed on."""
        if self.inputs.asv is None:
            raise ValueError("min_tdcf needs the organisers' ASV operating point")
        utts = self.inputs.tdcf_utts
        sel = self.scores if utts is None else self.scores[self.scores["utt_id"].isin(utts)]
        return split_scores(sel)


def split_scores(scores: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The bona fide and the spoof scores of a score frame."""
    key = scores["key"].astype(str)
    return scores.loc[key == "bonafide", "score"], scores.loc[key == "spoof", "score"]


@dataclass(frozen=True)
class Metric:
    """One metric: its names, direction and format, its inputs, and (for a stage metric)
    how a stage's scores give it."""

    key: str  # per-stage key in metrics.json ("min_dcf"); continual: its metrics.json key
    label: str  # column header of the report and comparison tables ("minDCF")
    summary: str | None  # the console's run summary, a format of the value; None: not shown
    decimals: int = 3  # of the report tables
    signed: bool = False  # tables show the sign (+1.20)
    lower_is_better: bool = True
    kind: str = "stage"  # "stage" or "continual"
    # stage: the value of one stage (None where its trials are missing); always computed
    # unless ``optional``, then when metrics.official names it or its needs are given.
    per_stage: Callable[[StageScores], float | None] | None = None
    # continual: the value from the EER matrix, the stage labels and the families (label
    # -> the attacks a stage learns; None: one attack per stage), when it is not one of
    # cl_spoof.metrics.continual.summarize's own keys.
    from_matrix: Callable[[pd.DataFrame, list[str], Mapping[str, Sequence[str]] | None],
                          float | None] | None = None
    needs: tuple[Need, ...] = ()
    optional: bool = False  # may be named in metrics.official
    # In the comparison table: "always", or "if_computed" (when some run has a value).
    shown: str = "always"
    beside: str | None = None  # the comparison table shows it right after this metric

    @property
    def run_key(self) -> str:
        """Its key among a run's headline metrics (``final_<key>`` for a stage metric)."""
        return f"final_{self.key}" if self.kind == "stage" else self.key

    def text(self, value: float | None) -> str:
        """``value`` as the report tables write it (``—`` when missing)."""
        if value is None or value != value:  # None or NaN
            return "—"
        return f"{value:{'+' if self.signed else ''}.{self.decimals}f}"

    def mean_std(self, mean: float | None, std: float | None) -> str:
        """``mean ± std`` as the comparison table writes it (no ``±`` for a missing std)."""
        text = self.text(mean)
        if text != "—" and std is not None and std == std:
            text += f" ± {std:.{self.decimals}f}"
        return text


# --------------------------------------------------------------------------- inputs


def _calibration_record(s: StageScores) -> tuple[str, Any]:
    return "calibration", s.calibration.to_dict()


def _tdcf_record(s: StageScores) -> tuple[str, Any]:
    bona, spoof = s.tdcf_trials
    return "tdcf", {"asv_scores": s.inputs.asv_file, "trials": s.inputs.tdcf_trials,
                    "bonafide": len(bona), "spoof": len(spoof)}


CALIBRATION = Need("calibrated log-likelihood ratios", "set data.calibration_split (a split "
                   "scored after every stage to fit the calibration on)",
                   lambda cfg: cfg.data.calibration_split is not None, _calibration_record)
ASV_SCORES = Need("the organisers' ASV score file of the test partition", "set "
                  "metrics.asv_scores (e.g. LA/ASVspoof2019_LA_asv_scores/ASVspoof2019.LA."
                  "asv.dev.gi.trl.scores.txt)",
                  lambda cfg: cfg.metrics.asv_scores is not None, _tdcf_record)


# --------------------------------------------------------------------------- computations


def _pooled_eer(s: StageScores) -> float | None:
    from cl_spoof.metrics.eer import compute_eer

    return 100.0 * compute_eer(s.bona, s.spoof)[0] if s.both else None


def _min_dcf(s: StageScores) -> float | None:
    from cl_spoof.metrics.dcf import min_dcf

    return min_dcf(s.bona, s.spoof)[0] if s.both else None


def _act_dcf(s: StageScores) -> float | None:
    from cl_spoof.metrics.dcf import act_dcf

    return act_dcf(s.calibration.llr(s.bona), s.calibration.llr(s.spoof)) if s.both else None


def _cllr(s: StageScores) -> float | None:
    from cl_spoof.metrics.calibration import cllr

    return cllr(s.calibration.llr(s.bona), s.calibration.llr(s.spoof)) if s.both else None


def _min_tdcf(s: StageScores) -> float | None:
    from cl_spoof.metrics.dcf import min_tdcf_legacy

    bona, spoof = s.tdcf_trials
    assert s.inputs.asv is not None  # tdcf_trials checked it
    return min_tdcf_legacy(bona, spoof, s.inputs.asv)[0] if len(bona) and len(spoof) else None


def _average_forgetting(matrix: pd.DataFrame, learned: list[str],
                        families: Mapping[str, Sequence[str]] | None) -> float | None:
    from cl_spoof.metrics.continual import average_forgetting

    return average_forgetting(matrix, learned, families=families)


def _forward_transfer(matrix: pd.DataFrame, learned: list[str],
                      families: Mapping[str, Sequence[str]] | None = None) -> float | None:
    from cl_spoof.metrics.continual import forward_transfer

    return forward_transfer(matrix, learned, families=families)


# --------------------------------------------------------------------------- the registry


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("final_avg_eer", "final avg EER %", "final average EER {:.2f} %", decimals=2,
           kind="continual"),
    # The console shows forgetting one way (larger = more forgetting): BWT, whose sign is
    # the other way, is left to the tables, where its sign is explained.
    Metric("bwt", "BWT (pts)", None, decimals=2, signed=True, lower_is_better=False,
           kind="continual"),
    Metric("max_forgetting", "max forgetting (pts)", "max forgetting {:.2f} pts", decimals=2,
           kind="continual"),
    Metric("avg_forgetting", "avg forgetting (pts)", "avg forgetting {:.2f} pts", decimals=2,
           kind="continual", from_matrix=_average_forgetting, beside="bwt"),
    # Forward transfer: 50 % (chance) minus each attack's EER just before its own stage,
    # averaged; positive = learned earlier attacks already help (tables only).
    Metric("fwt", "FWT (pts)", None, decimals=2, signed=True, lower_is_better=False,
           kind="continual", from_matrix=_forward_transfer),
    Metric("pooled_eer", "pooled EER %", "pooled EER {:.2f} %", decimals=2,
           per_stage=_pooled_eer, shown="if_computed"),
    Metric("min_dcf", "minDCF", "minDCF {:.3f}", per_stage=_min_dcf, optional=True,
           shown="if_computed"),
    Metric("act_dcf", "actDCF", "actDCF {:.3f}", per_stage=_act_dcf, needs=(CALIBRATION,),
           optional=True, shown="if_computed"),
    Metric("cllr", "Cllr (bits)", "Cllr {:.3f}", per_stage=_cllr, needs=(CALIBRATION,),
           optional=True, shown="if_computed"),
    Metric("min_tdcf", "min t-DCF", "min t-DCF {:.3f}", per_stage=_min_tdcf,
           needs=(ASV_SCORES,), optional=True, shown="if_computed"),
)}


def per_stage_metrics() -> list[Metric]:
    """The stage metrics, in registry order."""
    return [m for m in METRICS.values() if m.kind == "stage"]


def continual_metrics() -> list[Metric]:
    """The continual metrics, in registry order."""
    return [m for m in METRICS.values() if m.kind == "continual"]


def run_keys() -> list[str]:
    """A run's headline metrics (``metrics.json`` keys compared across runs), in order."""
    return [m.run_key for m in METRICS.values()]


def table_metrics() -> list[Metric]:
    """The metrics in the order of the comparison table's columns: the registry's, each
    ``beside`` another placed right after it."""
    order = [m for m in METRICS.values() if m.beside is None]
    for m in METRICS.values():
        if m.beside is not None:
            order.insert(order.index(METRICS[m.beside]) + 1, m)
    return order


def optional_names() -> list[str]:
    """The metrics ``metrics.official`` may name."""
    return [m.key for m in METRICS.values() if m.optional]


def computed_names(cfg: RunConfig) -> frozenset[str]:
    """The optional metrics a run computes: ``metrics.official``, or (when empty) every
    one whose inputs the config gives."""
    if cfg.metrics.official:
        return frozenset(cfg.metrics.official)
    return frozenset(m.key for m in METRICS.values()
                     if m.optional and all(n.given(cfg) for n in m.needs))


def resolve_metrics(cfg: RunConfig) -> RunConfig:
    """``cfg`` once its ``metrics.official`` names known metrics whose inputs the config
    gives (:class:`ConfigError` naming the key otherwise); idempotent."""
    known = optional_names()
    unknown = [n for n in cfg.metrics.official if n not in known]
    if unknown:
        raise ConfigError(f"metrics.official: unknown metric(s) {', '.join(unknown)} (known: "
                          f"{', '.join(known)}; pooled EER and average forgetting are always "
                          "computed)" + did_you_mean(unknown[0], known))
    for m in METRICS.values():
        if m.key not in cfg.metrics.official:
            continue
        for need in m.needs:
            if not need.given(cfg):
                raise ConfigError(f"metrics.official asks for {m.key}, which needs "
                                  f"{need.what}: {need.how}")
    return cfg


def summary_parts(values: Mapping[str, Any]) -> list[str]:
    """The console summary of a run's headline metrics (those it has), in registry order."""
    return [m.summary.format(values[m.run_key]) for m in METRICS.values()
            if m.summary is not None and values.get(m.run_key) is not None]
