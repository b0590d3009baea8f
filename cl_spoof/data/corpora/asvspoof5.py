"""ASVspoof 5 (Track 1 protocols) with the published train/dev/eval partitions.

Layout (README.txt of the database, Zenodo record 14498691, mirrored at
huggingface.co/datasets/jungjee/asvspoof5): unpacking ``flac_T_a?.tar`` creates
``flac_T/``, ``flac_D_a?.tar`` creates ``flac_D/``, ``flac_E_a?.tar`` creates
``flac_E_eval/``; ``ASVspoof5_protocols.tar.gz`` holds ``ASVspoof5.train.tsv``,
``ASVspoof5.dev.track_1.tsv`` and ``ASVspoof5.eval.track_1.tsv`` (found directly
in the root or in ``ASVspoof5_protocols/``)::

    <root>/flac_T/T_0000000000.flac   <root>/flac_D/...   <root>/flac_E_eval/...
    <root>/ASVspoof5.train.tsv  (or <root>/ASVspoof5_protocols/ASVspoof5.train.tsv)

Protocol lines are whitespace-separated (despite ``.tsv``) with 10 fields
``SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG
ATTACK_LABEL KEY TMP``, e.g. ``T_4850 T_0000000000 F - - - AC3 A05 spoof -`` and
``T_3734 T_0000000011 F - - - - bonafide bonafide -`` (field names as in the
README; codec/quality/seed are ``-`` in train/dev, ``C01..C11``/``0..8``/source
trial in eval). ``ATTACK_LABEL`` (A01-A32) becomes ``attack`` (``-`` for bona
fide); gender, codec, codec_q, codec_seed and attack_tag (AC1-AC3, the attack
condition) are kept as extra columns; TMP is a placeholder and is dropped.

By default every partition whose audio folder is present is read (so a download
without the 85 GB of eval audio works); ``splits=`` names them explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora._common import (
    check_keys_match_audio,
    first_bad,
    first_existing,
    missing_error,
    parse_table,
    require_unique,
    scan_audio,
)
from cl_spoof.data.table import LABELS, SPLITS, make_table
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.labels import NO_ATTACK

NAME = "asvspoof5"
ORDER = 40  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("ASVspoof 5: ASVspoof5.{train,dev.track_1,eval.track_1}.tsv (in the root or"
          " ASVspoof5_protocols/) + flac_T/, flac_D/, flac_E_eval/")

PROTOCOL_DIR = "ASVspoof5_protocols"
PROTOCOLS: dict[str, str] = {
    "train": "ASVspoof5.train.tsv",
    "dev": "ASVspoof5.dev.track_1.tsv",
    "eval": "ASVspoof5.eval.track_1.tsv",
}
AUDIO: dict[str, str] = {"train": "flac_T", "dev": "flac_D", "eval": "flac_E_eval"}
ID_PREFIX: dict[str, str] = {"train": "T_", "dev": "D_", "eval": "E_"}
FIELDS: tuple[str, ...] = ("speaker", "file", "gender", "codec", "codec_q", "codec_seed",
                           "attack_tag", "attack_label", "key", "tmp")
EXTRA: tuple[str, ...] = ("gender", "codec", "codec_q", "codec_seed", "attack_tag")
LAYOUT_LINE = ("SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG"
               " ATTACK_LABEL KEY TMP")


def protocol_path(root: Path, split: str) -> Path | None:
    """Where the protocol of ``split`` is (root or ASVspoof5_protocols/), if anywhere."""
    name = PROTOCOLS[split]
    return first_existing([root / name, root / PROTOCOL_DIR / name])


def detect(root: Path) -> bool:
    """True when any ASVspoof 5 protocol or audio folder is there."""
    root = Path(root)
    return (root / PROTOCOL_DIR).is_dir() or any(
        protocol_path(root, s) is not None or (root / AUDIO[s]).is_dir() for s in PROTOCOLS)


def _present_splits(root: Path) -> list[str]:
    return [s for s in PROTOCOLS if (root / AUDIO[s]).is_dir()]


def _check_splits(splits: Sequence[str] | None) -> None:
    if splits is not None:
        bad = [s for s in splits if s not in SPLITS]
        if bad or isinstance(splits, str):
            raise ConfigError(f"splits: expected a list of {', '.join(SPLITS)}, got {splits!r}")


def missing(root: Path, splits: Sequence[str] | None = None) -> list[str]:
    """Absent parts: a protocol whose audio folder is there (or the reverse), or no audio."""
    _check_splits(splits)
    root = Path(root)
    out: list[str] = []
    wanted = list(splits) if splits is not None else _present_splits(root)
    if not wanted:
        return [f"the audio folders {', '.join(f'{a}/' for a in AUDIO.values())} (unpack"
                " flac_T_a?.tar, flac_D_a?.tar, flac_E_a?.tar here)"]
    for s in wanted:
        if protocol_path(root, s) is None:
            out.append(f"{PROTOCOLS[s]} (in the root or {PROTOCOL_DIR}/, from"
                       " ASVspoof5_protocols.tar.gz) for the audio in"
                       f" {AUDIO[s]}/")
        if not (root / AUDIO[s]).is_dir():
            out.append(f"{AUDIO[s]}/ (the {s} audio) for {PROTOCOLS[s]}")
    return out


def _table(proto: Path, split: str, audio: Path) -> pd.DataFrame:
    df, linenos = parse_table(proto, FIELDS, LAYOUT_LINE, "protocol")
    bad = first_bad(~df["key"].isin(LABELS))
    if bad is not None:
        raise DataError(f"{proto}:{linenos[bad]}: unknown key {df['key'][bad]!r} (expected one"
                        f" of {LABELS})")
    bona_attack = df["attack_label"].isin(["bonafide", NO_ATTACK])
    bad = first_bad(bona_attack != (df["key"] == "bonafide"))
    if bad is not None:
        raise DataError(f"{proto}:{linenos[bad]}: key {df['key'][bad]!r} contradicts"
                        f" ATTACK_LABEL {df['attack_label'][bad]!r}")
    bad = first_bad(~df["file"].str.startswith(ID_PREFIX[split]))
    if bad is not None:
        raise DataError(f"{proto}:{linenos[bad]}: trial {df['file'][bad]!r} is not a {split}"
                        f" trial ({ID_PREFIX[split]}*); is this the protocol of another"
                        " partition?")
    ids = df["file"].tolist()
    require_unique(ids, proto)
    check_keys_match_audio(proto, ids, scan_audio([audio], (".flac",)), f"{audio}")
    folder = os.path.join(audio, "")
    table = pd.DataFrame({
        "utt_id": df["file"],
        "path": [f"{folder}{i}.flac" for i in ids],
        "label": df["key"],
        "attack": df["attack_label"].where(~bona_attack, NO_ATTACK),
        "speaker": df["speaker"],
        "split": split,
    })
    for c in EXTRA:
        table[c] = df[c]
    return table


def read(root: Path, *, splits: Sequence[str] | None = None) -> pd.DataFrame:
    """The utterance table of the partitions in ``splits`` (default: those with audio)."""
    root = Path(root).expanduser()
    gaps = missing(root, splits)
    if gaps:
        raise missing_error(NAME, root, gaps)
    wanted = list(splits) if splits is not None else _present_splits(root)
    tables = []
    for s in wanted:
        proto = protocol_path(root, s)
        assert proto is not None
        tables.append(_table(proto, s, root / AUDIO[s]))
    return make_table(pd.concat(tables, ignore_index=True), extra=EXTRA)
