"""Shared reader of the ASVspoof 2021 LA and DF evaluation data with the full keys.

Sources: the organisers' evaluation package README
(github.com/asvspoof-challenge/2021, ``eval-package/README.md``, "On meta-labels")
and ``eval-package/config.py`` (column names used to load the keys), and
``download.sh`` there: ``tar -xzf LA-keys-full.tar.gz`` gives
``keys/LA/CM/trial_metadata.txt`` (likewise DF). The audio archives on Zenodo
unpack to ``ASVspoof2021_LA_eval/flac/*.flac`` and, for DF, four parts
``ASVspoof2021_DF_eval_part0{0..3}.tar.gz`` that each unpack to
``ASVspoof2021_DF_eval/flac/`` (merged when unpacked in one place; when each was
unpacked into its own ``ASVspoof2021_DF_eval_part0N/`` folder, those are read too).

Both corpora are published as evaluation data only: every row gets split
``eval`` unless ``fractions`` asks for a seeded speaker-disjoint re-split
(:func:`cl_spoof.data.corpora._common.grouped_split`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora._common import (
    DEFAULT_SEED,
    check_keys_match_audio,
    first_bad,
    first_existing,
    grouped_split,
    missing_error,
    parse_table,
    require_unique,
    scan_audio,
)
from cl_spoof.data.table import LABELS, make_table
from cl_spoof.errors import ConfigError, DataError

SUBSETS: tuple[str, ...] = ("eval", "progress", "hidden")


@dataclass(frozen=True)
class Track:
    """What differs between the LA and DF layouts."""

    name: str  # registry name
    track: str  # "LA" / "DF"
    columns: tuple[str, ...]  # key-file columns, in file order
    extra: tuple[str, ...]  # of those, the ones kept as extra table columns

    @property
    def audio_dir(self) -> str:
        return f"ASVspoof2021_{self.track}_eval"

    @property
    def layout_line(self) -> str:
        return " ".join(c.upper() for c in self.columns)

    def key_candidates(self, root: Path) -> list[Path]:
        rel = Path("keys") / self.track / "CM" / "trial_metadata.txt"
        return [root / rel, root / f"{self.track}-keys-full" / rel]

    def audio_folders(self, root: Path) -> list[Path]:
        folders = [root / self.audio_dir / "flac"]
        folders += sorted(root.glob(f"{self.audio_dir}_part*/{self.audio_dir}/flac"))
        return folders


def detect(t: Track, root: Path) -> bool:
    """True when the eval audio folder (or a part of it) or the key file is there."""
    root = Path(root)
    return (root / t.audio_dir).is_dir() or any(root.glob(f"{t.audio_dir}_part*")) or (
        first_existing(t.key_candidates(root)) is not None)


def missing(t: Track, root: Path, keys: Path | None = None) -> list[str]:
    """Absent parts: the key file or the audio folder."""
    root = Path(root)
    out = []
    key = Path(keys) if keys is not None else first_existing(t.key_candidates(root))
    if key is None or not key.is_file():
        where = keys if keys is not None else " or ".join(
            str(p.relative_to(root)) for p in t.key_candidates(root))
        out.append(f"the key file {where} (unpack {t.track}-keys-full.tar.gz from"
                   " asvspoof.org/index2021.html here)")
    if not any(f.is_dir() for f in t.audio_folders(root)):
        out.append(f"{t.audio_dir}/flac/ (the evaluation audio)")
    return out


def read(t: Track, root: Path, *, keys: Path | None = None,
         subsets: Sequence[str] | None = None, fractions: Mapping[str, float] | None = None,
         seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Utterance table of the 2021 evaluation data of track ``t``."""
    root = Path(root).expanduser()
    gaps = missing(t, root, keys)
    if gaps:
        raise missing_error(t.name, root, gaps)
    key_file = Path(keys) if keys is not None else first_existing(t.key_candidates(root))
    assert key_file is not None
    if subsets is not None:
        unknown = [s for s in subsets if s not in SUBSETS]
        if unknown:
            raise ConfigError(f"subsets: unknown subset(s) {unknown}; use {', '.join(SUBSETS)}")
    df, linenos = parse_table(key_file, t.columns, t.layout_line, "key file")
    bad = first_bad(~df["key"].isin(LABELS))
    if bad is not None:
        raise DataError(f"{key_file}:{linenos[bad]}: unknown key {df['key'][bad]!r} (expected"
                        f" one of {LABELS})")
    prefix = f"{t.track}_E_"
    bad = first_bad(~df["trial"].str.startswith(prefix))
    if bad is not None:
        raise DataError(f"{key_file}:{linenos[bad]}: trial {df['trial'][bad]!r} is not an"
                        f" ASVspoof 2021 {t.track} trial ({prefix}*); is this the key file of"
                        " another track?")
    if subsets is not None:
        df = df[df["subset"].isin(list(subsets))].reset_index(drop=True)
    ids = df["trial"].tolist()
    require_unique(ids, key_file)
    folders = t.audio_folders(root)
    found = scan_audio(folders, (".flac",))
    check_keys_match_audio(key_file, ids, found, f"{root / t.audio_dir}/flac")
    primary = os.path.join(folders[0], "")
    table = pd.DataFrame({
        "utt_id": df["trial"],
        "path": [found.get(i) or f"{primary}{i}.flac" for i in ids],
        "label": df["key"],
        "attack": df["attack"],
        "speaker": df["speaker"],
        "split": "eval",
    })
    for c in t.extra:
        table[c] = df[c]
    table = make_table(table, extra=t.extra)
    if fractions is not None:
        table["split"] = grouped_split(table["speaker"].tolist(), fractions, seed)
    return table

