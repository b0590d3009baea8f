"""Families as experiences and the speaker-disjoint resplit, planned on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cl_spoof.benchmark.loading import map_speakers
from cl_spoof.benchmark.planning import (
    configured_attacks,
    family_candidates,
    joint_plan,
    plan_families,
    resolve_families,
    resplit_by_speaker,
    speaker_draw,
)
from cl_spoof.config import config_from_dict
from cl_spoof.errors import DataError

ATTACKS = ["src.is21-a", "src.is21-b", "src.is23-a", "src.tts1", "vc.x", "vc.y"]


def test_patterns_resolve_in_their_order_and_every_attack_once() -> None:
    families = {"gan": ["src.is21-*"], "tts": ["src.tts1", "src.is23-a"], "vc": ["vc.*", "vc.x"]}
    assert resolve_families(families, ATTACKS) == {
        "gan": ("src.is21-a", "src.is21-b"), "tts": ("src.tts1", "src.is23-a"),
        "vc": ("vc.x", "vc.y")}
    assert resolve_families({"only": ["vc.y"]}, ATTACKS) == {"only": ("vc.y",)}  # others out


def test_a_pattern_matching_nothing_or_an_attack_in_two_families_is_named() -> None:
    with pytest.raises(DataError, match=r"families.gan: 'src.is22-\*' matches no attack"):
        resolve_families({"gan": ["src.is22-*"]}, ATTACKS)
    with pytest.raises(DataError, match="did you mean 'src.tts1'"):
        resolve_families({"tts": ["src.tts2"]}, ATTACKS)
    with pytest.raises(DataError, match="vc.x is in two families, a and b"):
        resolve_families({"a": ["vc.x"], "b": ["vc.*"]}, ATTACKS)


def _table(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(label, attack, speaker, split) rows."""
    return pd.DataFrame([{"utt_id": f"u{i}", "path": f"u{i}.wav", "label": label,
                          "attack": attack, "speaker": spk, "split": split}
                         for i, (label, attack, spk, split) in enumerate(rows)])


TABLE = _table([
    ("bonafide", "-", "s1", "train"), ("bonafide", "-", "s2", "train"),   # 0, 1
    ("bonafide", "-", "s3", "eval"),                                       # 2
    ("spoof", "A", "s1", "train"), ("spoof", "A", "s3", "eval"),           # 3, 4
    ("spoof", "B", "s2", "train"),                                         # 5: train only
    ("spoof", "C", "s1", "train"), ("spoof", "C", "s3", "eval"),           # 6, 7
    ("spoof", "D", "s3", "eval"),                                          # 8: test only
    ("spoof", "E", "s2", "train"), ("spoof", "E", "s3", "eval"),           # 9, 10
])


def test_a_family_trains_on_all_its_attacks_and_tests_each_one() -> None:
    planned = plan_families(TABLE, {"f1": ("A", "B"), "f2": ("C", "D")}, "train", "eval")
    assert [s.attack for s in planned.stages] == ["f1", "f2"]
    assert planned.stages[0].train_rows.tolist() == [3, 5, 0, 1]  # spoofs of A and B + bona
    assert planned.stages[1].train_rows.tolist() == [6, 0, 1]  # D has no training rows
    assert len(planned.stages[0].test_rows) == 0
    # B has no test rows: learned, no column; D: tested from its family's stage on
    assert [p.attack for p in planned.plans] == ["A", "C", "D"]
    assert planned.families == {"f1": ("A",), "f2": ("C", "D")}
    assert planned.plans[2].test_rows.tolist() == [8, 2]
    assert joint_plan(planned.stages).train_rows.tolist() == [0, 1, 3, 5, 6]


def test_held_out_families_are_tested_never_learned() -> None:
    planned = plan_families(TABLE, {"f1": ("A",), "unseen": ("E",), "f2": ("C",)}, "train",
                            "eval", held_out=["unseen"])
    assert [s.attack for s in planned.stages] == ["f1", "f2"]
    assert [p.attack for p in planned.plans] == ["A", "C", "E"]  # held-out columns last
    assert planned.families == {"f1": ("A",), "f2": ("C",)}
    assert planned.held_out == {"unseen": ("E",)}
    assert 9 not in joint_plan(planned.stages).train_rows  # E's training spoof is never used


def test_a_family_without_training_or_test_spoofs_is_refused() -> None:
    with pytest.raises(DataError, match=r"family only_d \(D\): no spoof utterances in the "
                                        "train split"):
        plan_families(TABLE, {"f1": ("A",), "only_d": ("D",)}, "train", "eval")
    with pytest.raises(DataError, match=r"family only_b \(B\): no spoof utterances in the "
                                        "test split"):
        plan_families(TABLE, {"only_b": ("B",)}, "train", "eval")


