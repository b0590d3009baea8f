"""The utterance table: the one data model every part of cl-spoof consumes.

A pandas DataFrame with one row per utterance and the columns
``utt_id, path, label, attack, speaker, split``:

- ``label`` is ``"bonafide"`` or ``"spoof"``;
- ``attack`` is ``"-"`` for bona fide rows, else the attack (system) id;
- ``split`` is ``"train"``, ``"dev"`` or ``"eval"``.

Readers (ASVspoof protocols, CSV manifests) produce it, :mod:`cl_spoof.data.checks`
validates it, the benchmark consumes it. A reader may keep extra metadata
(codec, transmission, source corpus, subset, ...) as further string columns
after the six (``make_table(rows, extra=...)``); code that needs only the six
selects them by name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from cl_spoof.errors import ConfigError

COLUMNS: tuple[str, ...] = ("utt_id", "path", "label", "attack", "speaker", "split")
BONAFIDE = "bonafide"
SPOOF = "spoof"
LABELS: tuple[str, ...] = (BONAFIDE, SPOOF)
SPLITS: tuple[str, ...] = ("train", "dev", "eval")


def make_table(rows: Iterable[Mapping[str, object]] | pd.DataFrame,
               extra: Sequence[str] | Literal["all"] = ()) -> pd.DataFrame:
    """Build an utterance table with :data:`COLUMNS`, all as strings.

    By default only the six columns are kept (other columns are dropped).
    ``extra`` names further columns to keep after them, in that order, or is
    ``"all"`` to keep every other column in its current order (e.g. when
    concatenating tables of several corpora); empty cells become ``""``.
    """
    df = pd.DataFrame(rows if isinstance(rows, pd.DataFrame) else list(rows))
    if df.empty and not len(df.columns):
        df = pd.DataFrame(columns=list(COLUMNS))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"utterance table lacks columns {missing}")
    if isinstance(extra, str):
        if extra != "all":
            raise ValueError(f"extra must be a sequence of column names or 'all', got {extra!r}")
        extra_cols = [c for c in df.columns if c not in COLUMNS]
    else:
        extra_cols = [c for c in extra if c not in COLUMNS]
        absent = [c for c in extra_cols if c not in df.columns]
        if absent:
            raise ValueError(f"utterance table lacks extra columns {absent}")
    cols = list(COLUMNS) + extra_cols
    df = df.loc[:, cols].copy()
    for col in cols:
        df[col] = df[col].fillna("").astype(str)
    return df.reset_index(drop=True)


def extra_columns(table: pd.DataFrame) -> list[str]:
    """Names of the columns of ``table`` beyond the six of :data:`COLUMNS`."""
    return [c for c in table.columns if c not in COLUMNS]


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


def utterance_groups(table: pd.DataFrame, matched_by: str) -> pd.Series:
    """The sub-corpus of every row (``metrics.matched_by``), for the matched EER.

    ``matched_by`` names a column of the table (``source`` with ``data.sources``, or
    a metadata column a reader keeps), or is ``"folder"``: the first folder of each
    file's path below the deepest folder all files share (a manifest whose files lie
    in one folder per sub-corpus; files directly in that folder get ``""``).
    Raises :class:`~cl_spoof.errors.ConfigError` for a column the table lacks.
    """
    if matched_by != "folder":
        if matched_by not in table.columns:
            raise ConfigError(f"metrics.matched_by: the utterance table has no column "
                              f"{matched_by!r}; use 'folder' or one of "
                              f"{', '.join(table.columns)}")
        return table[matched_by].astype(str).reset_index(drop=True)
    paths = [os.path.abspath(p) for p in table["path"]]
    if not paths:
        return pd.Series([], dtype=str)
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    parts = [Path(os.path.relpath(p, root)).parts for p in paths]
    return pd.Series([q[0] if len(q) > 1 else "" for q in parts], dtype=str)


def data_record(table: pd.DataFrame, identities: Sequence[str]) -> dict:
    """What a run was started on, to check a resume against (:func:`data_differences`).

    ``identities``: one string per row saying what its file holds (e.g. its size and a
    checksum of the decoded samples). The record has the SHA-256 of every row's
    ``utt_id``, ``path``, ``label``, ``attack``, ``speaker``, ``split`` and identity, in
    order, and per ``split/attack/label`` group its count and digests of its rows and of
    its files' identities (in any order), so a difference can be named.
    """
    if len(identities) != len(table):
        raise ValueError(f"{len(identities)} identities for {len(table)} rows")
    whole = hashlib.sha256()
    groups: dict[str, dict] = {}
    rows: dict[str, list[bytes]] = {}
    files: dict[str, list[bytes]] = {}
    for row, identity in zip(table[list(COLUMNS)].itertuples(index=False, name=None),
                             identities, strict=True):
        utt, path, label, attack, speaker, split = (str(v) for v in row)
        fields = json.dumps([utt, path, label, attack, speaker, split]).encode()
        whole.update(fields + b"\n" + identity.encode() + b"\n")
        key = f"{split}/{attack}/{label}"
        rows.setdefault(key, []).append(hashlib.sha256(fields).digest())
        files.setdefault(key, []).append(hashlib.sha256(fields + identity.encode()).digest())
    for key in rows:  # in any order: a change of order alone is told apart
        groups[key] = {"utterances": len(rows[key]),
                       "rows": hashlib.sha256(b"".join(sorted(rows[key]))).hexdigest()[:16],
                       "files": hashlib.sha256(b"".join(sorted(files[key]))).hexdigest()[:16]}
    return {"digest": whole.hexdigest(), "utterances": len(table), "groups": groups}


def data_differences(started: Mapping, now: Mapping) -> list[str]:
    """How the data ``now`` differs from the data a run ``started`` on (two
    :func:`data_record` results), one phrase per ``split/attack/label`` group; empty
    when they are the same."""
    if started.get("digest") == now.get("digest"):
        return []
    before, after = dict(started.get("groups") or {}), dict(now.get("groups") or {})
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is None:
            out.append(f"{key}: {after[key]['utterances']} utterance(s) that were not there")
        elif new is None:
            out.append(f"{key}: its {old['utterances']} utterance(s) are gone")
        elif old.get("utterances") != new["utterances"]:
            out.append(f"{key}: {new['utterances']} utterance(s), {old.get('utterances')} "
                       "at the start")
        elif old.get("rows") != new["rows"]:
            out.append(f"{key}: other utterance ids, paths or speakers")
        elif old.get("files") != new["files"]:
            out.append(f"{key}: files that hold other audio")
    return out or ["the utterances are in another order"]
