"""ASVspoof 2021 DF (speech deepfake) evaluation data with the full keys and meta-labels.

Layout (github.com/asvspoof-challenge/2021, ``eval-package/README.md`` and
``config.py``; Zenodo record 4835108 for the four audio parts)::

    <root>/ASVspoof2021_DF_eval/flac/DF_E_*.flac      (parts 00-03 unpacked in one place)
    <root>/ASVspoof2021_DF_eval_part0N/ASVspoof2021_DF_eval/flac/   (or one folder per part)
    <root>/keys/DF/CM/trial_metadata.txt             (or DF-keys-full/keys/DF/CM/...)

Key lines (13 fields): ``SPEAKER TRIAL CODEC SOURCE ATTACK KEY TRIM SUBSET
VOCODER TASK TEAM GENDER_PAIR LANGUAGE``, e.g.
``LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -``.
Kept as extra columns: ``codec`` (nocodec, low/high_mp3, low/high_m4a,
low/high_ogg, mp3m4a, oggm4a = DF-C1..C9), ``source_corpus`` (asvspoof,
vcc2018, vcc2020), ``trim``, ``subset``, ``vocoder`` (vocoder family),
``vcc_task``, ``vcc_team``, ``gender_pair``, ``language`` (the last four are
``-`` outside the VCC sources). The attack column is the published attack id
(A07-A19 for the ASVspoof source, VCC team systems otherwise; ``-`` for bona
fide). Every row is split ``eval`` unless ``fractions`` asks for a seeded
speaker-disjoint re-split.

Options: ``keys``, ``subsets``, ``fractions``/``seed`` as for the LA reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora import _asvspoof2021 as _impl
from cl_spoof.data.corpora._common import DEFAULT_SEED

NAME = "asvspoof2021_df"
ORDER = 30  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("ASVspoof 2021 DF: ASVspoof2021_DF_eval/flac/ (or ASVspoof2021_DF_eval_part0N/...)"
          " + keys/DF/CM/trial_metadata.txt (from DF-keys-full.tar.gz)")
TRACK = _impl.Track(
    name=NAME, track="DF",
    columns=("speaker", "trial", "codec", "source_corpus", "attack", "key", "trim", "subset",
             "vocoder", "vcc_task", "vcc_team", "gender_pair", "language"),
    extra=("codec", "source_corpus", "trim", "subset", "vocoder", "vcc_task", "vcc_team",
           "gender_pair", "language"),
)


def detect(root: Path) -> bool:
    """True when the DF eval audio folder (or a part) or the DF key file is there."""
    return _impl.detect(TRACK, Path(root))


def missing(root: Path, keys: Path | None = None) -> list[str]:
    """Absent parts of the layout (key file, audio folder)."""
    return _impl.missing(TRACK, Path(root), keys)


def read(root: Path, *, keys: Path | None = None, subsets: Sequence[str] | None = None,
         fractions: Mapping[str, float] | None = None, seed: int = DEFAULT_SEED
         ) -> pd.DataFrame:
    """The utterance table (split ``eval`` unless ``fractions`` is given)."""
    return _impl.read(TRACK, root, keys=keys, subsets=subsets, fractions=fractions, seed=seed)
