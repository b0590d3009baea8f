"""Reader of ASVspoof 2019 LA (a corpus of the registry :data:`cl_spoof.data.corpora.READERS`).

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

from cl_spoof.data.corpora._common import missing_error
from cl_spoof.data.table import LABELS, make_table
from cl_spoof.errors import ConfigError, DataError

NAME = "asvspoof2019_la"
ORDER = 10  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("ASVspoof 2019 LA: ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.*.txt"
          " + ASVspoof2019_LA_{train,dev,eval}/flac/")

PROTOCOL_DIR = "ASVspoof2019_LA_cm_protocols"
PROTOCOL_FILES: dict[str, str] = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}


def audio_dir(root: Path, split: str) -> Path:
    """Folder holding the FLAC files of ``split``."""
    return root / f"ASVspoof2019_LA_{split}" / "flac"


def parse_protocol(path: Path, split: str, audio_root: Path) -> list[dict[str, str]]:
    """Parse one CM protocol file into table rows.

    Raises :class:`DataError` with the file and line number of a malformed line.
    """
    rows: list[dict[str, str]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read protocol ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text protocol file") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 5:
            raise DataError(
                f"{path}:{lineno}: expected 5 fields 'SPEAKER_ID AUDIO_FILE_NAME - SYSTEM_ID KEY',"
                f" got {len(fields)}: {line.strip()!r}"
            )
        speaker, utt, _, system, key = fields
        if key not in LABELS:
            raise DataError(f"{path}:{lineno}: unknown key {key!r} (expected one of {LABELS})")
        rows.append(
            {
                "utt_id": utt,
                "path": str(audio_root / f"{utt}.flac"),
                "label": key,
                "attack": system,
                "speaker": speaker,
                "split": split,
            }
        )
    return rows


def read_asvspoof2019_la(root: str | Path, splits: tuple[str, ...] = ("train", "dev", "eval")
                         ) -> pd.DataFrame:
    """Read the CM protocols of an LA root into one utterance table.

    The SYSTEM_ID column becomes ``attack`` unchanged (``-`` for bona fide), so a
    bona fide line that names a system is reported by
    :func:`cl_spoof.data.checks.check_table` rather than silently fixed.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    proto_dir = root / PROTOCOL_DIR
    if not proto_dir.is_dir():
        raise DataError(
            f"{root}: no {PROTOCOL_DIR}/ folder, so this is not an ASVspoof 2019 LA root"
        )
    rows: list[dict[str, str]] = []
    for split in splits:
        proto = proto_dir / PROTOCOL_FILES[split]
        if not proto.is_file():
            raise DataError(f"{proto}: protocol file missing")
        rows.extend(parse_protocol(proto, split, audio_dir(root, split)))
    return make_table(rows)


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
