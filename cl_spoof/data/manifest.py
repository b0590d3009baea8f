"""CSV manifests for users' own data.

A manifest is a CSV with the header ``path,label,attack,speaker,split``
(``speaker`` may be empty). Relative paths are relative to the manifest's
folder. ``utt_id`` is derived from the path (relative to the manifest folder,
without extension) unless the manifest has its own ``utt_id`` column.

:func:`manifest_rows` lists the audio of one or more folders (one label and attack
per call) and gives each file its speaker and split: the speaker is fixed, the name
of the file's parent folder (``speaker_from="parent"``) or a regular expression
searched in the file's path below its folder (its first group, else the match); the
split is fixed or drawn with a seed, by speaker (every speaker's files in one split)
or by file, in the given fractions. :func:`write_manifest` writes the rows, or adds
them to an existing manifest (refusing a path listed twice).

Cells are read as written: ``NA``, ``None`` or ``null`` are names, not missing values;
a file name that is not UTF-8 is written as its own bytes and read back as it was
(:data:`~cl_spoof.infra.formats.FILE_NAME_ERRORS`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cl_spoof.data.audio import list_audio_files
from cl_spoof.data.corpora._common import check_fractions, grouped_split
from cl_spoof.data.table import BONAFIDE, LABELS, SPLITS, make_table
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.infra.files import atomic_write_text
from cl_spoof.infra.formats import CSV_QUOTING, FILE_NAME_ERRORS
from cl_spoof.labels import NO_ATTACK

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


#: Ways :func:`manifest_rows` draws splits.
SPLIT_BY = ("speaker", "file")
#: ``speaker_from`` value: the name of each file's parent folder.
PARENT = "parent"


def _speaker_of(path: Path, folder: Path, speaker: str, speaker_from: str | None) -> str:
    if speaker_from is None:
        return speaker
    if speaker_from == PARENT:
        return path.parent.name
    rel = path.relative_to(folder).as_posix()
    try:
        found = re.search(speaker_from, rel)
    except re.error as exc:
        raise ConfigError(f"--speaker-from {speaker_from!r}: not a regular expression ({exc})"
                          ) from None
    if found is None:
        raise DataError(f"{path}: --speaker-from {speaker_from!r} does not match its path below "
                        f"{folder} ({rel})")
    return found.group(1) if found.groups() else found.group(0)


def manifest_rows(folders: Sequence[str | Path], label: str, attack: str | None,
                  split: str = "train", speaker: str = "", speaker_from: str | None = None,
                  split_by: str | None = None, fractions: Mapping[str, float] | None = None,
                  seed: int = 0) -> pd.DataFrame:
    """The manifest rows (absolute paths) of every audio file under ``folders``.

    Every file gets ``label`` and ``attack`` (none for bona fide), a speaker
    (``speaker``, or from ``speaker_from``: :data:`PARENT` or a regular expression, see
    the module docstring) and a split: ``split``, or with ``split_by`` (``speaker`` or
    ``file``) one drawn with ``seed`` in ``fractions`` (``{"train": 0.7, ...}``,
    summing to 1) such that a speaker's files share a split.
    """
    if label not in LABELS:
        raise DataError(f"label {label!r} is not one of {', '.join(LABELS)}")
    if split_by is None and split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if split_by is not None and split_by not in SPLIT_BY:
        raise ConfigError(f"--split-by {split_by!r}: use {' or '.join(SPLIT_BY)}")
    if fractions is not None and split_by is None:
        raise ConfigError("--fractions needs --split-by speaker or --split-by file")
    if label == BONAFIDE:
        if attack not in (None, "", NO_ATTACK):
            raise DataError("bona fide audio has no attack: leave --attack out")
        attack = NO_ATTACK
    elif not attack or attack == NO_ATTACK:
        raise DataError("spoof audio needs an attack name (--attack NAME)")
    rows = []
    for folder in folders:
        folder = Path(folder).expanduser().resolve()
        files = list_audio_files(folder)
        if not files:
            raise DataError(f"{folder}: no audio files found")
        for f in files:
            f = f.resolve()
            rows.append({"path": str(f), "label": label, "attack": attack,
                         "speaker": _speaker_of(f, folder, speaker, speaker_from),
                         "split": split})
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    dup = frame["path"][frame["path"].duplicated()]
    if len(dup):
        raise DataError(f"{dup.iloc[0]}: listed twice (the folders overlap); give each folder "
                        "once")
    if split_by is not None:
        fr = check_fractions(fractions if fractions is not None else
                             {"train": 0.7, "dev": 0.1, "eval": 0.2}, "--fractions")
        if split_by == "speaker":
            if (frame["speaker"] == "").any():
                raise ConfigError("--split-by speaker needs a speaker for every file: "
                                  "--speaker-from parent, or --speaker-from REGEX")
            groups = frame["speaker"].tolist()
            if len(set(groups)) < 2:
                raise ConfigError("--split-by speaker needs at least two speakers; every file "
                                  f"has speaker {groups[0]!r} (use --split-by file)")
        else:
            groups = frame["path"].tolist()
        frame["split"] = grouped_split(groups, fr, seed)
    return frame


def parse_fractions(text: str) -> dict[str, float]:
    """``"train=0.7,dev=0.1,eval=0.2"`` as a mapping (checked by the splitter)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--fractions {text!r}: expected SPLIT=NUMBER,... (e.g. "
                              "train=0.7,dev=0.1,eval=0.2)") from None
        if not sep:
            raise ConfigError(f"--fractions {text!r}: expected SPLIT=NUMBER,... (e.g. "
                              "train=0.7,dev=0.1,eval=0.2)")
    return out


