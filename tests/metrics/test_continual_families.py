"""Continual metrics when a stage learns a family of attacks, on hand-made EER matrices."""

from __future__ import annotations

import pandas as pd
import pytest

from cl_spoof.metrics.continual import average_forgetting, learned_at, summarize
from cl_spoof.metrics.definitions import METRICS

# Stage 0 learns family F = {a, b}, stage 1 learns G = {c}, stage 2 learns H = {d}.
MATRIX = pd.DataFrame(
    {"a": [10.0, 14.0, 20.0],
     "b": [6.0, 4.0, 9.0],
     "c": [40.0, 8.0, 12.0],
     "d": [45.0, 35.0, 5.0]})
LEARNED = ["F", "G", "H"]
FAMILIES = {"F": ["a", "b"], "G": ["c"], "H": ["d"]}


def test_every_attack_of_a_family_counts_as_learned_at_its_stage() -> None:
    assert learned_at(list(MATRIX.columns), LEARNED, FAMILIES) == {"a": 0, "b": 0, "c": 1,
                                                                   "d": 2}
    s = summarize(MATRIX, LEARNED, FAMILIES)
    # average EER over the attacks learned so far: stage 0 learned a and b at once
    assert s["avg_eer_learned"] == pytest.approx([8.0, (14 + 4 + 8) / 3, (20 + 9 + 12 + 5) / 4])
    assert s["final_avg_eer"] == pytest.approx(11.5)
    # forgetting: final minus the best EER from the learning stage to the one before last
    assert s["forgetting"] == pytest.approx({"a": 10.0, "b": 5.0, "c": 4.0})
    assert s["max_forgetting"] == pytest.approx(10.0)
    # BWT: EER when learned minus final, over every attack learned before the last stage
    assert s["bwt"] == pytest.approx(((10 - 20) + (6 - 9) + (8 - 12)) / 3)
    assert s["families"] == FAMILIES


def test_average_forgetting_of_families() -> None:
    assert average_forgetting(MATRIX, LEARNED, families=FAMILIES) == pytest.approx(19 / 3)
    # after stage 1 only family F had been learned before: a 14 - 10, b 4 - 6
    assert average_forgetting(MATRIX, LEARNED, stage=1, families=FAMILIES) == pytest.approx(1.0)
    metric = METRICS["avg_forgetting"]
    assert metric.from_matrix is not None
    assert metric.from_matrix(MATRIX, LEARNED, FAMILIES) == pytest.approx(19 / 3)


def test_one_attack_per_family_is_the_attack_by_attack_summary() -> None:
    matrix = MATRIX.drop(columns="b")
    by_attack = summarize(matrix, ["a", "c", "d"])
    by_family = summarize(matrix, ["F", "G", "H"], {"F": ["a"], "G": ["c"], "H": ["d"]})
    for key in ("avg_eer_learned", "final_avg_eer", "forgetting", "max_forgetting", "bwt"):
        assert by_family[key] == by_attack[key], key
    assert "families" not in by_attack  # a run without families writes what it always did


def test_unlearned_columns_are_measured_but_not_counted_as_learned() -> None:
    # d belongs to no family: tested after every stage, never learned (a held-out system)
    families = {"F": ["a", "b"], "G": ["c"]}
    s = summarize(MATRIX.iloc[:2], ["F", "G"], families)
    assert learned_at(list(MATRIX.columns), ["F", "G"], families)["d"] is None
    assert s["avg_eer_learned"] == pytest.approx([8.0, (14 + 4 + 8) / 3])
    assert s["final_avg_eer"] == pytest.approx((14 + 4 + 8 + 35) / 4)
    assert set(s["forgetting"]) == {"a", "b"}


def test_joint_training_with_a_held_out_family() -> None:
    one = MATRIX.iloc[:1]
    s = summarize(one, ["joint"], {"joint": ["a", "b", "c"]})
    assert s["avg_eer_learned"] == pytest.approx([(10 + 6 + 40) / 3])
    assert s["bwt"] is None and s["forgetting"] == {}
    assert learned_at(list(one.columns), ["joint"], {"joint": ["a", "b", "c"]})["d"] is None
    assert set(learned_at(list(one.columns), ["joint"]).values()) == {0}  # plain joint
