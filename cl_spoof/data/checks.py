"""Validation of an utterance table and its audio.

:func:`check_table` finds every problem at once (metadata and, optionally,
audio content) so a user fixes a download in one pass. Training calls the same
functions and refuses to start on bad data: rows are never dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cl_spoof.data.audio import read_audio, waveform_problem
from cl_spoof.data.table import BONAFIDE, LABELS, SPLITS
from cl_spoof.errors import DataError
from cl_spoof.infra.files import not_a_regular_file
from cl_spoof.infra.names import BadNameError, check_name
from cl_spoof.labels import NO_ATTACK

MAX_LISTED = 50  # problems shown in an error message before "... and N more"


@dataclass(frozen=True)
class Problem:
    """One problem with one row (or file) of the table."""

    where: str  # the file (or utt id when the file is not the issue)
    kind: str  # short category, e.g. "missing", "unreadable", "duplicate utt_id"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


MISSING = "listed but missing"


@dataclass
class CheckReport:
    """Outcome of a check: the (possibly restricted) table and its problems.

    ``missing_by_split`` counts, per split, the listed files that are absent and the
    rows; ``splits_read`` are the splits the caller reads (None: every split), whose
    missing files alone are problems.
    """

    table: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    dropped_missing: int = 0  # rows dropped by allow_missing (files absent)
    missing_by_split: dict[str, tuple[int, int]] = field(default_factory=dict)
    splits_read: frozenset[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def missing_text(self, hint: bool = True) -> str | None:
        """``missing files by split: train 0 of 120, eval 80 of 80 (not read)`` and (with
        ``hint``) what to do, when files are missing (None otherwise)."""
        if not any(n for n, _ in self.missing_by_split.values()):
            return None
        parts = []
        for split, (n, total) in self.missing_by_split.items():
            unread = self.splits_read is not None and split not in self.splits_read
            parts.append(f"{split} {n:,} of {total:,}" + (" (not read)" if unread else ""))
        read = ("" if self.splits_read is None else
                f"; the config reads {', '.join(sorted(self.splits_read))}")
        text = f"missing files by split: {', '.join(parts)}{read}"
        return text + ("; a partial download? --allow-missing (data.allow_missing: true) "
                       "uses the files present" if hint else "")

    def summary(self, source: str | Path) -> str:
        """Human-readable list of problems (capped at :data:`MAX_LISTED`)."""
        lines = [f"{source}: {len(self.problems)} problem(s) in the data:"]
        lines += [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        kinds = pd.Series([p.kind for p in self.problems]).value_counts()
        lines.append("  by kind: " + ", ".join(f"{k}: {v}" for k, v in kinds.items()))
        missing = self.missing_text()
        if missing is not None and any(p.kind == MISSING for p in self.problems):
            lines.append(f"  {missing}")
        return "\n".join(lines)

    def raise_if_problems(self, source: str | Path) -> None:
        """Raise :class:`DataError` listing every problem, if there is any."""
        if self.problems:
            raise DataError(self.summary(source))


def metadata_problems(table: pd.DataFrame) -> list[Problem]:
    """Problems visible without opening audio: labels, splits, ids, attack column."""
    problems: list[Problem] = []
    for row in table.itertuples(index=False):
        where = row.path or row.utt_id
        if row.label not in LABELS:
            problems.append(Problem(where, "unknown label", f"{row.label!r}, expected one of "
                                    f"{', '.join(LABELS)}"))
        elif row.label == BONAFIDE and row.attack not in ("", NO_ATTACK):
            problems.append(Problem(where, "attack set on a bona fide row", row.attack))
        elif row.label != BONAFIDE and row.attack in ("", NO_ATTACK):
            problems.append(Problem(where, "spoof row without attack"))
        if row.split not in SPLITS:
            problems.append(Problem(where, "unknown split", f"{row.split!r}, expected one of "
                                    f"{', '.join(SPLITS)}"))
        if not row.utt_id:
            problems.append(Problem(where, "empty utt_id"))
    problems += attack_name_problems(table)
    dup = table["utt_id"][table["utt_id"].duplicated(keep=False)]
    for utt, group in table.loc[dup.index].groupby("utt_id", sort=False):
        paths = ", ".join(group["path"].tolist()[:3])
        problems.append(Problem(str(utt), "duplicate utt_id", f"{len(group)} rows: {paths}"))
    return problems


SHARED_SPEAKER = "speaker in train of one source and test of another"


def cross_source_speakers(table: pd.DataFrame, train_split: str,
                          tested: Sequence[str]) -> list[Problem]:
    """One problem per speaker with rows in ``train_split`` of one source and in a
    ``tested`` split of another (column ``source``; a table without it has none).

    The same person on both sides lets a detector learn the voice rather than the
    attack. Speaker ids are compared as the table holds them (after each source's
    ``speaker_map``); ``data.resplit_by_speaker`` draws a split without any.
    """
    if "source" not in table.columns or table["source"].nunique() < 2:
        return []
    speaker = table["speaker"].astype(str).str.strip()
    named = (speaker != "").to_numpy()
    learned = named & (table["split"] == train_split).to_numpy()
    scored = named & table["split"].isin(list(tested)).to_numpy()
    learned_in = table["source"][learned].groupby(speaker[learned]).agg(set)
    tested_in = table["source"][scored].groupby(speaker[scored]).agg(set)
    problems = []
    for s, sources in tested_in.items():
        train = learned_in.get(s, set())
        if not any(a != b for a in train for b in sources):
            continue
        problems.append(Problem(
            f"speaker {s}", SHARED_SPEAKER,
            f"train in {', '.join(sorted(train))}; {'/'.join(tested)} in "
            f"{', '.join(sorted(sources))}"))
    return problems


def attack_name_problems(table: pd.DataFrame) -> list[Problem]:
    """One problem per attack name of the spoof rows that ``run`` would refuse
    (:func:`~cl_spoof.infra.names.check_name`: attack names become columns and file names),
    with its row count."""
    spoof = table.loc[(table["label"] != BONAFIDE) & ~table["attack"].isin(["", NO_ATTACK]),
                      "attack"]
    problems = []
    for name, count in spoof.value_counts(sort=False).items():
        try:
            check_name(name)
        except BadNameError as exc:
            problems.append(Problem(str(name), "bad attack name", f"{count} row(s): {exc}"))
    return problems


def missing_mask(table: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows whose audio file does not exist (a dangling link included; a
    folder, FIFO or device under the name exists, and is named by :func:`audio_problem`)."""
    return ~table["path"].map(os.path.exists)