def _csv_text(rows: pd.DataFrame, header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=CSV_QUOTING)
    if header:
        writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows[list(MANIFEST_COLUMNS)].itertuples(index=False, name=None))
    return buf.getvalue()


def _shown_paths(rows: pd.DataFrame, base: Path | None) -> pd.DataFrame:
    """``rows`` with paths relative to ``base`` where they lie below it (posix)."""
    out = rows.copy()

    def shown(p: str) -> str:
        path = Path(p)
        if base is not None:
            try:
                return path.relative_to(base).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    out["path"] = out["path"].map(shown)
    return out


def manifest_text(rows: pd.DataFrame, relative_to: Path | None = None) -> str:
    """CSV text of manifest ``rows`` (header included), paths relative to ``relative_to``."""
    base = relative_to.resolve() if relative_to is not None else None
    return _csv_text(_shown_paths(rows, base), header=True)


def write_manifest(rows: pd.DataFrame, out: str | Path, append: bool = False) -> int:
    """Write ``rows`` to the manifest ``out`` atomically (paths relative to its folder);
    with ``append`` add them after the rows ``out`` already has, refusing a file it
    already lists (nothing is written then). Returns the rows added."""
    out = Path(out)
    base = (out.parent if str(out.parent) else Path(".")).resolve()
    if append and out.exists():
        old = read_manifest(out)  # checks the header; paths absolute
        with open(out, encoding="utf-8", errors=FILE_NAME_ERRORS, newline="") as fh:
            header = [c.strip() for c in next(csv.reader(fh), [])]
        if header != list(MANIFEST_COLUMNS):
            raise DataError(f"{out}: its header is {','.join(header)}; --append adds rows to a "
                            f"manifest of exactly {','.join(MANIFEST_COLUMNS)}")
        listed = set(old["path"])
        again = [p for p in rows["path"] if p in listed]
        if again:
            raise DataError(f"{out}: already lists {again[0]}"
                            + (f" and {len(again) - 1} more of the new files" if len(again) > 1
                               else "") + "; nothing was written")
        text = out.read_text(encoding="utf-8", errors=FILE_NAME_ERRORS)
        if text and not text.endswith("\n"):
            text += "\n"
        atomic_write_text(out, text + _csv_text(_shown_paths(rows, base), header=False))
        return len(rows)
    atomic_write_text(out, manifest_text(rows, base))
    return len(rows)
