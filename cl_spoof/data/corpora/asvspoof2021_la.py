"""ASVspoof 2021 LA evaluation data with the full keys and meta-labels.

Layout (github.com/asvspoof-challenge/2021, ``eval-package/README.md`` and
``config.py``; Zenodo record 4837263 for the audio)::

    <root>/ASVspoof2021_LA_eval/flac/LA_E_*.flac
    <root>/keys/LA/CM/trial_metadata.txt        (or LA-keys-full/keys/LA/CM/...)

Key lines: ``SPEAKER TRIAL CODEC TRANSMISSION ATTACK KEY TRIM SUBSET``, e.g.
``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval``. Codec
(none/alaw/pstn/g722/ulaw/gsm/opus = LA-C1..C7), transmission
(ita_tx/sin_tx/loc_tx/mad_tx), trim and subset (eval/progress/hidden) are kept
as extra columns ``codec, transmission, trim, subset``. Attacks are A07-A19,
``-`` for bona fide. Every row is split ``eval`` (the corpus is evaluation
data only) unless ``fractions`` asks for a seeded speaker-disjoint re-split.

Options: ``keys`` (path to trial_metadata.txt elsewhere), ``subsets`` (keep only
these of eval/progress/hidden), ``fractions``/``seed`` (re-split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora import _asvspoof2021 as _impl
from cl_spoof.data.corpora._common import DEFAULT_SEED

NAME = "asvspoof2021_la"
ORDER = 20  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("ASVspoof 2021 LA: ASVspoof2021_LA_eval/flac/ + keys/LA/CM/trial_metadata.txt"
          " (from LA-keys-full.tar.gz)")
TRACK = _impl.Track(
    name=NAME, track="LA",
    columns=("speaker", "trial", "codec", "transmission", "attack", "key", "trim", "subset"),
    extra=("codec", "transmission", "trim", "subset"),
)


def detect(root: Path) -> bool:
    """True when the LA eval audio folder or the LA key file is there."""
    return _impl.detect(TRACK, Path(root))


def missing(root: Path, keys: Path | None = None) -> list[str]:
    """Absent parts of the layout (key file, audio folder)."""
    return _impl.missing(TRACK, Path(root), keys)


def read(root: Path, *, keys: Path | None = None, subsets: Sequence[str] | None = None,
         fractions: Mapping[str, float] | None = None, seed: int = DEFAULT_SEED
         ) -> pd.DataFrame:
    """The utterance table (split ``eval`` unless ``fractions`` is given)."""
    return _impl.read(TRACK, root, keys=keys, subsets=subsets, fractions=fractions, seed=seed)