def _missing_problem(path: str) -> Problem:
    """A listed file that is not there: a dangling link says where it leads."""
    what = not_a_regular_file(path)
    detail = what if what is not None and what != "file not found" else ""
    return Problem(path, MISSING, detail)


def audio_problem(path: str | Path) -> str | None:
    """Decode one file and describe its problem, or ``None`` when it is usable."""
    try:
        wave = read_audio(path)
    except DataError as exc:
        # read_audio's message starts with the path; keep only the problem.
        msg = str(exc)
        prefix = f"{Path(path)}: "
        return msg[len(prefix):] if msg.startswith(prefix) else msg
    return waveform_problem(wave)


def missing_by_split(table: pd.DataFrame, missing: pd.Series) -> dict[str, tuple[int, int]]:
    """``split -> (files missing, rows)``, splits in table order."""
    out: dict[str, tuple[int, int]] = {}
    for split in pd.unique(table["split"]):
        rows = (table["split"] == split).to_numpy()
        out[str(split)] = (int(missing.to_numpy()[rows].sum()), int(rows.sum()))
    return out


def check_table(
    table: pd.DataFrame,
    allow_missing: bool = False,
    check_audio: bool = True,
    progress: Callable[[int, int], None] | None = None,
    splits_read: frozenset[str] | None = None,
) -> CheckReport:
    """Validate ``table``: metadata, missing files and (optionally) audio content.

    With ``allow_missing`` rows whose file is absent are dropped from the
    returned table and counted in ``dropped_missing`` instead of being problems
    (a partial download). Every other problem is reported, never dropped.
    ``splits_read`` (None: all) are the splits the caller will read: an absent file
    of another split is no problem (its row stays in the table, never opened), so a
    train+dev copy serves a config that never reads eval.
    """
    problems = metadata_problems(table)
    missing = missing_mask(table)
    by_split = missing_by_split(table, missing)
    dropped = 0
    if allow_missing:
        dropped = int(missing.sum())
        table = table.loc[~missing].reset_index(drop=True)
    else:
        counted = missing if splits_read is None else (
            missing & table["split"].isin(list(splits_read)))
        problems += [_missing_problem(p) for p in table.loc[counted, "path"]]
        table_present = table.loc[~missing]
    present = table if allow_missing else table_present
    if check_audio:
        paths = present["path"].tolist()
        for i, path in enumerate(paths):
            issue = audio_problem(path)
            if issue is not None:
                problems.append(Problem(path, issue))
            if progress is not None:
                progress(i + 1, len(paths))
    return CheckReport(table=table.reset_index(drop=True), problems=problems,
                       dropped_missing=dropped, missing_by_split=by_split,
                       splits_read=splits_read)
