"""Helpers shared by the corpus readers: text files, audio folders, seeded splits.

Readers build the utterance table from the publishers' metadata (protocols,
keys, ``meta.csv``) wherever a corpus has it, so a partial download yields rows
whose files are missing; :func:`cl_spoof.data.checks.check_table` reports them
(or drops them with ``allow_missing``). What a reader refuses itself is a
layout that cannot be right: a metadata file without its audio folder (or the
reverse), a malformed line, or a key file none of whose trials is in the audio
folder next to it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cl_spoof.data.table import SPLITS
from cl_spoof.errors import ConfigError, DataError

#: Fractions used when a corpus publishes no split (In-the-Wild, WaveFake) or
#: when a user asks to re-split an evaluation-only corpus.
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "dev": 0.1, "eval": 0.2}
#: Seed of the default split; the same seed and groups always give the same split.
DEFAULT_SEED = 0

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg")


def read_text_lines(path: Path, what: str) -> list[str]:
    """Lines of a text metadata file; :class:`DataError` naming ``path`` if unreadable."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text {what}") from exc


def fields_of(path: Path, lineno: int, line: str, n: int, layout: str) -> list[str]:
    """Whitespace-separated fields of a protocol line, exactly ``n`` of them."""
    fields = line.split()
    if len(fields) != n:
        raise DataError(f"{path}:{lineno}: expected {n} fields '{layout}', got {len(fields)}:"
                        f" {line.strip()!r}")
    return fields


def parse_table(path: Path, columns: Sequence[str], layout: str, what: str
                ) -> tuple[pd.DataFrame, list[int]]:
    """Whitespace-separated lines with exactly ``len(columns)`` fields, as a string frame.

    Returns the frame and the line number of each row, so later checks can name
    the file and line of a bad value.
    """
    records: list[list[str]] = []
    linenos: list[int] = []
    n = len(columns)
    for lineno, line in enumerate(read_text_lines(path, what), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != n:
            fields_of(path, lineno, line, n, layout)  # raises with file and line
        records.append(fields)
        linenos.append(lineno)
    return pd.DataFrame(records, columns=list(columns), dtype=str), linenos


def first_bad(mask: pd.Series) -> int | None:
    """Position of the first ``True`` in ``mask``, else ``None``."""
    hits = np.flatnonzero(mask.to_numpy())
    return int(hits[0]) if hits.size else None


def first_existing(candidates: Iterable[Path]) -> Path | None:
    """The first of ``candidates`` that exists, else ``None``."""
    for c in candidates:
        if c.exists():
            return c
    return None


def scan_audio(folders: Sequence[Path], extensions: Sequence[str] = AUDIO_EXTENSIONS
               ) -> dict[str, str]:
    """Map file stem -> file path for the audio files directly in ``folders`` (names only).

    Uses ``os.scandir`` so a folder of 600k files is listed in seconds without
    opening any file. The first folder holding a stem wins.
    """
    exts = tuple(e.lower() for e in extensions)
    found: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                dot = name.rfind(".")
                if dot > 0 and name[dot:].lower() in exts and entry.is_file():
                    found.setdefault(name[:dot], os.path.join(folder, name))
    return found


def check_keys_match_audio(key_file: Path, ids: Sequence[str], found: Mapping[str, str],
                           audio_desc: str) -> None:
    """Refuse a key/protocol file none of whose trials is among the audio files found.

    Some overlap means a partial download (the absent files are reported by the
    data check); audio present but no overlap at all means the key file belongs
    to another corpus or partition.
    """
    if not found or not ids:
        return
    if not found.keys().isdisjoint(ids):
        return
    example_key = ids[0]
    example_audio = next(iter(found))
    raise DataError(
        f"{key_file}: does not match the audio in {audio_desc}: none of its {len(ids)} trials"
        f" (e.g. {example_key}) is there, which holds {len(found)} other files (e.g."
        f" {example_audio}); use the key file of this corpus/partition"
    )


def check_fractions(fractions: Mapping[str, float], option: str = "fractions") -> dict[str, float]:
    """Validate split fractions (subset of train/dev/eval, non-negative, sum 1)."""
    if not isinstance(fractions, Mapping) or not fractions:
        raise ConfigError(f"{option}: expected a mapping like {DEFAULT_FRACTIONS}, got"
                          f" {fractions!r}")
    bad = [k for k in fractions if k not in SPLITS]
    if bad:
        raise ConfigError(f"{option}: unknown split(s) {bad}; use {', '.join(SPLITS)}")
    out: dict[str, float] = {}
    for k in SPLITS:
        if k not in fractions:
            continue
        try:
            v = float(fractions[k])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{option}.{k}: expected a number, got {fractions[k]!r}") from exc
        if not v >= 0.0:
            raise ConfigError(f"{option}.{k}: must be >= 0, got {fractions[k]!r}")
        out[k] = v
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"{option}: fractions must sum to 1, got {total:g} ({out})")
    return out


def grouped_split(groups: Sequence[str], fractions: Mapping[str, float] | None = None,
                  seed: int = DEFAULT_SEED) -> list[str]:
    """Assign each row a split so that rows of one group share a split.

    The distinct groups are sorted, shuffled with ``numpy.random.default_rng(seed)``
    and laid end to end, each as long as its number of rows; a group goes to the
    split whose share of the rows (``fractions``, in train/dev/eval order) its
    midpoint falls in. The result depends only on the groups, their sizes and the
    seed, never on row order; fractions are met up to the size of one group.
    """
    fr = check_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    counts = Counter(groups)
    names = sorted(counts)
    order = np.random.default_rng(seed).permutation(len(names))
    total = float(len(groups))
    bounds: list[tuple[float, str]] = []
    acc = 0.0
    for split, f in fr.items():
        acc += f * total
        bounds.append((acc, split))
    assigned: dict[str, str] = {}
    cum = 0.0
    for idx in order:
        g = names[idx]
        mid = cum + counts[g] / 2.0
        cum += counts[g]
        split = next((s for b, s in bounds if mid < b), bounds[-1][1])
        assigned[g] = split
    return [assigned[g] for g in groups]


def safe_id(text: str) -> str:
    """``text`` with whitespace replaced by ``_`` (utt ids go into whitespace-separated files)."""
    return "_".join(text.split()) if any(c.isspace() for c in text) else text


def require_unique(ids: Sequence[str], where: Path) -> None:
    """Refuse duplicate utt ids (they would collide in score files)."""
    dup = [k for k, n in Counter(ids).items() if n > 1]
    if dup:
        raise DataError(f"{where}: {len(dup)} utterance id(s) occur more than once (e.g."
                        f" {dup[0]!r}); each trial must be listed once")


def missing_error(name: str, root: Path, missing: Sequence[str]) -> DataError:
    """The error for a half-present layout: what was found and what is missing."""
    return DataError(f"{root}: looks like a {name} layout but is incomplete; missing: "
                     + "; ".join(missing))
