"""Experience planning and the Avalanche benchmark built from the utterance table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cl_spoof.benchmark import (
    default_attacks,
    joint_plan,
    load_benchmark_data,
    plan_experiences,
    split_eval_only_attacks,
)
from cl_spoof.benchmark.datasets import build_benchmark
from cl_spoof.config import DataConfig
from cl_spoof.data import read_asvspoof2019_la
from cl_spoof.errors import DataError
from cl_spoof.training import class_weights

# The attacks of the synthetic ASVspoof 2019 LA fixture (conftest ``asvspoof2019_la``): A01
# and A02 in train and dev, A07 and A08 only in eval; 6 clips per split and class.
TRAIN_ATTACKS = ("A01", "A02")
EVAL_ONLY = ("A07", "A08")
PER_SPLIT = 6


def test_asvspoof_experiences_all_bonafide(asvspoof2019_la: Path) -> None:
    table = read_asvspoof2019_la(asvspoof2019_la)
    assert default_attacks(table, "train") == TRAIN_ATTACKS
    plans = plan_experiences(table, TRAIN_ATTACKS)
    every_bonafide = set(table.query("split == 'train' and label == 'bonafide'").utt_id)
    for p in plans:
        train, test = table.iloc[p.train_rows], table.iloc[p.test_rows]
        assert train.groupby("label").size().to_dict() == {"bonafide": PER_SPLIT,
                                                           "spoof": PER_SPLIT}
        assert set(train.loc[train.label == "bonafide", "utt_id"]) == every_bonafide
        assert set(train.loc[train.label == "spoof", "attack"]) == {p.attack}
        assert set(train.split) == {"train"} and set(test.split) == {"dev"}
        assert test.groupby("label").size().to_dict() == {"bonafide": PER_SPLIT,
                                                          "spoof": PER_SPLIT}
        assert set(test.loc[test.label == "spoof", "attack"]) == {p.attack}


def test_asvspoof_experiences_disjoint_bonafide(asvspoof2019_la: Path) -> None:
    table = read_asvspoof2019_la(asvspoof2019_la)
    plans = plan_experiences(table, TRAIN_ATTACKS, bonafide_sharing="disjoint")
    bona = [set(table.iloc[p.train_rows].query("label == 'bonafide'").utt_id) for p in plans]
    assert [len(b) for b in bona] == [PER_SPLIT // 2, PER_SPLIT // 2]
    assert len(set().union(*bona)) == PER_SPLIT  # pairwise disjoint, every one used


def test_eval_only_attacks_split_eval_speaker_disjointly(asvspoof2019_la: Path) -> None:
    table = split_eval_only_attacks(read_asvspoof2019_la(asvspoof2019_la), EVAL_ONLY, 0.5,
                                    seed=0)
    plans = plan_experiences(table, TRAIN_ATTACKS + EVAL_ONLY)
    assert [p.attack for p in plans] == list(TRAIN_ATTACKS + EVAL_ONLY)
    ev_train = table.iloc[plans[2].train_rows]
    ev_test = table.iloc[plans[2].test_rows]
    assert set(ev_train.loc[ev_train.label == "spoof", "attack"]) == {"A07"}
    spk_train = set(ev_train.loc[ev_train.utt_id.str.startswith("LA_E"), "speaker"])
    spk_test = set(ev_test.loc[ev_test.utt_id.str.startswith("LA_E"), "speaker"])
    assert spk_train and spk_test and not spk_train & spk_test
    n_a07 = (ev_train.attack == "A07").sum() + (ev_test.attack == "A07").sum()
    assert n_a07 == PER_SPLIT  # every A07 utterance lands in exactly one part
    assert not (table.split == "eval").any()  # nothing else was in eval


def test_plan_errors_name_the_problem(asvspoof2019_la: Path) -> None:
    table = read_asvspoof2019_la(asvspoof2019_la)
    with pytest.raises(DataError, match="A42 not in the data"):
        plan_experiences(table, ("A01", "A42"))
    with pytest.raises(DataError, match="A07: no spoof utterances in the train split"):
        plan_experiences(table, ("A07",))
    with pytest.raises(DataError, match="split 'test' is empty"):
        plan_experiences(table, ("A01",), test_split="test")


def test_avalanche_benchmark_on_tiny_corpus(tiny_corpus: Path) -> None:
    data = load_benchmark_data(DataConfig(source=str(tiny_corpus), num_samples=3000))
    bm = build_benchmark(data.table, data.waveforms, data.plans, 3000)
    assert [e.attack for e in bm.train_stream] == ["T1", "T2"]
    assert [e.attack for e in bm.test_stream] == ["T1", "T2"]
    for exp in bm.train_stream:
        assert len(exp.dataset) == 20  # 10 spoofs + 10 bona fide
        x, y, t = exp.dataset[0]
        assert isinstance(x, torch.Tensor) and x.shape == (3000,) and t == 0
        assert sorted(set(exp.dataset.targets)) == [0, 1]
    test = bm.test_stream[1]
    assert len(test.utt_ids) == len(test.dataset) == 20
    # evaluation crops are deterministic, training crops random
    assert torch.equal(test.dataset[3][0], test.dataset[3][0])
    tr = bm.train_stream[0].dataset
    crops = {float(tr[0][0][0]) for _ in range(10)}
    assert len(crops) > 1
    joint = build_benchmark(data.table, data.waveforms, data.plans, 3000,
                            train_plans=[joint_plan(data.plans)])
    assert len(joint.train_stream) == 1 and len(joint.train_stream[0].dataset) == 30
    assert len(joint.test_stream) == 2


def test_class_weights_balance_counts() -> None:
    w = class_weights([0, 0, 0, 1])
    assert w.tolist() == pytest.approx([4 / 6, 2.0])
    assert float((w * torch.tensor([3.0, 1.0])).sum()) == pytest.approx(4.0)
    assert class_weights([0, 0]).tolist() == pytest.approx([0.5, 1.0])  # no bona fide: no crash


def test_training_refuses_bad_audio(tiny_corpus: Path, tmp_path: Path) -> None:
    lines = tiny_corpus.read_text().splitlines()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....garbage")
    lines.append(f"{broken},spoof,T1,x,train")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines).replace("audio/", f"{tiny_corpus.parent}/audio/") + "\n")
    with pytest.raises(DataError, match=r"broken\.wav: unreadable"):
        load_benchmark_data(DataConfig(source=str(manifest), num_samples=3000))


def test_joint_plan_is_union() -> None:
    from cl_spoof.benchmark import ExperiencePlan

    plans = [ExperiencePlan("a", np.array([0, 1, 5]), np.array([9])),
             ExperiencePlan("b", np.array([2, 1, 5]), np.array([8]))]
    assert joint_plan(plans).train_rows.tolist() == [0, 1, 2, 5]
