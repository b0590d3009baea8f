"""Which official metrics a run computes, prepared before training starts.

:func:`official_inputs` turns ``metrics:`` of the config and the planned data into
:class:`~cl_spoof.metrics.official.OfficialInputs`: it reads the organisers' ASV
score file and refuses one of another partition than the test trials, so a bad
file stops the run before any training.
"""

from __future__ import annotations

import re

import numpy as np

from cl_spoof.benchmark import BenchmarkData
from cl_spoof.config import RunConfig
from cl_spoof.data.table import BONAFIDE, SPOOF
from cl_spoof.errors import DataError
from cl_spoof.labels import NO_ATTACK
from cl_spoof.metrics.dcf import (
    asv_operating_point,
    check_asv_partition,
    min_tdcf_legacy,
    read_asv_scores,
)
from cl_spoof.metrics.definitions import ASV_SCORES, METRICS, computed_names
from cl_spoof.metrics.official import OfficialInputs
from cl_spoof.metrics.score_files import FORBIDDEN, field_problem


def check_score_ids(data: BenchmarkData, score_format: str = "asvspoof2019") -> None:
    """Refuse, before training, utterance ids or attack names that would break the columns
    of a score file in ``score_format`` (``metrics.score_format``)."""
    for column, fix in (("utt_id", "rename the files or give the manifest a utt_id column"),
                        ("attack", "rename the attack")):
        values = data.table[column]
        bad = values[values.str.contains(r"\s", regex=True)]
        if len(bad):
            raise DataError(f"{data.source}: {len(bad)} {column} value(s) contain whitespace "
                            f"(e.g. {bad.iloc[0]!r}), which would break the columns of the "
                            f"score files; {fix}")
        forbidden = FORBIDDEN.get(score_format, "")
        if column == "utt_id" and forbidden:
            bad = values[values.str.contains(f"[{re.escape(forbidden)}]", regex=True)]
            if len(bad):
                raise DataError(f"{data.source}: {len(bad)} {column} value(s) cannot go into "
                                f"a {score_format} score file (e.g. {bad.iloc[0]!r} "
                                f"{field_problem(bad.iloc[0], score_format)}); {fix}")


def official_inputs(cfg: RunConfig, data: BenchmarkData) -> OfficialInputs:
    """What the run's official metrics need; :class:`DataError` naming the ASV file
    when it is unreadable, of another partition, or unusable for the t-DCF."""
    names = computed_names(cfg)
    if not any(ASV_SCORES in m.needs for m in METRICS.values() if m.key in names):
        return OfficialInputs(names=names, calibration_split=cfg.data.calibration_split)
    path = cfg.metrics.asv_scores
    assert path is not None  # config validation
    asv = read_asv_scores(path)
    rows = np.unique(np.concatenate([p.test_rows for p in data.plans]))
    test = data.table.iloc[rows]
    trials = "every test trial"
    prefix = ""
    if cfg.data.sources:
        source = cfg.metrics.tdcf_source or cfg.data.sources[0].name
        test = test[test["source"] == source]
        trials = f"the test trials of source {source}"
        prefix = f"{source}/"
    spoof = test.loc[test["label"] == SPOOF, "attack"]
    attacks = {a[len(prefix):] if prefix and a.startswith(prefix) else a
               for a in spoof if a != NO_ATTACK}
    if not len(spoof) or not (test["label"] == BONAFIDE).any():
        raise DataError(f"{path}: min t-DCF needs bona fide and spoof test trials of ASVspoof "
                        f"2019 LA; {trials} have {int((test['label'] == BONAFIDE).sum())} bona "
                        f"fide and {len(spoof)} spoof")
    check_asv_partition(asv, attacks)
    point = asv_operating_point(asv)
    try:
        min_tdcf_legacy([1.0], [0.0], point)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    return OfficialInputs(names=names, calibration_split=cfg.data.calibration_split, asv=point,
                          asv_file=str(path), tdcf_utts=frozenset(test["utt_id"]),
                          tdcf_trials=trials)
