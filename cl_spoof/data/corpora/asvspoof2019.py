"""ASVspoof 2019 LA in the corpus registry (a thin adapter over :mod:`cl_spoof.data.asvspoof`).

Layout (the organisers' LA.zip, README.LA.txt of the ASVspoof 2019 database,
https://datashare.ed.ac.uk/handle/10283/3336): ``ASVspoof2019_LA_cm_protocols/``
with ``ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt`` (lines
``SPEAKER_ID AUDIO_FILE_NAME - SYSTEM_ID KEY``) and the audio in
``ASVspoof2019_LA_{train,dev,eval}/flac/``. Splits, speakers and attacks are the
published ones; there are no extra columns.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cl_spoof.data.asvspoof import PROTOCOL_DIR, PROTOCOL_FILES, audio_dir, read_asvspoof2019_la
from cl_spoof.data.corpora._common import missing_error
from cl_spoof.errors import ConfigError

NAME = "asvspoof2019_la"
ORDER = 10  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("ASVspoof 2019 LA: ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.*.txt"
          " + ASVspoof2019_LA_{train,dev,eval}/flac/")


def detect(root: Path) -> bool:
    """True when the protocol folder or one of the audio folders is there."""
    root = Path(root)
    return (root / PROTOCOL_DIR).is_dir() or any(
        (root / f"ASVspoof2019_LA_{s}").is_dir() for s in PROTOCOL_FILES)


def missing(root: Path) -> list[str]:
    """Parts of the layout that are absent (protocols, or every audio folder)."""
    root = Path(root)
    out: list[str] = []
    proto = root / PROTOCOL_DIR
    if not proto.is_dir():
        out.append(f"{PROTOCOL_DIR}/ (the CM protocols)")
    else:
        out += [f"{PROTOCOL_DIR}/{f}" for f in PROTOCOL_FILES.values()
                if not (proto / f).is_file()]
    if not any(audio_dir(root, s).is_dir() for s in PROTOCOL_FILES):
        out.append("ASVspoof2019_LA_{train,dev,eval}/flac/ (the audio)")
    return out


def read(root: Path, splits: tuple[str, ...] = ("train", "dev", "eval")) -> pd.DataFrame:
    """The utterance table of an LA root (see :func:`read_asvspoof2019_la`)."""
    root = Path(root).expanduser()
    bad = [s for s in splits if s not in PROTOCOL_FILES]
    if bad or isinstance(splits, str):
        raise ConfigError(f"splits: expected a list of {', '.join(PROTOCOL_FILES)}, got"
                          f" {splits!r}")
    gaps = missing(root)
    if gaps:
        raise missing_error(NAME, root, gaps)
    return read_asvspoof2019_la(root, splits=tuple(splits))