def test_disjoint_bona_fide_shares_go_to_families() -> None:
    planned = plan_families(TABLE, {"f1": ("A",), "f2": ("C",)}, "train", "eval",
                            bonafide_sharing="disjoint", seed=1)
    bona = [set(s.train_rows.tolist()) & {0, 1} for s in planned.stages]
    assert len(bona[0]) == len(bona[1]) == 1 and bona[0] | bona[1] == {0, 1}
    assert set(planned.plans[0].train_rows.tolist()) & {0, 1} == bona[0]


def test_the_experience_order_of_a_family_config() -> None:
    cfg = config_from_dict({"data": {"experience_by": "family", "train_split": "train",
                                     "test_split": "eval",
                                     "families": {"late": ["E"], "early": ["A", "[BC]"]}}})
    assert family_candidates(TABLE, ["train", "eval"]) == ["A", "B", "C", "D", "E"]
    assert configured_attacks(TABLE, cfg.data) == ("E", "A", "B", "C")


def test_speaker_draw_is_a_stable_hash() -> None:
    # fixed values (sha256 of "0:p225" starts ff0dc5781cfa8fe5): the draw must never change
    # with the Python version or the machine
    assert speaker_draw("p225", 0) == int("ff0dc5781cfa8fe5", 16) / 2**64
    assert speaker_draw("1089", 0) == int("3aada894e598e36d", 16) / 2**64
    assert speaker_draw("1089", 1) != speaker_draw("1089", 0)
    draws = np.array([speaker_draw(f"spk{i}", 5) for i in range(2000)])
    assert draws.min() >= 0 and draws.max() < 1 and abs(draws.mean() - 0.5) < 0.02


def _speaker_table(n_speakers: int = 30) -> pd.DataFrame:
    rows = []
    for s in range(n_speakers):
        for src, split in (("one", "train"), ("two", "eval")):
            rows += [("bonafide", "-", f"spk{s}", split), ("spoof", f"{src}.x", f"spk{s}", split)]
    table = _table(rows)
    table["source"] = ["one" if split == "train" else "two" for split in table["split"]]
    return table


def test_resplit_is_seeded_speaker_disjoint_and_keeps_other_splits() -> None:
    dev = _table([("bonafide", "-", "spk0", "dev")]).assign(source="one", utt_id="dev0")
    table = pd.concat([_speaker_table(), dev], ignore_index=True)
    a = resplit_by_speaker(table, seed=0, test_fraction=0.33, train_split="train",
                           test_split="eval")
    assert a.equals(resplit_by_speaker(table, 0, 0.33, "train", "eval"))  # deterministic
    b = resplit_by_speaker(table, 1, 0.33, "train", "eval")
    assert not a["split"].equals(b["split"])  # another seed, another draw
    assert a["split"].iloc[-1] == "dev"  # a split the run does not read stays as it is
    read = a.iloc[:-1]
    train = set(read.loc[read["split"] == "train", "speaker"])
    test = set(read.loc[read["split"] == "eval", "speaker"])
    assert not train & test and train | test == {f"spk{s}" for s in range(30)}
    assert test == {s for s in train | test if speaker_draw(s, 0) < 0.33}  # the rule
    assert a.drop(columns="split").equals(table.drop(columns="split"))


def test_resplit_refuses_rows_without_speaker_and_an_empty_side() -> None:
    table = _speaker_table(3)
    blank = table.copy()
    blank.loc[0, "speaker"] = ""
    with pytest.raises(DataError, match=r"1 utterance\(s\) \(source one\) have no speaker"):
        resplit_by_speaker(blank, 0, 0.5, "train", "eval")
    with pytest.raises(DataError, match="one side is empty"):
        resplit_by_speaker(_speaker_table(1), 0, 0.5, "train", "eval")


def test_speaker_map_gives_shared_identities() -> None:
    speakers = pd.Series(["libritts_1089", "p225", "EN-F", "vctk_p225_x"])
    mapped = map_speakers(speakers, {"^libritts_": "", r"^vctk_(p\d+)_x$": r"\1"})
    assert mapped.tolist() == ["1089", "p225", "EN-F", "p225"]
    # only the first pattern that matches applies
    assert map_speakers(pd.Series(["ab"]), {"a": "x", "b": "y"}).tolist() == ["xb"]
