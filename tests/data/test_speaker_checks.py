"""A speaker in the train split of one source and the test split of another is a named
problem (``cross_source_speakers``); within one source it is the source's own design."""

from __future__ import annotations

import pandas as pd

from cl_spoof.data.checks import SHARED_SPEAKER, cross_source_speakers


def _table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(source, speaker, split) rows."""
    return pd.DataFrame([{"utt_id": f"{src}/{i}", "path": f"{i}.wav", "label": "bonafide",
                          "attack": "-", "speaker": spk, "split": split, "source": src}
                         for i, (src, spk, split) in enumerate(rows)])


def test_only_speakers_crossing_sources_are_problems() -> None:
    table = _table([
        ("a", "1089", "train"), ("b", "1089", "eval"),    # crosses: a train, b eval
        ("a", "p225", "train"), ("a", "p225", "eval"),    # one source's own overlap
        ("b", "p226", "train"), ("a", "p226", "dev"),     # dev is not tested here
        ("a", "p227", "eval"), ("b", "p227", "eval"),     # tested in both, trained nowhere
        ("b", "EN-F", "train"), ("a", "EN-F", "eval"), ("c", "EN-F", "eval"),
        ("a", "", "train"), ("b", "", "eval"),            # no speaker id: nothing to compare
    ])
    problems = cross_source_speakers(table, "train", ["eval"])
    assert [p.where for p in problems] == ["speaker 1089", "speaker EN-F"]
    assert {p.kind for p in problems} == {SHARED_SPEAKER}
    assert problems[0].detail == "train in a; eval in b"
    assert problems[1].detail == "train in b; eval in a, c"
    assert [p.where for p in cross_source_speakers(table, "train", ["eval", "dev"])] == [
        "speaker 1089", "speaker EN-F", "speaker p226"]


def test_one_source_or_no_source_column_has_nothing_to_cross() -> None:
    table = _table([("a", "s1", "train"), ("a", "s1", "eval")])
    assert cross_source_speakers(table, "train", ["eval"]) == []
    assert cross_source_speakers(table.drop(columns="source"), "train", ["eval"]) == []
