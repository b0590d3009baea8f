"""Forward transfer of an EER matrix: GEM's definition with EER, against chance or a
measured starting model, and its place in the metric registry and metrics.json."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cl_spoof.metrics.continual import CHANCE_EER, forward_transfer, summarize
from cl_spoof.metrics.definitions import METRICS, table_metrics

# rows: after stage 0 (learned A), 1 (B), 2 (C); columns: the EER of A, B, C
MATRIX = pd.DataFrame([[4.0, 30.0, 45.0],
                       [10.0, 3.0, 20.0],
                       [12.0, 8.0, 2.0]], columns=["A", "B", "C"])


def test_forward_transfer_is_chance_minus_the_eer_just_before_learning() -> None:
    # B before its stage (after stage 0): 30 %; C before its stage (after stage 1): 20 %
    assert forward_transfer(MATRIX, ["A", "B", "C"]) == pytest.approx(
        ((CHANCE_EER - 30.0) + (CHANCE_EER - 20.0)) / 2)
    # positive: the earlier stages already detect the later attacks better than chance
    assert forward_transfer(MATRIX, ["A", "B", "C"]) > 0


def test_forward_transfer_follows_the_learning_order() -> None:
    # learned C, A, B: A before its stage (after stage 0) 4 %, B (after stage 1) 3 %
    assert forward_transfer(MATRIX, ["C", "A", "B"]) == pytest.approx(
        ((50 - 4.0) + (50 - 3.0)) / 2)


def test_forward_transfer_against_a_measured_starting_model() -> None:
    start = {"A": 48.0, "B": 35.0, "C": 10.0}
    # B: 35 - 30 = +5 (the first stage helped); C: 10 - 20 = -10 (it hurt)
    assert forward_transfer(MATRIX, ["A", "B", "C"], start) == pytest.approx((5 - 10) / 2)


def test_forward_transfer_is_negative_when_learning_makes_later_attacks_worse() -> None:
    worse = MATRIX.copy()
    worse.loc[0, "B"], worse.loc[1, "C"] = 70.0, 60.0
    assert forward_transfer(worse, ["A", "B", "C"]) == pytest.approx((-20 - 10) / 2)


def test_forward_transfer_skips_what_was_not_evaluated_and_is_none_without_terms() -> None:
    gaps = MATRIX.copy()
    gaps.loc[0, "B"] = np.nan
    assert forward_transfer(gaps, ["A", "B", "C"]) == pytest.approx(50 - 20.0)
    gaps.loc[1, "C"] = np.nan
    assert forward_transfer(gaps, ["A", "B", "C"]) is None
    assert forward_transfer(MATRIX.iloc[:1], ["A"]) is None  # a single stage
    assert forward_transfer(MATRIX.iloc[-1:], ["joint"]) is None  # joint training
    # an attack learned but not a column of the matrix adds no term
    assert forward_transfer(MATRIX, ["A", "X", "C"]) == pytest.approx(50 - 20.0)


def test_forward_transfer_is_a_registered_continual_metric() -> None:
    metric = METRICS["fwt"]
    assert metric.kind == "continual" and metric.signed and not metric.lower_is_better
    assert metric.summary is None  # tables only: the console shows one forgetting sign
    assert metric.from_matrix is not None
    assert metric.from_matrix(MATRIX, ["A", "B", "C"]) == forward_transfer(MATRIX,
                                                                           ["A", "B", "C"])
    assert "FWT (pts)" in [m.label for m in table_metrics()]
    assert metric.text(14.5) == "+14.50"
    # it is not one of summarize's own keys: metrics.json gets it from the registry
    assert "fwt" not in summarize(MATRIX, ["A", "B", "C"])
