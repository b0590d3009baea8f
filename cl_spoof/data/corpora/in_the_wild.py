"""In-the-Wild (Müller et al., "Does Audio Deepfake Detection Generalize?", Interspeech 2022).

Layout (the published ``release_in_the_wild`` archive, deepfake-total.com/in_the_wild)::

    <root>/release_in_the_wild/meta.csv   (or <root> is release_in_the_wild itself)
    <root>/release_in_the_wild/0.wav ... 31778.wav

``meta.csv`` has the header ``file,speaker,label`` with ``file`` the wav name
(e.g. ``0.wav``), ``speaker`` the public figure (e.g. ``Alec Guinness``) and
``label`` either ``bona-fide`` or ``spoof``.

How the table is filled where the corpus is silent:

- ``attack``: the corpus does not say which system made a fake, so every spoof
  row gets one attack, ``in_the_wild`` (``attack=`` overrides it);
- ``split``: none is published, so rows get a seeded split grouped by speaker
  (speaker-disjoint train/dev/eval, default fractions 0.7/0.1/0.2 of the rows,
  seed 0, see :func:`cl_spoof.data.corpora._common.grouped_split`); pass
  ``fractions={"eval": 1.0}`` to use the whole corpus as a test set;
- ``utt_id``: the wav name without ``.wav`` (``"0"``, ``"1"``, ...).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora._common import (
    DEFAULT_SEED,
    check_keys_match_audio,
    grouped_split,
    missing_error,
    read_text_lines,
    require_unique,
    scan_audio,
)
from cl_spoof.data.table import make_table
from cl_spoof.errors import DataError
from cl_spoof.labels import NO_ATTACK

NAME = "in_the_wild"
ORDER = 50  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("In-the-Wild: release_in_the_wild/meta.csv (file,speaker,label)"
          " + release_in_the_wild/*.wav")
FOLDER = "release_in_the_wild"
HEADER: tuple[str, ...] = ("file", "speaker", "label")
LABEL_MAP: dict[str, str] = {"bona-fide": "bonafide", "spoof": "spoof"}


def corpus_dir(root: Path) -> Path:
    """The folder that holds meta.csv and the wavs."""
    root = Path(root)
    return root / FOLDER if (root / FOLDER).is_dir() else root


def detect(root: Path) -> bool:
    """True for a ``release_in_the_wild`` folder (or a root holding one)."""
    root = Path(root)
    return (root / FOLDER).is_dir() or (root.name == FOLDER and root.is_dir())


def missing(root: Path) -> list[str]:
    """Absent parts: ``meta.csv`` or every wav."""
    d = corpus_dir(root)
    out = []
    if not (d / "meta.csv").is_file():
        out.append(f"{d / 'meta.csv'} (the labels)")
    if not scan_audio([d], (".wav",)):
        out.append(f"the .wav files in {d}")
    return out


def read(root: Path, *, attack: str = NAME, fractions: Mapping[str, float] | None = None,
         seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The utterance table (speaker-disjoint seeded split; see the module docstring)."""
    root = Path(root).expanduser()
    gaps = missing(root)
    if gaps:
        raise missing_error(NAME, root, gaps)
    d = corpus_dir(root)
    meta = d / "meta.csv"
    lines = read_text_lines(meta, "meta.csv")
    records = list(csv.reader(lines))
    if not records or tuple(c.strip() for c in records[0]) != HEADER:
        got = ",".join(records[0]) if records else "nothing"
        raise DataError(f"{meta}: expected the header {','.join(HEADER)}, got {got!r}")
    rows = []
    for lineno, rec in enumerate(records[1:], start=2):
        if not rec or not "".join(rec).strip():
            continue
        if len(rec) != len(HEADER):
            raise DataError(f"{meta}:{lineno}: expected 3 fields file,speaker,label, got"
                            f" {len(rec)}: {','.join(rec)!r}")
        file, speaker, label = (c.strip() for c in rec)
        if label not in LABEL_MAP:
            raise DataError(f"{meta}:{lineno}: unknown label {label!r} (expected bona-fide or"
                            " spoof)")
        if not file:
            raise DataError(f"{meta}:{lineno}: empty file name")
        key = LABEL_MAP[label]
        rows.append({"utt_id": Path(file).stem, "path": str(d / file), "label": key,
                     "attack": NO_ATTACK if key == "bonafide" else attack,
                     "speaker": speaker, "split": ""})
    ids = [r["utt_id"] for r in rows]
    require_unique(ids, meta)
    check_keys_match_audio(meta, ids, scan_audio([d], (".wav",)), str(d))
    table = make_table(rows)
    table["split"] = grouped_split(table["speaker"].tolist(), fractions, seed)
    return table
