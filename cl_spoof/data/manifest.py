"""CSV manifests for users' own data.

A manifest is a CSV with the header ``path,label,attack,speaker,split``
(``speaker`` may be empty). Relative paths are relative to the manifest's
folder. ``utt_id`` is derived from the path (relative to the manifest folder,
without extension) unless the manifest has its own ``utt_id`` column.

Cells are read as written: ``NA``, ``None`` or ``null`` are names, not missing values;
a file name that is not UTF-8 is written as its own bytes and read back as it was
(:data:`~cl_spoof.infra.formats.FILE_NAME_ERRORS`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pandas as pd

from cl_spoof.data.audio import list_audio_files
from cl_spoof.data.table import BONAFIDE, LABELS, NO_ATTACK, SPLITS, make_table
from cl_spoof.errors import DataError
from cl_spoof.infra.files import atomic_write_text
from cl_spoof.infra.formats import CSV_QUOTING, FILE_NAME_ERRORS

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "attack", "speaker", "split")


def _utt_id_for(path: Path, base: Path) -> str:
    """Path relative to the manifest folder without extension (absolute when outside it),
    white space as ``_``: ids are fields of whitespace-separated score files."""
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = path
    return id_from_text(rel.with_suffix("").as_posix())


def id_from_text(text: str) -> str:
    """``text`` with every run of white space (line breaks included) replaced by ``_``, and
    each byte of a file name that is not UTF-8 as ``%XX`` (ids go into UTF-8 score files)."""
    text = re.sub(r"\s+", "_", text)
    return re.sub("[\udc80-\udcff]", lambda m: f"%{ord(m.group()) - 0xDC00:02X}", text)


def _manifest_path(raw: str, base: Path) -> Path:
    """The file a manifest's ``path`` cell names: the cell as written when that file exists
    (a name may begin or end with white space or ``~``), else without surrounding white
    space and with ``~`` expanded (a hand-written manifest); relative to ``base``."""
    text = raw.strip()
    if text != raw or text.startswith("~"):
        as_written = Path(raw) if os.path.isabs(raw) else base / raw
        if os.path.lexists(as_written):
            return as_written
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # ~name of no user
            path = Path(text)
    else:
        path = Path(text)
    return path if path.is_absolute() else base / path


def read_manifest(manifest: str | Path) -> pd.DataFrame:
    """Read a CSV manifest into an utterance table.

    Raises :class:`DataError` naming the file (and line) for a missing file, a
    wrong header, or an empty path cell. Label/split values are checked by
    :func:`cl_spoof.data.checks.check_table`, which reports every bad row at once.
    """
    manifest = Path(manifest).expanduser()
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest not found")
    try:
        df = pd.read_csv(manifest, dtype=str, keep_default_na=False, skipinitialspace=True,
                         encoding_errors=FILE_NAME_ERRORS)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest}: not a readable CSV manifest ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{manifest}: empty manifest (expected header {','.join(MANIFEST_COLUMNS)})"
                        ) from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{manifest}: header lacks column(s) {', '.join(missing)}"
            f" (expected {','.join(MANIFEST_COLUMNS)})"
        )
    base = manifest.parent.resolve()
    rows = []
    for i, rec in enumerate(df.to_dict("records")):
        raw = str(rec["path"])
        if not raw.strip():
            raise DataError(f"{manifest}:{i + 2}: empty path")
        p = _manifest_path(raw, base)
        utt = str(rec.get("utt_id", "")).strip() or _utt_id_for(p, base)
        rows.append(
            {
                "utt_id": utt,
                "path": str(p),
                "label": str(rec["label"]).strip(),
                "attack": str(rec["attack"]).strip() or NO_ATTACK,
                "speaker": str(rec["speaker"]).strip(),
                "split": str(rec["split"]).strip(),
            }
        )
    if not rows:
        raise DataError(f"{manifest}: manifest has a header but no rows")
    return make_table(rows)


def manifest_for_folder(
    folder: str | Path,
    label: str,
    attack: str | None,
    split: str = "train",
    speaker: str = "",
    relative_to: Path | None = None,
) -> str:
    """CSV text of a manifest listing every audio file under ``folder``.

    Paths are written relative to ``relative_to`` (the manifest's folder) when
    given and possible, so the manifest and its audio can move together.
    """
    if label not in LABELS:
        raise DataError(f"label {label!r} is not one of {', '.join(LABELS)}")
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if label == BONAFIDE:
        if attack not in (None, "", NO_ATTACK):
            raise DataError("bona fide audio has no attack: leave --attack out")
        attack = NO_ATTACK
    elif not attack or attack == NO_ATTACK:
        raise DataError("spoof audio needs an attack name (--attack NAME)")
    files = list_audio_files(folder)
    if not files:
        raise DataError(f"{folder}: no audio files found")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=CSV_QUOTING)  # "\r" stays quoted
    writer.writerow(MANIFEST_COLUMNS)
    base = relative_to.resolve() if relative_to is not None else None
    for f in files:
        f = f.resolve()
        shown = f
        if base is not None:
            try:
                shown = f.relative_to(base)
            except ValueError:
                shown = f
        writer.writerow([shown.as_posix(), label, attack, speaker, split])
    return buf.getvalue()


def write_manifest_for_folder(
    folder: str | Path, out: str | Path, label: str, attack: str | None, split: str = "train",
    speaker: str = "",
) -> int:
    """Write :func:`manifest_for_folder` to ``out`` atomically; returns the row count (a
    file name may hold line breaks, so it is not the line count)."""
    out = Path(out)
    text = manifest_for_folder(folder, label, attack, split, speaker,
                               relative_to=out.parent if str(out.parent) else Path("."))
    atomic_write_text(out, text)
    return len(list(csv.reader(io.StringIO(text)))) - 1
