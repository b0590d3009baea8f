"""The utterance table: the one data model every part of cl-spoof consumes.

A pandas DataFrame with one row per utterance and the columns
``utt_id, path, label, attack, speaker, split``:

- ``label`` is ``"bonafide"`` or ``"spoof"``;
- ``attack`` is ``"-"`` for bona fide rows, else the attack (system) id;
- ``split`` is ``"train"``, ``"dev"`` or ``"eval"``.

Readers (ASVspoof protocols, CSV manifests) produce it, :mod:`cl_spoof.data.checks`
validates it, the benchmark consumes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

COLUMNS: tuple[str, ...] = ("utt_id", "path", "label", "attack", "speaker", "split")
BONAFIDE = "bonafide"
SPOOF = "spoof"
LABELS: tuple[str, ...] = (BONAFIDE, SPOOF)
NO_ATTACK = "-"
SPLITS: tuple[str, ...] = ("train", "dev", "eval")


def make_table(rows: Iterable[Mapping[str, object]] | pd.DataFrame) -> pd.DataFrame:
    """Build an utterance table with exactly :data:`COLUMNS`, all as strings."""
    df = pd.DataFrame(rows if isinstance(rows, pd.DataFrame) else list(rows))
    if df.empty and not len(df.columns):
        df = pd.DataFrame(columns=list(COLUMNS))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"utterance table lacks columns {missing}")
    df = df.loc[:, list(COLUMNS)].copy()
    for col in COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    return df.reset_index(drop=True)


def counts_table(table: pd.DataFrame) -> pd.DataFrame:
    """Counts per split x attack x label, in split order, for display."""
    counts = (
        table.groupby(["split", "attack", "label"], sort=False)
        .size()
        .rename("count")
        .reset_index()
    )
    order = {s: i for i, s in enumerate(SPLITS)}
    counts["_order"] = counts["split"].map(order).fillna(len(order))
    counts = counts.sort_values(["_order", "label", "attack"]).drop(columns="_order")
    return counts.reset_index(drop=True)
